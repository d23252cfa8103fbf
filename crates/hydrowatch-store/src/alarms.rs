//! Alarms and the detector's saved state, written together in one transaction so that the
//! alarms table and the state that produced it never disagree after a crash.

use hydrowatch_core::Timestamp;
use rusqlite::OptionalExtension;

use crate::{OutboxLimits, OutboxMessage, Result, SeriesId, Store, StoreError};

/// One alarm transition to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmChange {
    /// The alarm's id (the detector numbers them).
    pub id: i64,
    /// Its series.
    pub series: SeriesId,
    /// `outlier`, `stale`, ...
    pub kind: String,
    /// `high`, `low` or `none`.
    pub direction: String,
    /// Stage after the transition.
    pub stage: u8,
    /// `opened`, `escalated`, `de-escalated` or `cleared`.
    pub state: String,
    /// When it happened.
    pub time: Timestamp,
    /// The value read, if any.
    pub value: Option<f64>,
    /// The value expected, if known.
    pub expected: Option<f64>,
    /// The value's percentile, if any.
    pub percentile: Option<f64>,
}

/// The minimum night flow of one night.
#[derive(Debug, Clone, PartialEq)]
pub struct NightRecord {
    /// Its series.
    pub series: SeriesId,
    /// The local date the night's window started on, `YYYY-MM-DD`.
    pub night: String,
    /// Its minimum 10-minute mean flow (`None`: too few readings that night).
    pub minimum: Option<f64>,
    /// The median of the recent normal nights it was compared with.
    pub baseline: Option<f64>,
    /// Its stage, 0-4.
    pub stage: u8,
}

/// Everything one detection run writes, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct DetectionWrite<'a> {
    /// The detector's state (JSON).
    pub state: &'a str,
    /// Alarm transitions, in order.
    pub alarms: &'a [AlarmChange],
    /// Criteria fitted: series, when, their JSON.
    pub criteria: &'a [(SeriesId, Timestamp, String)],
    /// Nights judged.
    pub nights: &'a [NightRecord],
    /// Messages for the central server (the alert messages of `alarms`).
    pub outbox: &'a [OutboxMessage],
    /// The outbox's limits.
    pub limits: OutboxLimits,
}

/// An alarm as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRow {
    /// Its id.
    pub id: i64,
    /// Series name.
    pub series: String,
    /// Kind.
    pub kind: String,
    /// Direction.
    pub direction: String,
    /// Current (or last) stage.
    pub stage: u8,
    /// Last transition.
    pub state: String,
    /// When it opened.
    pub opened_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it cleared, if it has.
    pub cleared_at: Option<Timestamp>,
}

const STATE_KEY: &str = "detector_state";

impl Store {
    /// The detector state saved by [`Store::record_detection`], if any.
    pub fn detector_state(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [STATE_KEY], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Applies alarm transitions (in order), records criteria and nights, and saves the
    /// detector's state, in one transaction.
    pub fn record_detection(&mut self, write: DetectionWrite<'_>) -> Result<()> {
        let DetectionWrite {
            state,
            alarms: changes,
            criteria,
            nights,
            outbox,
            limits,
        } = write;
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        for c in changes {
            let rows = if c.state == "opened" {
                tx.execute(
                    "INSERT INTO alarms(id, series_id, kind, direction, stage, state, opened_at, updated_at, value, expected, percentile)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'opened', ?6, ?6, ?7, ?8, ?9)",
                    rusqlite::params![c.id, c.series.0, c.kind, c.direction, c.stage, c.time, c.value, c.expected, c.percentile],
                )
            } else if c.state == "cleared" {
                tx.execute(
                    "UPDATE alarms SET stage = 0, state = 'cleared', updated_at = ?2, cleared_at = ?2 WHERE id = ?1",
                    rusqlite::params![c.id, c.time],
                )
            } else {
                tx.execute(
                    "UPDATE alarms SET stage = ?2, state = ?3, updated_at = ?4, value = ?5, expected = ?6, percentile = ?7 WHERE id = ?1",
                    rusqlite::params![c.id, c.stage, c.state, c.time, c.value, c.expected, c.percentile],
                )
            }
            .map_err(wrap)?;
            if rows != 1 {
                return Err(StoreError::Inconsistent {
                    path: path.clone(),
                    message: format!(
                        "alarm {} ({} {} {}): {} changed {rows} rows, expected 1",
                        c.id, c.kind, c.direction, c.state, c.state
                    ),
                });
            }
        }
        for (series, fitted_at, body) in criteria {
            tx.execute(
                "INSERT INTO criteria(series_id, fitted_at, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(series_id, fitted_at) DO UPDATE SET body = excluded.body",
                (series.0, fitted_at, body),
            )
            .map_err(wrap)?;
        }
        for n in nights {
            tx.execute(
                "INSERT INTO night_flow(series_id, night, minimum, baseline, stage) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(series_id, night) DO UPDATE SET minimum = excluded.minimum,
                   baseline = excluded.baseline, stage = excluded.stage",
                rusqlite::params![n.series.0, n.night, n.minimum, n.baseline, n.stage],
            )
            .map_err(wrap)?;
        }
        crate::outbox::enqueue(&tx, outbox, limits).map_err(wrap)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (STATE_KEY, state),
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)
    }

    /// The latest criteria of `series`: when fitted, and their JSON.
    pub fn latest_criteria(&self, series: SeriesId) -> Result<Option<(Timestamp, String)>> {
        self.conn
            .query_row(
                "SELECT fitted_at, body FROM criteria WHERE series_id = ?1 ORDER BY fitted_at DESC LIMIT 1",
                [series.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The recorded nights of `series`, oldest first.
    pub fn nights(&self, series: SeriesId) -> Result<Vec<NightRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT night, minimum, baseline, stage FROM night_flow WHERE series_id = ?1 ORDER BY night",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([series.0], |r| {
                Ok(NightRecord {
                    series,
                    night: r.get(0)?,
                    minimum: r.get(1)?,
                    baseline: r.get(2)?,
                    stage: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }

    /// Alarms, newest first; only open ones when `open_only`.
    pub fn alarms(&self, open_only: bool) -> Result<Vec<AlarmRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT a.id, s.name, a.kind, a.direction, a.stage, a.state, a.opened_at, a.updated_at, a.cleared_at
                 FROM alarms a JOIN series s ON s.id = a.series_id
                 WHERE (?1 = 0 OR a.cleared_at IS NULL) ORDER BY a.opened_at DESC, a.id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([i64::from(open_only)], |r| {
                Ok(AlarmRow {
                    id: r.get(0)?,
                    series: r.get(1)?,
                    kind: r.get(2)?,
                    direction: r.get(3)?,
                    stage: r.get(4)?,
                    state: r.get(5)?,
                    opened_at: r.get(6)?,
                    updated_at: r.get(7)?,
                    cleared_at: r.get(8)?,
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: i64, series: SeriesId, state: &str, stage: u8, time: Timestamp) -> AlarmChange {
        AlarmChange {
            id,
            series,
            kind: "outlier".into(),
            direction: "high".into(),
            stage,
            state: state.into(),
            time,
            value: Some(1.0),
            expected: Some(0.5),
            percentile: Some(99.9),
        }
    }

    #[test]
    fn transitions_and_state_are_written_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("a.db"), chrono_tz::UTC).unwrap();
        let flow = store.ensure_series("flow_rate", Some("m3/h")).unwrap();
        assert_eq!(store.detector_state().unwrap(), None);
        let night = NightRecord {
            series: flow,
            night: "2024-01-01".into(),
            minimum: Some(40.0),
            baseline: None,
            stage: 0,
        };
        store
            .record_detection(DetectionWrite {
                state: "{\"v\":1}",
                alarms: &[
                    change(1, flow, "opened", 3, 60),
                    change(1, flow, "escalated", 4, 120),
                ],
                criteria: &[(flow, 60, "{}".into())],
                nights: &[night],
                outbox: &[],
                limits: OutboxLimits {
                    max_rows: 10,
                    max_bytes: 1000,
                },
            })
            .unwrap();
        assert_eq!(
            store.latest_criteria(flow).unwrap(),
            Some((60, "{}".into()))
        );
        assert_eq!(store.nights(flow).unwrap().len(), 1);
        let open = store.alarms(true).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].stage, open[0].state.as_str()), (4, "escalated"));
        assert_eq!(
            store.detector_state().unwrap().as_deref(),
            Some("{\"v\":1}")
        );

        // A second open alarm of the same (series, kind, direction) is refused, and so is the
        // whole write: the state stays as it was.
        fn write(alarms: &[AlarmChange]) -> DetectionWrite<'_> {
            DetectionWrite {
                state: "{\"v\":2}",
                alarms,
                criteria: &[],
                nights: &[],
                outbox: &[],
                limits: OutboxLimits {
                    max_rows: 10,
                    max_bytes: 1000,
                },
            }
        }
        let e = store.record_detection(write(&[change(2, flow, "opened", 3, 180)]));
        assert!(e.is_err());
        // An update of an alarm that does not exist is refused too.
        let e = store.record_detection(write(&[change(9, flow, "escalated", 4, 180)]));
        assert!(e.unwrap_err().to_string().contains("alarm 9"));
        assert_eq!(
            store.detector_state().unwrap().as_deref(),
            Some("{\"v\":1}")
        );

        store
            .record_detection(write(&[change(1, flow, "cleared", 0, 240)]))
            .unwrap();
        assert!(store.alarms(true).unwrap().is_empty());
        let all = store.alarms(false).unwrap();
        assert_eq!((all[0].cleared_at, all[0].stage), (Some(240), 0));
    }
}
