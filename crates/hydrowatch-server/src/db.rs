//! The server's storage: SQLite (one file, WAL). Messages are kept whole, keyed by their id;
//! alert transitions and forecasts are also kept in tables the read API queries.

use std::path::Path;
use std::sync::Mutex;

use rand::RngExt;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::envelope::{Message, seconds};

/// Why the storage failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("server database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

type Result<T> = std::result::Result<T, DbError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_seen INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    envelope TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    alarm_id INTEGER NOT NULL,
    series TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    stage INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_alarm ON alerts (device_id, alarm_id, created_at);
CREATE TABLE IF NOT EXISTS forecasts (
    message_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    series TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS forecasts_by_series ON forecasts (device_id, series, issued_at);
CREATE TABLE IF NOT EXISTS actuals (
    device_id TEXT NOT NULL,
    series TEXT NOT NULL,
    hour INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (device_id, series, hour)
) WITHOUT ROWID;
";

/// The day-ahead accuracy of one series: each actual hourly value against the forecast issued
/// the day before (the newest issued at least 24 hours before that hour).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Accuracy {
    /// The series.
    pub series: String,
    /// Hours scored.
    pub hours: usize,
    /// Mean absolute error, in the series' unit.
    pub mae: Option<f64>,
    /// Mean absolute percentage error (hours with a zero actual left out).
    pub mape: Option<f64>,
}

/// The server's database.
pub struct Db {
    conn: Mutex<Connection>,
}

/// A device as the fleet overview shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Device {
    /// Its id.
    pub id: String,
    /// When it last delivered (Unix seconds).
    pub last_seen: Option<i64>,
    /// Open alarms by stage 1-4 (index 0: stage 1).
    pub open_alarms: [u32; 4],
}

/// Which alarm transitions to list.
#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    /// Only this device's.
    pub device: Option<String>,
    /// Only the latest transition of alarms not cleared.
    pub open: bool,
    /// Only at this stage or above.
    pub min_stage: Option<u8>,
    /// Only created at or after (Unix seconds).
    pub since: Option<i64>,
    /// Only created before.
    pub until: Option<i64>,
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Db {
    /// Opens (creating) the database file.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a new token for `device` (replacing its old one) and returns it; only its hash is
    /// kept.
    pub fn create_token(&self, device: &str, now: i64) -> Result<String> {
        let bytes: [u8; 24] = rand::rng().random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.conn().execute(
            "INSERT INTO devices(id, token_hash, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET token_hash = excluded.token_hash",
            params![device, hash(&token), now],
        )?;
        Ok(token)
    }

    /// The device a token was issued to.
    pub fn device_for_token(&self, token: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM devices WHERE token_hash = ?1",
                [hash(token)],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores `messages` of `device` in one transaction; a message id already stored is not
    /// stored again. Returns the number stored now.
    pub fn ingest(&self, device: &str, messages: &[Message], now: i64) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut stored = 0;
        for m in messages {
            let body = &m.envelope["body"];
            let inserted = tx.execute(
                "INSERT INTO messages(message_id, device_id, kind, created_at, received_at, envelope)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(message_id) DO NOTHING",
                params![m.message_id, device, m.kind, m.created_at, now, m.envelope.to_string()],
            )?;
            if inserted == 0 {
                continue;
            }
            stored += 1;
            match m.kind.as_str() {
                "alert" => {
                    tx.execute(
                        "INSERT INTO alerts(message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            m.message_id,
                            device,
                            body["alarm_id"].as_i64(),
                            body["series"].as_str(),
                            body["kind"].as_str(),
                            body["state"].as_str(),
                            body["outlier_stage"].as_i64(),
                            m.created_at,
                            body.to_string()
                        ],
                    )?;
                }
                "forecast" => {
                    let issued = seconds(&body["issued_at"]).unwrap_or(m.created_at);
                    tx.execute(
                        "INSERT INTO forecasts(message_id, device_id, series, issued_at, body)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            m.message_id,
                            device,
                            body["series"].as_str(),
                            issued,
                            body.to_string()
                        ],
                    )?;
                    for a in body["actuals"].as_array().into_iter().flatten() {
                        if let (Some(hour), Some(value)) =
                            (seconds(&a["time"]), a["value"].as_f64())
                        {
                            tx.execute(
                                "INSERT INTO actuals(device_id, series, hour, value) VALUES (?1, ?2, ?3, ?4)
                                 ON CONFLICT DO UPDATE SET value = excluded.value",
                                params![device, body["series"].as_str(), hour, value],
                            )?;
                        }
                    }
                }
                _ => {}
            }
        }
        tx.execute(
            "UPDATE devices SET last_seen = ?2 WHERE id = ?1",
            params![device, now],
        )?;
        tx.commit()?;
        Ok(stored)
    }

    /// Every device, with its open alarms by stage.
    pub fn devices(&self) -> Result<Vec<Device>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, last_seen FROM devices ORDER BY id")?;
        let mut devices: Vec<Device> = stmt
            .query_map([], |r| {
                Ok(Device {
                    id: r.get(0)?,
                    last_seen: r.get(1)?,
                    open_alarms: [0; 4],
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        drop(stmt);
        for d in &mut devices {
            for a in open_alarms(&conn, &d.id)? {
                if let Some(n) = (a.1 as usize)
                    .checked_sub(1)
                    .and_then(|i| d.open_alarms.get_mut(i))
                {
                    *n += 1;
                }
            }
        }
        Ok(devices)
    }

    /// Alarm transitions (alert bodies with `device_id` and `created_at` added), newest first.
    pub fn alarms(&self, f: &AlarmFilter) -> Result<Vec<serde_json::Value>> {
        let conn = self.conn();
        let open_clause = if f.open {
            "AND state != 'cleared' AND id = (SELECT max(b.id) FROM alerts b
               WHERE b.device_id = a.device_id AND b.alarm_id = a.alarm_id)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT device_id, created_at, body FROM alerts a
             WHERE (?1 IS NULL OR device_id = ?1) AND stage >= ?2 AND created_at >= ?3 AND created_at < ?4 {open_clause}
             ORDER BY created_at DESC, id DESC LIMIT 1000"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![
                f.device,
                f.min_stage.unwrap_or(0),
                f.since.unwrap_or(i64::MIN),
                f.until.unwrap_or(i64::MAX)
            ],
            |r| {
                let (device, created, body): (String, i64, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?);
                let mut v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                v["device_id"] = device.into();
                v["created_at"] = created.into();
                Ok(v)
            },
        )?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The newest `limit` forecasts of `device` (and `series`), newest first.
    pub fn forecasts(
        &self,
        device: &str,
        series: Option<&str>,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT body FROM forecasts WHERE device_id = ?1 AND (?2 IS NULL OR series = ?2)
             ORDER BY issued_at DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![device, series, limit as i64], |r| {
            let body: String = r.get(0)?;
            Ok(serde_json::from_str(&body).unwrap_or_default())
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

impl Db {
    /// The hourly actual values of `device`'s `series` with `from <= hour < to`, oldest first.
    pub fn actuals(
        &self,
        device: &str,
        series: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT hour, value FROM actuals WHERE device_id = ?1 AND series = ?2 AND hour >= ?3 AND hour < ?4 ORDER BY hour",
        )?;
        let rows = stmt.query_map(params![device, series, from, to], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The day-ahead accuracy of every series of `device` over the last `days` days of actuals.
    pub fn accuracy(&self, device: &str, days: i64) -> Result<Vec<Accuracy>> {
        let series: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT DISTINCT series FROM actuals WHERE device_id = ?1 ORDER BY series",
            )?;
            let rows = stmt.query_map([device], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut out = Vec::new();
        for name in series {
            let newest: i64 = self.conn().query_row(
                "SELECT max(hour) FROM actuals WHERE device_id = ?1 AND series = ?2",
                params![device, name],
                |r| r.get(0),
            )?;
            let from = newest - days * 86_400;
            let actuals = self.actuals(device, &name, from, i64::MAX)?;
            // The forecasts that can be "the day before" of those hours: (issued_at, time -> value).
            let forecasts: Vec<(i64, std::collections::HashMap<i64, f64>)> = {
                let conn = self.conn();
                let mut stmt = conn.prepare(
                    "SELECT issued_at, body FROM forecasts WHERE device_id = ?1 AND series = ?2 AND issued_at >= ?3 ORDER BY issued_at",
                )?;
                let rows = stmt.query_map(params![device, name, from - 8 * 86_400], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?;
                rows.collect::<std::result::Result<Vec<_>, _>>()?
                    .into_iter()
                    .map(|(issued, body)| {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                        let points = v["points"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| Some((seconds(&p["time"])?, p["value"].as_f64()?)))
                            .collect();
                        (issued, points)
                    })
                    .collect()
            };
            let (mut abs, mut pct, mut n, mut n_pct) = (0.0, 0.0, 0usize, 0usize);
            for (hour, actual) in actuals {
                let day_before = forecasts.iter().rev().find(|(issued, points)| {
                    *issued <= hour - 86_400 && points.contains_key(&hour)
                });
                if let Some((_, points)) = day_before {
                    let e = (points[&hour] - actual).abs();
                    abs += e;
                    n += 1;
                    if actual != 0.0 {
                        pct += e / actual.abs();
                        n_pct += 1;
                    }
                }
            }
            out.push(Accuracy {
                series: name,
                hours: n,
                mae: (n > 0).then(|| abs / n as f64),
                mape: (n_pct > 0).then(|| 100.0 * pct / n_pct as f64),
            });
        }
        Ok(out)
    }
}

/// (alarm id, stage) of the alarms of `device` whose latest transition is not `cleared`.
fn open_alarms(conn: &Connection, device: &str) -> Result<Vec<(i64, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT alarm_id, stage FROM alerts a WHERE device_id = ?1 AND state != 'cleared'
         AND id = (SELECT max(b.id) FROM alerts b WHERE b.device_id = a.device_id AND b.alarm_id = a.alarm_id)",
    )?;
    let rows = stmt.query_map([device], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}
