//! Forecasts, and the day-ahead choice: for each target hour, the forecast issued on the local
//! day before the target's local day (the latest such issue). That is the forecast an operator
//! could act on a day in advance, and the one the prototype's `*_predict` columns hold.

use std::collections::BTreeMap;

use hydrowatch_core::Timestamp;
use hydrowatch_core::time::{local_date, local_day_start};

use crate::{Result, SeriesId, Store};

/// One forecast value with its 10-90% band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPoint {
    /// The hour (bucket start) it forecasts.
    pub target: Timestamp,
    /// Forecast hourly mean.
    pub value: f64,
    /// Lower end of the band (10th percentile).
    pub lower: f64,
    /// Upper end of the band (90th percentile).
    pub upper: f64,
}

/// The day-ahead forecast of one hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayAheadRow {
    /// When the chosen forecast was issued.
    pub issued_at: Timestamp,
    /// The forecast itself.
    pub point: ForecastPoint,
}

impl Store {
    /// Stores one issued forecast of `series` (replacing one issued at the same instant).
    pub fn insert_forecast(
        &mut self,
        series: SeriesId,
        issued_at: Timestamp,
        points: &[ForecastPoint],
    ) -> Result<()> {
        self.record_forecast(
            series,
            issued_at,
            points,
            &[],
            crate::OutboxLimits::UNBOUNDED,
        )
    }

    /// Stores one issued forecast of `series` and queues `messages` for the central server, in
    /// one transaction: the forecast is either stored and queued, or neither. (The table's
    /// `model_id` column of schema version 1 stays NULL: the model is named in the forecast's
    /// message and in `hydrowatch status`.)
    pub fn record_forecast(
        &mut self,
        series: SeriesId,
        issued_at: Timestamp,
        points: &[ForecastPoint],
        messages: &[crate::OutboxMessage],
        limits: crate::OutboxLimits,
    ) -> Result<()> {
        let path = self.path.as_path();
        let wrap = |source| crate::StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        {
            let mut del = tx
                .prepare_cached("DELETE FROM forecasts WHERE series_id = ?1 AND issued_at = ?2")
                .map_err(wrap)?;
            del.execute((series.0, issued_at)).map_err(wrap)?;
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO forecasts(series_id, issued_at, target_ts, value, lower, upper)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(wrap)?;
            for p in points {
                ins.execute((series.0, issued_at, p.target, p.value, p.lower, p.upper))
                    .map_err(wrap)?;
            }
        }
        crate::outbox::enqueue(&tx, messages, limits).map_err(wrap)?;
        tx.commit().map_err(wrap)
    }

    /// When the newest forecast of `series` was issued, if any.
    pub fn latest_forecast(&self, series: SeriesId) -> Result<Option<Timestamp>> {
        self.conn
            .query_row(
                "SELECT max(issued_at) FROM forecasts WHERE series_id = ?1",
                [series.0],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The forecast of `series` issued at `issued_at`, by target time.
    pub fn forecast(&self, series: SeriesId, issued_at: Timestamp) -> Result<Vec<ForecastPoint>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT target_ts, value, lower, upper FROM forecasts
                 WHERE series_id = ?1 AND issued_at = ?2 ORDER BY target_ts",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map((series.0, issued_at), |r| {
                Ok(ForecastPoint {
                    target: r.get(0)?,
                    value: r.get(1)?,
                    lower: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                    upper: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }

    /// The day-ahead forecast (see the module header) of every target hour of `series` with
    /// `from <= target < to` that has one, by target time.
    pub fn day_ahead(
        &self,
        series: SeriesId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<DayAheadRow>> {
        let tz = self.tz;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT target_ts, issued_at, value, lower, upper FROM forecasts
                 WHERE series_id = ?1 AND target_ts >= ?2 AND target_ts < ?3 AND issued_at < target_ts",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query((series.0, from, to)).map_err(|e| self.err(e))?;
        let mut best: BTreeMap<Timestamp, DayAheadRow> = BTreeMap::new();
        // Day bounds are computed once per target day, not per row.
        let mut window: Option<(Timestamp, Timestamp, Timestamp, Timestamp)> = None; // day of target: [start, end), previous day start
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let get = |i| row.get::<_, Option<f64>>(i).map(|v| v.unwrap_or(f64::NAN));
            let target: Timestamp = row.get(0).map_err(|e| self.err(e))?;
            let issued_at: Timestamp = row.get(1).map_err(|e| self.err(e))?;
            let (_, _, prev_start, day_start) = match window {
                Some(w) if w.0 <= target && target < w.1 => w,
                _ => {
                    let date = local_date(target, tz);
                    let day_start = local_day_start(date, tz);
                    let next = date
                        .succ_opt()
                        .map_or(Timestamp::MAX, |d| local_day_start(d, tz));
                    let prev = date
                        .pred_opt()
                        .map_or(Timestamp::MIN, |d| local_day_start(d, tz));
                    let w = (day_start, next, prev, day_start);
                    window = Some(w);
                    w
                }
            };
            if issued_at < prev_start || issued_at >= day_start {
                continue;
            }
            if best.get(&target).is_some_and(|b| b.issued_at >= issued_at) {
                continue;
            }
            let point = ForecastPoint {
                target,
                value: get(2).map_err(|e| self.err(e))?,
                lower: get(3).map_err(|e| self.err(e))?,
                upper: get(4).map_err(|e| self.err(e))?,
            };
            best.insert(target, DayAheadRow { issued_at, point });
        }
        Ok(best.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::store;
    use hydrowatch_core::time::{HOUR, LocalTimeParser};

    fn fc(start: Timestamp, base: f64) -> Vec<ForecastPoint> {
        (0..168)
            .map(|h| ForecastPoint {
                target: start + h * HOUR,
                value: base + h as f64,
                lower: base,
                upper: base + 500.0,
            })
            .collect()
    }

    #[test]
    fn day_ahead_takes_the_latest_issue_of_the_previous_local_day() {
        let (_d, mut s) = store("Asia/Seoul");
        let f = s.ensure_series("flow_rate", None).unwrap();
        let mut t = LocalTimeParser::new(s.timezone());
        let d1_0030 = t.parse("2024-07-01 00:30").unwrap();
        let d1_1200 = t.parse("2024-07-01 12:00").unwrap();
        let d2_0030 = t.parse("2024-07-02 00:30").unwrap();
        let d2_0000 = t.parse("2024-07-02 00:00").unwrap();
        let d3_0000 = t.parse("2024-07-03 00:00").unwrap();
        s.insert_forecast(f, d1_0030, &fc(d1_0030 + 30 * 60, 1000.0))
            .unwrap();
        s.insert_forecast(f, d1_1200, &fc(d1_1200 + HOUR, 2000.0))
            .unwrap();
        s.insert_forecast(f, d2_0030, &fc(d2_0030 + 30 * 60, 3000.0))
            .unwrap();
        assert_eq!(s.forecast(f, d1_1200).unwrap().len(), 168);

        let rows = s.day_ahead(f, d2_0000, d3_0000 + 24 * HOUR).unwrap();
        // Day 2: issued on day 1, the 12:00 issue beats the 00:30 one.
        let day2: Vec<_> = rows.iter().filter(|r| r.point.target < d3_0000).collect();
        assert_eq!(day2.len(), 24);
        assert!(day2.iter().all(|r| r.issued_at == d1_1200));
        assert_eq!(
            day2[0].point.value,
            2000.0 + 11.0,
            "00:00 of day 2 is hour 12 of the 12:00 issue"
        );
        // Day 3: issued on day 2.
        let day3: Vec<_> = rows.iter().filter(|r| r.point.target >= d3_0000).collect();
        assert_eq!(day3.len(), 24);
        assert!(day3.iter().all(|r| r.issued_at == d2_0030));
        // Day 1 and earlier: nothing was issued the day before.
        assert!(s.day_ahead(f, 0, d2_0000).unwrap().is_empty());
    }

    #[test]
    fn reissuing_at_the_same_instant_replaces() {
        let (_d, mut s) = store("UTC");
        let f = s.ensure_series("flow_rate", None).unwrap();
        s.insert_forecast(f, 0, &fc(3600, 1.0)).unwrap();
        s.insert_forecast(f, 0, &fc(3600, 5.0)[..24]).unwrap();
        let got = s.forecast(f, 0).unwrap();
        assert_eq!(got.len(), 24);
        assert_eq!(got[0].value, 5.0);
    }
}
