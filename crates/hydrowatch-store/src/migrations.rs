//! Versioned schema migrations. Migration `i` (1-based) takes `PRAGMA user_version` from `i - 1`
//! to `i`; each runs in its own transaction together with the version bump, so a crash in the
//! middle leaves the previous version intact. Never edit a released migration: append one.

use std::path::Path;

use rusqlite::Connection;

use crate::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: the tables of design.md.
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        unit TEXT NOT NULL DEFAULT ''
    );

    -- One row per minute reading: ~20 bytes a row.
    CREATE TABLE readings (
        series_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (series_id, ts)
    ) WITHOUT ROWID;

    -- Aggregate of readings per hourly bucket (invariant 3).
    CREATE TABLE hourly (
        series_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        n INTEGER NOT NULL,
        sum REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        PRIMARY KEY (series_id, hour)
    ) WITHOUT ROWID;

    CREATE TABLE forecasts (
        series_id INTEGER NOT NULL,
        issued_at INTEGER NOT NULL,
        target_ts INTEGER NOT NULL,
        value REAL NOT NULL,
        lower REAL,
        upper REAL,
        model_id INTEGER,
        PRIMARY KEY (series_id, issued_at, target_ts)
    ) WITHOUT ROWID;
    CREATE INDEX forecasts_by_target ON forecasts (series_id, target_ts);

    CREATE TABLE alarms (
        id INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        direction TEXT NOT NULL,
        stage INTEGER NOT NULL,
        state TEXT NOT NULL,
        opened_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        cleared_at INTEGER,
        value REAL,
        expected REAL,
        percentile REAL
    );
    CREATE UNIQUE INDEX alarms_one_open ON alarms (series_id, kind, direction) WHERE cleared_at IS NULL;

    -- Messages waiting for the central server's acknowledgement, oldest first.
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );

    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        strategy TEXT NOT NULL,
        path TEXT NOT NULL,
        trained_at INTEGER NOT NULL,
        score REAL,
        active INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE criteria (
        series_id INTEGER NOT NULL,
        fitted_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (series_id, fitted_at)
    ) WITHOUT ROWID;

    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        last_run INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        message TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;",
    // 2: the minimum night flow of each night (detection's leak indicator), kept for the record.
    "CREATE TABLE night_flow (
        series_id INTEGER NOT NULL,
        night TEXT NOT NULL,
        minimum REAL,
        baseline REAL,
        stage INTEGER NOT NULL,
        PRIMARY KEY (series_id, night)
    ) WITHOUT ROWID;",
    // 3: each weekly retraining: the current model's and the candidate's backtest scores, and
    // which was kept.
    "CREATE TABLE retrains (
        id INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        model TEXT NOT NULL,
        current_score REAL,
        candidate_score REAL,
        kept TEXT NOT NULL
    );",
    // Messages the central server refused for good (an id it holds with other content), kept
    // for people to look at instead of blocking the outbox.
    "CREATE TABLE outbox_set_aside (
        message_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        reason TEXT NOT NULL,
        set_aside_at INTEGER NOT NULL
    );",
    // 5: when each message was queued by the wall clock (for its time to live; older rows
    // have none and never expire), and the order of delivery: alerts first, oldest first.
    "ALTER TABLE outbox ADD COLUMN enqueued_at INTEGER;
    CREATE INDEX outbox_alerts_first ON outbox ((kind != 'alert'), id);",
];

/// The schema version this program writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the schema of `conn` up to [`LATEST`].
pub(crate) fn apply(conn: &mut Connection, path: &Path) -> Result<()> {
    let wrap = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mut version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(wrap)?;
    if version > LATEST {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: LATEST,
        });
    }
    while version < LATEST {
        let tx = conn.transaction().map_err(wrap)?;
        tx.execute_batch(MIGRATIONS[version as usize])
            .map_err(wrap)?;
        version += 1;
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))
            .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
    }
    Ok(())
}
