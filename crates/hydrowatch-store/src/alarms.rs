//! Alarms and the detector's saved state, written together in one transaction so that the
//! alarms table and the state that produced it never disagree after a crash.

use hydrowatch_core::Timestamp;
use rusqlite::OptionalExtension;

use crate::{Result, SeriesId, Store, StoreError};

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

    /// Applies alarm transitions (in order) and saves the detector's state, in one
    /// transaction.
    pub fn record_detection(&mut self, state: &str, changes: &[AlarmChange]) -> Result<()> {
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
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (STATE_KEY, state),
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)
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
        store
            .record_detection(
                "{\"v\":1}",
                &[
                    change(1, flow, "opened", 3, 60),
                    change(1, flow, "escalated", 4, 120),
                ],
            )
            .unwrap();
        let open = store.alarms(true).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].stage, open[0].state.as_str()), (4, "escalated"));
        assert_eq!(
            store.detector_state().unwrap().as_deref(),
            Some("{\"v\":1}")
        );

        // A second open alarm of the same (series, kind, direction) is refused, and so is the
        // whole write: the state stays as it was.
        let e = store.record_detection("{\"v\":2}", &[change(2, flow, "opened", 3, 180)]);
        assert!(e.is_err());
        // An update of an alarm that does not exist is refused too.
        let e = store.record_detection("{\"v\":2}", &[change(9, flow, "escalated", 4, 180)]);
        assert!(e.unwrap_err().to_string().contains("alarm 9"));
        assert_eq!(
            store.detector_state().unwrap().as_deref(),
            Some("{\"v\":1}")
        );

        store
            .record_detection("{\"v\":3}", &[change(1, flow, "cleared", 0, 240)])
            .unwrap();
        assert!(store.alarms(true).unwrap().is_empty());
        let all = store.alarms(false).unwrap();
        assert_eq!((all[0].cleared_at, all[0].stage), (Some(240), 0));
    }
}
