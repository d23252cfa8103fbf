//! Readings and their hourly roll-up (invariants 2 and 3 of the crate).

use std::collections::HashMap;

use hydrowatch_core::{Reading, Timestamp, time::hour_start};
use rusqlite::{Statement, Transaction};

use crate::{Result, SeriesId, Store, StoreError};

/// What writing one reading did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The reading is new and was stored.
    Inserted,
    /// The same value was already stored for that series and time: nothing changed.
    Duplicate,
    /// Another value was already stored for that series and time; it was kept.
    Conflict {
        /// The value that stays stored.
        stored: f64,
    },
}

/// Counts of one committed batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkSummary {
    /// New readings stored.
    pub inserted: u64,
    /// Readings that were already stored with the same value.
    pub duplicates: u64,
    /// Readings refused because another value is stored for the same series and time.
    pub conflicts: u64,
}

/// The mean of one series over one hourly bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourlyMean {
    /// Start of the bucket.
    pub hour: Timestamp,
    /// Mean of the readings in it.
    pub mean: f64,
    /// How many readings it holds (60 for a complete hour of minute data).
    pub count: u32,
    /// Smallest reading in it.
    pub min: f64,
    /// Largest reading in it.
    pub max: f64,
}

#[derive(Debug, Clone, Copy)]
struct Agg {
    n: i64,
    sum: f64,
    min: f64,
    max: f64,
}

/// A batch of writes inside one transaction; see [`Store::bulk`].
pub struct Bulk<'t> {
    conn: &'t rusqlite::Connection,
    path: &'t std::path::Path,
    insert: Statement<'t>,
    lookup: Statement<'t>,
    hour_phase: i64,
    rollup: HashMap<(i64, Timestamp), Agg>,
    summary: BulkSummary,
}

impl Bulk<'_> {
    /// Writes one reading. The value must be finite (callers reject NaN and infinities with
    /// their own, more precise, error).
    pub fn insert(&mut self, series: SeriesId, ts: Timestamp, value: f64) -> Result<Outcome> {
        debug_assert!(value.is_finite());
        let wrap = |source| StoreError::Sqlite {
            path: self.path.to_path_buf(),
            source,
        };
        if self.insert.execute((series.0, ts, value)).map_err(wrap)? == 1 {
            self.summary.inserted += 1;
            let bucket = hour_start(ts, self.hour_phase);
            self.rollup
                .entry((series.0, bucket))
                .and_modify(|a| {
                    a.n += 1;
                    a.sum += value;
                    a.min = a.min.min(value);
                    a.max = a.max.max(value);
                })
                .or_insert(Agg {
                    n: 1,
                    sum: value,
                    min: value,
                    max: value,
                });
            return Ok(Outcome::Inserted);
        }
        let stored: f64 = self
            .lookup
            .query_row((series.0, ts), |r| r.get(0))
            .map_err(wrap)?;
        if stored == value {
            self.summary.duplicates += 1;
            Ok(Outcome::Duplicate)
        } else {
            self.summary.conflicts += 1;
            Ok(Outcome::Conflict { stored })
        }
    }

    /// The id of series `name`, created (inside this transaction) if new; see
    /// [`Store::ensure_series`].
    pub fn ensure_series(&mut self, name: &str, unit: Option<&str>) -> Result<SeriesId> {
        crate::ensure_series(self.conn, name, unit).map_err(|source| StoreError::Sqlite {
            path: self.path.to_path_buf(),
            source,
        })
    }

    /// The counts so far.
    pub fn summary(&self) -> BulkSummary {
        self.summary
    }
}

/// Adds the aggregates of newly inserted readings to `hourly`.
fn flush_rollup(
    tx: &Transaction<'_>,
    rollup: HashMap<(i64, Timestamp), Agg>,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO hourly(series_id, hour, n, sum, min, max) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(series_id, hour) DO UPDATE SET
            n = n + excluded.n, sum = sum + excluded.sum,
            min = min(min, excluded.min), max = max(max, excluded.max)",
    )?;
    for ((series, hour), a) in rollup {
        stmt.execute((series, hour, a.n, a.sum, a.min, a.max))?;
    }
    Ok(())
}

impl Store {
    /// Runs `f` with a [`Bulk`] writer inside one transaction, which commits when `f` returns
    /// `Ok` and rolls back (nothing written) when it returns `Err` or panics.
    pub fn bulk<T, E>(
        &mut self,
        f: impl FnOnce(&mut Bulk<'_>) -> Result<T, E>,
    ) -> Result<(T, BulkSummary), E>
    where
        E: From<StoreError>,
    {
        let path = self.path.as_path();
        let wrap = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        let (out, summary, rollup) = {
            let mut bulk = Bulk {
                conn: &tx,
                path,
                insert: tx
                    .prepare("INSERT INTO readings(series_id, ts, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
                    .map_err(&wrap)?,
                lookup: tx.prepare("SELECT value FROM readings WHERE series_id = ?1 AND ts = ?2").map_err(&wrap)?,
                hour_phase: self.hour_phase,
                rollup: HashMap::new(),
                summary: BulkSummary::default(),
            };
            let out = f(&mut bulk)?;
            (out, bulk.summary, bulk.rollup)
        };
        flush_rollup(&tx, rollup).map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok((out, summary))
    }

    /// Writes readings of several series in one transaction (the live path: one minute's
    /// readings); returns each one's outcome in order.
    pub fn insert_readings(&mut self, readings: &[(SeriesId, Reading)]) -> Result<Vec<Outcome>> {
        let (outcomes, _) = self.bulk(|b| {
            let mut out = Vec::with_capacity(readings.len());
            for (series, r) in readings {
                out.push(b.insert(*series, r.ts, r.value)?);
            }
            Ok::<_, StoreError>(out)
        })?;
        Ok(outcomes)
    }

    /// The readings of `series` with `from <= ts < to`, oldest first.
    pub fn readings(
        &self,
        series: SeriesId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>> {
        self.collect_readings(
            "SELECT ts, value FROM readings WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts",
            (series.0, from, to),
        )
    }

    /// The newest `n` readings of `series`, oldest first.
    pub fn latest(&self, series: SeriesId, n: usize) -> Result<Vec<Reading>> {
        let mut v = self.collect_readings(
            "SELECT ts, value FROM readings WHERE series_id = ?1 ORDER BY ts DESC LIMIT ?2",
            (series.0, n as i64),
        )?;
        v.reverse();
        Ok(v)
    }

    /// First and last reading time of `series`, if it has any.
    pub fn span(&self, series: SeriesId) -> Result<Option<(Timestamp, Timestamp)>> {
        self.conn
            .query_row(
                "SELECT (SELECT min(ts) FROM readings WHERE series_id = ?1), (SELECT max(ts) FROM readings WHERE series_id = ?1)",
                [series.0],
                |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// The time of the newest reading of `series` before `to`, if it has one.
    pub fn newest_before(&self, series: SeriesId, to: Timestamp) -> Result<Option<Timestamp>> {
        self.conn
            .query_row(
                "SELECT max(ts) FROM readings WHERE series_id = ?1 AND ts < ?2",
                (series.0, to),
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Number of readings stored for `series`.
    pub fn count(&self, series: SeriesId) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT coalesce(sum(n), 0) FROM hourly WHERE series_id = ?1",
                [series.0],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Hourly means of `series` for buckets starting in `from <= hour < to`, oldest first. Hours
    /// without any reading are absent (gap handling is the forecaster's job, not the store's).
    pub fn hourly(
        &self,
        series: SeriesId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyMean>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT hour, sum / n, n, min, max FROM hourly
                 WHERE series_id = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map((series.0, from, to), |r| {
                Ok(HourlyMean {
                    hour: r.get(0)?,
                    mean: r.get(1)?,
                    count: r.get(2)?,
                    min: r.get(3)?,
                    max: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }

    fn collect_readings(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Reading>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(Reading {
                    ts: r.get(0)?,
                    value: r.get(1)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::store;

    fn r(ts: i64, value: f64) -> Reading {
        Reading { ts, value }
    }

    #[test]
    fn insert_is_idempotent_and_conflicts_keep_the_stored_value() {
        let (_d, mut s) = store("UTC");
        let f = s.ensure_series("flow_rate", None).unwrap();
        assert_eq!(
            s.insert_readings(&[(f, r(60, 1.5))]).unwrap(),
            vec![Outcome::Inserted]
        );
        assert_eq!(
            s.insert_readings(&[(f, r(60, 1.5))]).unwrap(),
            vec![Outcome::Duplicate]
        );
        assert_eq!(
            s.insert_readings(&[(f, r(60, 2.0))]).unwrap(),
            vec![Outcome::Conflict { stored: 1.5 }]
        );
        assert_eq!(s.readings(f, 0, 1000).unwrap(), vec![r(60, 1.5)]);
        assert_eq!(s.count(f).unwrap(), 1);
        assert_eq!(
            s.hourly(f, 0, 3600).unwrap()[0].count,
            1,
            "a duplicate does not count twice"
        );
    }

    #[test]
    fn failed_batch_writes_nothing() {
        let (_d, mut s) = store("UTC");
        let f = s.ensure_series("flow_rate", None).unwrap();
        let res: Result<((), BulkSummary), StoreError> = s.bulk(|b| {
            b.insert(f, 0, 1.0)?;
            b.insert(f, 60, 2.0)?;
            Err(StoreError::UnknownSeries {
                path: "t".into(),
                name: "bad row".into(),
                known: String::new(),
            })
        });
        assert!(res.unwrap_err().to_string().contains("bad row"));
        assert!(s.readings(f, i64::MIN, i64::MAX).unwrap().is_empty());
        assert!(s.hourly(f, i64::MIN, i64::MAX).unwrap().is_empty());
    }

    #[test]
    fn ranges_latest_and_series_are_separate() {
        let (_d, mut s) = store("UTC");
        let f = s.ensure_series("flow_rate", None).unwrap();
        let p = s.ensure_series("pressure", None).unwrap();
        let rows: Vec<_> = (0..200)
            .flat_map(|i| [(f, r(i * 60, i as f64)), (p, r(i * 60, -(i as f64)))])
            .collect();
        s.insert_readings(&rows).unwrap();
        let latest = s.latest(f, 60).unwrap();
        assert_eq!(latest.len(), 60);
        assert_eq!(latest[0], r(140 * 60, 140.0));
        assert_eq!(latest[59], r(199 * 60, 199.0));
        let day = s.readings(p, 60, 180).unwrap();
        assert_eq!(day, vec![r(60, -1.0), r(120, -2.0)], "[from, to)");
        assert_eq!(s.span(f).unwrap(), Some((0, 199 * 60)));
        assert_eq!(s.count(p).unwrap(), 200);
    }

    #[test]
    fn hourly_rollup_matches_readings_across_batches() {
        let (_d, mut s) = store("UTC");
        let f = s.ensure_series("flow_rate", None).unwrap();
        // Two batches that both touch hour 1, and out-of-order arrival.
        s.insert_readings(
            &(0..90)
                .rev()
                .map(|m| (f, r(m * 60, m as f64)))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        s.insert_readings(
            &(90..180)
                .map(|m| (f, r(m * 60, m as f64)))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let h = s.hourly(f, 0, 4 * 3600).unwrap();
        assert_eq!(h.len(), 3);
        for (i, hm) in h.iter().enumerate() {
            let lo = i as f64 * 60.0;
            assert_eq!(hm.hour, i as i64 * 3600);
            assert_eq!(hm.count, 60);
            assert_eq!(hm.mean, lo + 29.5);
            assert_eq!((hm.min, hm.max), (lo, lo + 59.0));
        }
    }

    #[test]
    fn hourly_buckets_are_local_hours_in_half_hour_zones() {
        let (_d, mut s) = store("Asia/Kolkata");
        let f = s.ensure_series("flow_rate", None).unwrap();
        // 10:30Z = 16:00 IST; 11:29Z = 16:59 IST: one local hour.
        let t0 = 1_704_105_000; // 2024-01-01T10:30:00Z
        s.insert_readings(
            &(0..60)
                .map(|m| (f, r(t0 + m * 60, 1.0)))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let h = s.hourly(f, 0, i64::MAX).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].hour, h[0].count), (t0, 60));
    }
}
