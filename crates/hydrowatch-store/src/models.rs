//! The forecaster chosen for each series (`hydrowatch backtest --select`): one active row per
//! series in `models`, earlier choices kept inactive as history; and the record of each weekly
//! retraining (`retrains`).

use hydrowatch_core::Timestamp;
use rusqlite::OptionalExtension;

use crate::{Result, SeriesId, Store, StoreError};

/// The forecaster a series uses by default.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultModel {
    /// Its name: a baseline (`seasonal-blend`, `mstl-ets`, ...) or a network (`lstm/mimo`).
    pub name: String,
    /// Its backtest score when chosen (mean PI1 + PI3, in the series' unit).
    pub score: Option<f64>,
    /// When it was chosen.
    pub chosen_at: Timestamp,
}

/// One weekly retraining of a series' model.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrain {
    /// When it ran.
    pub at: Timestamp,
    /// The model retrained, e.g. `lstm/mimo`.
    pub model: String,
    /// The backtest score (mean PI1 + PI3) of the model in use; `None` when there was none.
    pub current_score: Option<f64>,
    /// The backtest score of the newly trained candidate.
    pub candidate_score: Option<f64>,
    /// Which was kept.
    pub kept: Kept,
}

/// Which model a retraining kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// The newly trained one (it scored better, or there was none in use).
    Candidate,
    /// The one in use.
    Current,
}

impl Kept {
    /// Its name in the database and in messages (`candidate`, `current`).
    pub fn name(self) -> &'static str {
        match self {
            Kept::Candidate => "candidate",
            Kept::Current => "current",
        }
    }
}

impl rusqlite::types::ToSql for Kept {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.name().into())
    }
}

impl rusqlite::types::FromSql for Kept {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        match value.as_str()? {
            "candidate" => Ok(Kept::Candidate),
            "current" => Ok(Kept::Current),
            other => Err(rusqlite::types::FromSqlError::Other(
                format!("retrains.kept: {other:?} is neither candidate nor current").into(),
            )),
        }
    }
}

impl Store {
    /// Records a retraining of `series`.
    pub fn record_retrain(&self, series: SeriesId, r: &Retrain) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO retrains(series_id, at, model, current_score, candidate_score, kept)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    series.0,
                    r.at,
                    r.model,
                    r.current_score,
                    r.candidate_score,
                    r.kept
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The retrainings of `series`, oldest first.
    pub fn retrains(&self, series: SeriesId) -> Result<Vec<Retrain>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT at, model, current_score, candidate_score, kept FROM retrains
                 WHERE series_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([series.0], |r| {
            Ok(Retrain {
                at: r.get(0)?,
                model: r.get(1)?,
                current_score: r.get(2)?,
                candidate_score: r.get(3)?,
                kept: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Makes `name` the default forecaster of `series` (the previous one stays as history).
    pub fn set_default_model(
        &mut self,
        series: SeriesId,
        name: &str,
        score: f64,
        at: Timestamp,
    ) -> Result<()> {
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let (kind, strategy) = name.split_once('/').unwrap_or((name, ""));
        let tx = self.conn.transaction().map_err(wrap)?;
        tx.execute(
            "UPDATE models SET active = 0 WHERE series_id = ?1",
            [series.0],
        )
        .map_err(wrap)?;
        tx.execute(
            "INSERT INTO models(series_id, kind, strategy, path, trained_at, score, active)
             VALUES (?1, ?2, ?3, '', ?4, ?5, 1)",
            rusqlite::params![series.0, kind, strategy, at, score],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)
    }

    /// The default forecaster of `series`, if one was chosen.
    pub fn default_model(&self, series: SeriesId) -> Result<Option<DefaultModel>> {
        self.conn
            .query_row(
                "SELECT kind, strategy, score, trained_at FROM models
                 WHERE series_id = ?1 AND active = 1 ORDER BY id DESC LIMIT 1",
                [series.0],
                |r| {
                    let (kind, strategy): (String, String) = (r.get(0)?, r.get(1)?);
                    Ok(DefaultModel {
                        name: if strategy.is_empty() {
                            kind
                        } else {
                            format!("{kind}/{strategy}")
                        },
                        score: r.get(2)?,
                        chosen_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_choice_is_the_default_and_earlier_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("m.db"), chrono_tz::UTC).unwrap();
        let s = store.ensure_series("flow_rate", None).unwrap();
        assert_eq!(store.default_model(s).unwrap(), None);
        store.set_default_model(s, "mstl-ets", 2.5, 100).unwrap();
        store.set_default_model(s, "lstm/mimo", 2.0, 200).unwrap();
        let m = store.default_model(s).unwrap().unwrap();
        assert_eq!(
            (m.name.as_str(), m.score, m.chosen_at),
            ("lstm/mimo", Some(2.0), 200)
        );
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM models", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }
}
