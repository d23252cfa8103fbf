//! Retention: data older than a cut-off goes, readings in bounded batches (invariant 6).
//!
//! Readings are deleted by whole hourly buckets together with their `hourly` row, so the roll-up
//! stays exact (invariant 3): the cut-off is rounded down to a bucket start. Forecasts, cleared
//! alarms and superseded criteria are few and go in one statement each. The outbox is never
//! touched here: undelivered messages leave only by acknowledgement or the outbox's own bound.

use hydrowatch_core::Timestamp;
use hydrowatch_core::time::{HOUR, hour_start};
use rusqlite::OptionalExtension;

use crate::{Result, Store, StoreError};

/// What one retention run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionSummary {
    /// Readings deleted.
    pub readings: u64,
    /// Forecast rows deleted.
    pub forecasts: u64,
    /// Cleared alarms deleted.
    pub alarms: u64,
    /// Transactions used.
    pub batches: u64,
}

impl Store {
    /// Deletes readings (and their roll-ups) before the hourly bucket holding `cutoff`,
    /// forecasts issued before it, alarms cleared before it and criteria superseded before it;
    /// at most about `batch` readings per transaction.
    pub fn apply_retention(&mut self, cutoff: Timestamp, batch: usize) -> Result<RetentionSummary> {
        let cutoff = hour_start(cutoff, self.hour_phase);
        let batch = batch.max(1) as i64;
        let mut summary = RetentionSummary::default();
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        for series in self.series()? {
            loop {
                let tx = self.conn.transaction().map_err(wrap)?;
                // The bucket holding the batch-th oldest reading bounds this batch (whole buckets).
                let nth: Option<Timestamp> = tx
                    .query_row(
                        "SELECT ts FROM readings WHERE series_id = ?1 AND ts < ?2 ORDER BY ts LIMIT 1 OFFSET ?3",
                        (series.id.0, cutoff, batch - 1),
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(wrap)?;
                let bound = match nth {
                    None => cutoff,
                    Some(ts) => {
                        let first: Timestamp = tx
                            .query_row(
                                "SELECT min(ts) FROM readings WHERE series_id = ?1",
                                [series.id.0],
                                |r| r.get(0),
                            )
                            .map_err(wrap)?;
                        let b = hour_start(ts, self.hour_phase);
                        // A batch smaller than one bucket still deletes one whole bucket.
                        if b <= first {
                            (hour_start(first, self.hour_phase) + HOUR).min(cutoff)
                        } else {
                            b
                        }
                    }
                };
                let deleted = tx
                    .execute(
                        "DELETE FROM readings WHERE series_id = ?1 AND ts < ?2",
                        (series.id.0, bound),
                    )
                    .map_err(wrap)?;
                tx.execute(
                    "DELETE FROM hourly WHERE series_id = ?1 AND hour < ?2",
                    (series.id.0, bound),
                )
                .map_err(wrap)?;
                tx.commit().map_err(wrap)?;
                summary.readings += deleted as u64;
                summary.batches += 1;
                if bound >= cutoff {
                    break;
                }
            }
        }
        let tx = self.conn.transaction().map_err(wrap)?;
        summary.forecasts = tx
            .execute("DELETE FROM forecasts WHERE issued_at < ?1", [cutoff])
            .map_err(wrap)? as u64;
        summary.alarms = tx
            .execute(
                "DELETE FROM alarms WHERE cleared_at IS NOT NULL AND cleared_at < ?1",
                [cutoff],
            )
            .map_err(wrap)? as u64;
        tx.execute(
            "DELETE FROM criteria WHERE fitted_at < ?1
             AND fitted_at < (SELECT max(fitted_at) FROM criteria c WHERE c.series_id = criteria.series_id)",
            [cutoff],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        summary.batches += 1;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use crate::ForecastPoint;
    use crate::test_util::store;
    use hydrowatch_core::Reading;

    #[test]
    fn deletes_old_rows_in_batches_and_keeps_rollup_exact() {
        let (_d, mut s) = store("UTC");
        let f = s.ensure_series("flow_rate", None).unwrap();
        let p = s.ensure_series("pressure", None).unwrap();
        let day = 86_400;
        let rows: Vec<_> = (0..3 * 24 * 60)
            .flat_map(|m| {
                [
                    (
                        f,
                        Reading {
                            ts: m * 60,
                            value: 1.0,
                        },
                    ),
                    (
                        p,
                        Reading {
                            ts: m * 60,
                            value: 2.0,
                        },
                    ),
                ]
            })
            .collect();
        s.insert_readings(&rows).unwrap();
        let pt = |t| ForecastPoint {
            target: t,
            value: 1.0,
            lower: 0.0,
            upper: 2.0,
        };
        s.insert_forecast(f, 100, &[pt(3600)]).unwrap();
        s.insert_forecast(f, 2 * day, &[pt(2 * day + 3600)])
            .unwrap();

        // Cut-off in the middle of an hour: rounded down to the bucket start.
        let sum = s.apply_retention(day + 1800, 500).unwrap();
        assert_eq!(sum.readings, 2 * 24 * 60);
        assert!(
            sum.batches >= 2 * (24 * 60 / 500),
            "bounded batches: {sum:?}"
        );
        assert_eq!(sum.forecasts, 1);
        for series in [f, p] {
            assert_eq!(s.span(series).unwrap(), Some((day, 3 * day - 60)));
            assert_eq!(
                s.count(series).unwrap(),
                2 * 24 * 60,
                "hourly counts match readings"
            );
            assert_eq!(s.hourly(series, 0, i64::MAX).unwrap().len(), 48);
        }
        // Idempotent.
        assert_eq!(s.apply_retention(day + 1800, 500).unwrap().readings, 0);
        // A batch smaller than an hour still makes progress.
        assert_eq!(
            s.apply_retention(day + 2 * 3600, 10).unwrap().readings,
            2 * 2 * 60
        );
    }
}
