//! The device's embedded database: SQLite through rusqlite, and the only crate on the device
//! that speaks SQL (the central server keeps its own, docs/ARCHITECTURE.md departure 18).
//!
//! Invariants this crate keeps (every public function preserves them; tests check each):
//! 1. Every instant in every column is integer Unix seconds, UTC.
//! 2. `readings` holds at most one value per (series, ts). Writing a reading that is already
//!    stored is a no-op; a *different* value for a stored (series, ts) never overwrites: it is
//!    reported to the caller as a [`Outcome::Conflict`] and the stored value is kept.
//! 3. `hourly` equals the aggregate (count, sum, min, max) of `readings` per series and hourly
//!    bucket; it is updated in the same transaction as every insert and delete of readings.
//!    Buckets are whole local hours: they start at the database's hour phase (see
//!    [`hydrowatch_core::time::hour_phase`]), fixed when the file is created.
//! 4. Every write is one transaction. A batch (an import, say) commits entirely or not at all;
//!    after a crash, kill -9 or power cut the file holds exactly the last committed state
//!    (WAL journal, `synchronous = FULL`: a commit is on disk before the call returns).
//! 5. The schema version is `PRAGMA user_version`; [`Store::open`] applies missing migrations in
//!    order, each in one transaction, and refuses a file written by a newer program.
//! 6. Retention deletes old rows in batches of bounded size, each its own short transaction, so a
//!    reading that arrives meanwhile waits for one batch at most.

mod alarms;
mod forecasts;
mod jobs;
mod migrations;
mod models;
mod outbox;
mod readings;
mod retention;

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension};

pub use alarms::{AlarmChange, AlarmRow, DetectionWrite, NightRecord};
pub use forecasts::{DayAheadRow, ForecastPoint};
pub use jobs::JobRun;
pub use models::{DefaultModel, Kept, Retrain};
pub use outbox::{OutboxLimits, OutboxMessage, OutboxRow, OutboxStats};
pub use readings::{Bulk, BulkSummary, HourlyMean, Outcome};
pub use retention::RetentionSummary;

/// Identifies a series inside one database (the row id of its `series` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub i64);

/// A series as the database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    /// Its id in this database.
    pub id: SeriesId,
    /// Its name, e.g. `flow_rate`.
    pub name: String,
    /// Its unit, empty when unknown (imported without a configuration).
    pub unit: String,
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused or failed an operation.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer hydrowatch whose schema this one does not know.
    #[error(
        "database {path} has schema version {found}, newer than this program's {supported}: upgrade hydrowatch"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this program knows.
        supported: i64,
    },
    /// The database was created for a time zone whose hours start at another offset.
    #[error(
        "database {path} keeps hourly buckets for time zone {created_for}; {requested} starts its hours at another offset: use a new database file for it"
    )]
    ZoneMismatch {
        /// The database file.
        path: PathBuf,
        /// The zone the file was created for.
        created_for: String,
        /// The zone asked for now.
        requested: Tz,
    },
    /// A write found the database in a state it cannot follow (e.g. an alarm to update that
    /// is not there); nothing of the write is kept.
    #[error("database {path}: {message}")]
    Inconsistent {
        /// The database file.
        path: PathBuf,
        /// What was found.
        message: String,
    },
    /// A series name was asked for that the database does not have.
    #[error("database {path} has no series named {name:?} (it has: {known})")]
    UnknownSeries {
        /// The database file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names it has, comma separated.
        known: String,
    },
}

/// Result of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open device database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    hour_phase: i64,
    tz: Tz,
}

impl Store {
    /// Opens (creating if needed) the database at `path` for a device in time zone `tz`, applying
    /// migrations. A new file records `tz`; an existing one must have the same hour phase.
    pub fn open(path: &Path, tz: Tz) -> Result<Store> {
        let wrap = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(wrap)?;
        // Every transaction takes the write lock when it begins. The daemon's threads write
        // through their own connections; a deferred transaction that reads before it writes
        // would fail at once with "database is locked" when another committed in between,
        // instead of waiting its turn (seen with retention beside ingestion).
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA journal_size_limit = 4194304;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(wrap)?;
        migrations::apply(&mut conn, path)?;

        let phase = hydrowatch_core::time::hour_phase(tz);
        let stored: Option<(String, i64)> = conn
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'timezone'), \
                        CAST((SELECT value FROM meta WHERE key = 'hour_phase') AS INTEGER)",
                [],
                |r| {
                    Ok(r.get::<_, Option<String>>(0)?
                        .zip(r.get::<_, Option<i64>>(1)?))
                },
            )
            .optional()
            .map_err(wrap)?
            .flatten();
        let (tz, hour_phase) = match stored {
            Some((zone, stored_phase)) => {
                if stored_phase != phase {
                    return Err(StoreError::ZoneMismatch {
                        path: path.to_path_buf(),
                        created_for: zone,
                        requested: tz,
                    });
                }
                (zone.parse().unwrap_or(tz), stored_phase)
            }
            None => {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('timezone', ?1), ('hour_phase', ?2)",
                    (tz.name(), phase.to_string()),
                )
                .map_err(wrap)?;
                (tz, phase)
            }
        };
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            hour_phase,
            tz,
        })
    }

    /// Copies the write-ahead log into the database and truncates it to nothing, returning its
    /// space to the file system (after a full disk: the log keeps the pages of the failed
    /// transactions otherwise). Best effort: a reader holding the log makes it a no-op, and
    /// that is logged, not an error.
    pub fn checkpoint(&self) {
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::debug!("checkpoint of {}: {e}", self.path.display());
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The time zone the database was created for (the device's zone).
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The offset at which this database's hourly buckets start (seconds modulo 3600).
    pub fn hour_phase(&self) -> i64 {
        self.hour_phase
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Every series the database has, by id.
    pub fn series(&self) -> Result<Vec<SeriesInfo>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name, unit FROM series ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SeriesInfo {
                    id: SeriesId(r.get(0)?),
                    name: r.get(1)?,
                    unit: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }

    /// The id of the series called `name`, or an error listing the series that exist.
    pub fn series_id(&self, name: &str) -> Result<SeriesId> {
        let found = self.series()?.into_iter().find(|s| s.name == name);
        match found {
            Some(s) => Ok(s.id),
            None => Err(StoreError::UnknownSeries {
                path: self.path.clone(),
                name: name.to_string(),
                known: self
                    .series()?
                    .into_iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The id of the series called `name`, creating it if new. A known `unit` is recorded when
    /// the stored one is empty.
    pub fn ensure_series(&self, name: &str, unit: Option<&str>) -> Result<SeriesId> {
        ensure_series(&self.conn, name, unit).map_err(|e| self.err(e))
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// [`Store::err`] as a closure that does not borrow the store (for use beside a
    /// transaction).
    fn wrapper(&self) -> impl Fn(rusqlite::Error) -> StoreError + use<> {
        let path = self.path.clone();
        move |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        }
    }
}

/// [`Store::ensure_series`] on a connection or transaction.
fn ensure_series(conn: &Connection, name: &str, unit: Option<&str>) -> rusqlite::Result<SeriesId> {
    conn.execute(
        "INSERT INTO series(name, unit) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET unit = excluded.unit WHERE unit = '' AND excluded.unit <> ''",
        (name, unit.unwrap_or("")),
    )?;
    conn.query_row("SELECT id FROM series WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .map(SeriesId)
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A store in a fresh temporary directory (kept alive by the returned guard).
    pub(crate) fn store(tz: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), tz.parse().unwrap()).unwrap();
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_file_gets_every_table_and_current_version() {
        let (_d, s) = test_util::store("Asia/Seoul");
        assert_eq!(s.schema_version().unwrap(), migrations::LATEST);
        let mut stmt = s
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        let tables: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for t in [
            "alarms",
            "criteria",
            "forecasts",
            "hourly",
            "jobs",
            "meta",
            "models",
            "night_flow",
            "outbox",
            "readings",
            "series",
        ] {
            assert!(
                tables.iter().any(|x| x == t),
                "missing table {t}: {tables:?}"
            );
        }
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn migrates_an_existing_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.db");
        std::fs::write(&path, b"").unwrap();
        let s = Store::open(&path, chrono_tz::UTC).unwrap();
        assert_eq!(s.schema_version().unwrap(), migrations::LATEST);
        assert!(s.series().unwrap().is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(
            &path,
            "these are not the pages you are looking for, not at all",
        )
        .unwrap();
        let e = Store::open(&path, chrono_tz::UTC)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("notes.txt") && e.contains("not a database"),
            "{e}"
        );
    }

    #[test]
    fn reopening_keeps_data_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let id = Store::open(&path, chrono_tz::UTC)
            .unwrap()
            .ensure_series("flow_rate", Some("m3/h"))
            .unwrap();
        let s = Store::open(&path, chrono_tz::UTC).unwrap();
        assert_eq!(s.series_id("flow_rate").unwrap(), id);
        assert_eq!(s.series().unwrap()[0].unit, "m3/h");
        assert_eq!(s.schema_version().unwrap(), migrations::LATEST);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Store::open(&path, chrono_tz::UTC).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 999")
            .unwrap();
        let e = Store::open(&path, chrono_tz::UTC)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("999") && e.contains("upgrade"), "{e}");
    }

    #[test]
    fn zone_with_other_hour_phase_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Store::open(&path, chrono_tz::Asia::Seoul).unwrap());
        // Same phase: fine, and the file keeps the zone it was created for.
        assert_eq!(
            Store::open(&path, chrono_tz::Europe::Rome)
                .unwrap()
                .timezone(),
            chrono_tz::Asia::Seoul
        );
        let e = Store::open(&path, chrono_tz::Asia::Kolkata)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("Asia/Seoul") && e.contains("Asia/Kolkata"),
            "{e}"
        );
    }

    #[test]
    fn series_are_created_once_and_unknown_names_listed() {
        let (_d, s) = test_util::store("UTC");
        let a = s.ensure_series("flow_rate", None).unwrap();
        assert_eq!(s.ensure_series("flow_rate", Some("m3/h")).unwrap(), a);
        assert_eq!(
            s.series().unwrap()[0].unit,
            "m3/h",
            "a unit learnt later is recorded"
        );
        s.ensure_series("flow_rate", Some("l/s")).unwrap();
        assert_eq!(
            s.series().unwrap()[0].unit,
            "m3/h",
            "a known unit is not replaced"
        );
        s.ensure_series("pressure", None).unwrap();
        let e = s.series_id("presure").unwrap_err().to_string();
        assert!(
            e.contains("presure") && e.contains("flow_rate, pressure"),
            "{e}"
        );
    }
}
