//! The server's storage: SQLite (one file, WAL; the default) or PostgreSQL (`--database
//! postgres://...`), with the same schema, the same queries and the same behaviour: every query
//! below is written once and runs on both through [`crate::sql`]. Messages are kept whole, keyed
//! by their id; alert transitions, forecasts and actual hourly values are also kept in tables the
//! read API queries.
//!
//! Invariants: a batch is one transaction (stored whole or not at all); a message id is stored
//! at most once, also when two requests carry it at the same moment: a device's batches take
//! turns (SQLite's write lock; on PostgreSQL, whose partitioned messages are keyed with their
//! arrival, a transaction lock per device), and each looks for the id before storing it.

use hydrowatch_core::time::DAY;
use std::path::Path;
use std::sync::Mutex;

use rand::RngExt;
use sha2::{Digest, Sha256};

use hydrowatch_protocol::{
    Accuracy, AlarmRecord, AlertBody, Checked, CheckedBody, DeviceSummary, ForecastBody, seconds,
};

use crate::schema::{self, migrate};
pub use crate::sql::DbError;
use crate::sql::{Arg, PgManager, Row, Sql};

type Result<T> = std::result::Result<T, DbError>;

/// The key of the advisory lock of [`Db::write_alone`] ("hydrowat" in ASCII).
const ALONE_LOCK: i64 = 0x6879_6472_6f77_6174;

/// Every device and when it was heard from last (Unix seconds; NULL: never): its newest message
/// stored, or the newest that retention removed (not a column every request of a device would
/// update: concurrent requests would queue on that row).
pub(crate) const LAST_SEEN: &str = "SELECT d.id,
    coalesce((SELECT max(received_at) FROM messages m WHERE m.device_id = d.id), d.seen_before)
    FROM devices d";

/// The server's database.
pub struct Db {
    backend: Backend,
}

enum Backend {
    /// One connection: SQLite writes one transaction at a time anyway.
    Sqlite(Mutex<rusqlite::Connection>),
    /// A pool: PostgreSQL commits concurrent transactions together.
    Postgres(r2d2::Pool<PgManager>),
}

/// Which alarm transitions to list (also the query of `GET /api/v1/alarms`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
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

/// A new random token: 192 bits, hex.
pub fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token and its hash, the only thing of it stored.
pub(crate) fn new_token() -> (String, String) {
    let token = random_token();
    let hashed = hash(&token);
    (token, hashed)
}

/// The SHA-256 of a token, as stored.
pub(crate) fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_default()
}

/// A stored body read back as `T` (every stored body passed the ingest's checks).
pub(crate) fn stored<T: serde::de::DeserializeOwned>(text: &str, message_id: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| DbError::Stored(message_id.to_string(), e.to_string()))
}

impl Db {
    /// Opens (creating) the SQLite database file.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        // Every statement the server runs stays prepared (rusqlite keeps 16 by default: the
        // ingest's, the notifier's and the pages' together are more, and each miss parses and
        // plans its statement again).
        conn.set_prepared_statement_cache_capacity(128);
        let db = Db {
            backend: Backend::Sqlite(Mutex::new(conn)),
        };
        db.write(|c| migrate(c, &schema::SQLITE, chrono::Utc::now().timestamp()))?;
        Ok(db)
    }

    /// Connects to PostgreSQL at `url` (`postgres://user:password@host:port/dbname`, or the
    /// key=value form), creating the tables that are missing. Connections are made without TLS:
    /// run the database next to the server or reach it through a tunnel.
    pub fn connect(url: &str) -> Result<Db> {
        let config: postgres::Config = url.parse()?;
        // One connection first, so that a refused connection, a wrong password or a missing
        // database is reported as such at once (the pool would wait and say only "timed out").
        drop(config.connect(postgres::NoTls)?);
        let pool = r2d2::Pool::builder()
            .max_size(16)
            // Opened as the load asks for them, not all at start.
            .min_idle(Some(2))
            // A broken connection shows in the statement that uses it (the request fails, the
            // device sends again) and is then dropped from the pool; no test query per request.
            .test_on_check_out(false)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(PgManager(config))?;
        let db = Db {
            backend: Backend::Postgres(pool),
        };
        db.write(|c| {
            // Two servers starting on one empty database must not both create the tables.
            c.batch("SELECT pg_advisory_xact_lock(7262)")?;
            migrate(c, &schema::POSTGRES, chrono::Utc::now().timestamp())
        })?;
        Ok(db)
    }

    /// Which database this is, for people.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    /// Runs `f` on a connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(conn) => f(&mut *conn.lock().unwrap_or_else(|e| e.into_inner())),
            Backend::Postgres(pool) => pool.get()?.read(f),
        }
    }

    /// Runs `f` in a transaction, committed when `f` succeeds and rolled back when it fails.
    pub(crate) fn write<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                conn.execute_batch("BEGIN IMMEDIATE")
                    .map_err(DbError::from)?;
                match f(&mut *conn) {
                    Ok(value) => {
                        conn.execute_batch("COMMIT").map_err(DbError::from)?;
                        Ok(value)
                    }
                    Err(e) => {
                        conn.execute_batch("ROLLBACK").map_err(DbError::from)?;
                        Err(e)
                    }
                }
            }
            Backend::Postgres(pool) => pool.get().map_err(DbError::from)?.write(f),
        }
    }

    /// Runs `f` in a transaction that no other server process on this database runs at the
    /// same time as another `write_alone` (the work that must happen once per database: raising
    /// silent-device alarms, planning notifications). On PostgreSQL a transaction-level advisory
    /// lock, released at commit or rollback, also by a process that dies; on SQLite the write
    /// lock `BEGIN IMMEDIATE` takes already does it.
    pub(crate) fn write_alone<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let postgres = self.is_postgres();
        self.write(|c| {
            if postgres {
                c.exec("SELECT pg_advisory_xact_lock(?1)", &[Arg::Int(ALONE_LOCK)])?;
            }
            f(c)
        })
    }

    /// Whether this is PostgreSQL (some statements differ).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The ids of the messages received at or after `since` (Unix seconds) whose id starts with
    /// `prefix`: what arrived lately (the fleet bench watches its messages arrive with it).
    pub fn message_ids_received_since(&self, since: i64, prefix: &str) -> Result<Vec<String>> {
        let pattern = format!("{}%", prefix.replace(['%', '_', '\\'], ""));
        self.read(|c| {
            c.rows(
                "SELECT message_id FROM messages WHERE received_at >= ?1 AND message_id LIKE ?2",
                &[Arg::Int(since), Arg::Text(Some(&pattern))],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
        })
    }

    /// The stored messages whose id starts with `prefix`: rows, and distinct (device, id) pairs.
    pub fn message_counts(&self, prefix: &str) -> Result<(u64, u64)> {
        let pattern = format!("{}%", prefix.replace(['%', '_', '\\'], ""));
        self.read(|c| {
            let r = c.rows(
                "SELECT count(*), count(DISTINCT device_id || ' ' || message_id) FROM messages WHERE message_id LIKE ?1",
                &[Arg::Text(Some(&pattern))],
            )?;
            Ok((r[0].int(0)? as u64, r[0].int(1)? as u64))
        })
    }

    /// Issues a new token for `device` (replacing its old one) and returns it; only its hash is
    /// kept.
    pub fn create_token(&self, device: &str, now: i64) -> Result<String> {
        let (token, hashed) = new_token();
        self.write(|c| {
            c.exec(
                "INSERT INTO devices(id, token_hash, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET token_hash = excluded.token_hash",
                &[
                    Arg::Text(Some(device)),
                    Arg::Text(Some(&hashed)),
                    Arg::Int(now),
                ],
            )
        })?;
        Ok(token)
    }

    /// The device a token was issued to.
    pub fn device_for_token(&self, token: &str) -> Result<Option<String>> {
        let hashed = hash(token);
        self.read(|c| {
            c.rows(
                "SELECT id FROM devices WHERE token_hash = ?1",
                &[Arg::Text(Some(&hashed))],
            )?
            .first()
            .map(|r| r.text(0))
            .transpose()
        })
    }

    /// Whether the server knows device `id` (it has a token).
    pub fn has_device(&self, id: &str) -> Result<bool> {
        self.read(|c| {
            Ok(!c
                .rows(
                    "SELECT 1 FROM devices WHERE id = ?1",
                    &[Arg::Text(Some(id))],
                )?
                .is_empty())
        })
    }

    /// Stores `messages` of `device` in one transaction; a message id this device stored before
    /// with the same content is not stored again. Returns the number stored now; an id stored
    /// before with other content fails the whole batch with [`DbError::Conflict`].
    pub fn ingest(&self, device: &str, messages: &[Checked], now: i64) -> Result<usize> {
        let postgres = self.is_postgres();
        self.write(|c| {
            if postgres {
                // Released at commit or rollback; the first key ("hw") keeps these apart from
                // other advisory locks.
                c.exec(
                    "SELECT pg_advisory_xact_lock(26743, hashtext(?1))",
                    &[Arg::Text(Some(device))],
                )?;
            }
            let mut stored = 0;
            let mut conflicts = Vec::new();
            let mut transitions = crate::alarm_latest::NewTransitions::of(device);
            for m in messages {
                let before = c.rows(
                    "SELECT envelope FROM messages WHERE device_id = ?1 AND message_id = ?2",
                    &[Arg::Text(Some(device)), Arg::Text(Some(&m.message_id))],
                )?;
                if let Some(row) = before.first() {
                    if json(&row.text(0)?) != m.envelope {
                        conflicts.push(m.message_id.clone());
                    }
                    continue;
                }
                // An alert whose message retention removed is still known by its transition,
                // which is kept for ever: the same again is a repeat, another a conflict (never
                // a second row, which the key refuses).
                if let CheckedBody::Alert(_) = &m.body {
                    let kept = c.rows(
                        "SELECT body FROM alerts WHERE device_id = ?1 AND message_id = ?2",
                        &[Arg::Text(Some(device)), Arg::Text(Some(&m.message_id))],
                    )?;
                    if let Some(row) = kept.first() {
                        if json(&row.text(0)?) != m.envelope["body"] {
                            conflicts.push(m.message_id.clone());
                        }
                        continue;
                    }
                }
                c.exec(
                    "INSERT INTO messages(message_id, device_id, kind, created_at, received_at, envelope)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    &[
                        Arg::Text(Some(&m.message_id)),
                        Arg::Text(Some(device)),
                        Arg::Text(Some(m.kind().name())),
                        Arg::Int(m.created_at),
                        Arg::Int(now),
                        Arg::Text(Some(&m.envelope.to_string())),
                    ],
                )?;
                stored += 1;
                let body_text = m.envelope["body"].to_string();
                match &m.body {
                    CheckedBody::Alert(a) => {
                        transitions.record(c, &m.message_id, a, m.created_at, &body_text)?;
                    }
                    CheckedBody::Forecast {
                        body,
                        issued_at,
                        actuals,
                    } => {
                        let series = Arg::Text(Some(&body.series));
                        c.exec(
                            "INSERT INTO forecasts(message_id, device_id, series, issued_at, body)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            &[
                                Arg::Text(Some(&m.message_id)),
                                Arg::Text(Some(device)),
                                series,
                                Arg::Int(*issued_at),
                                Arg::Text(Some(&body_text)),
                            ],
                        )?;
                        for &(hour, value) in actuals {
                            c.exec(
                                "INSERT INTO actuals(device_id, series, hour, value) VALUES (?1, ?2, ?3, ?4)
                                 ON CONFLICT(device_id, series, hour) DO UPDATE SET value = excluded.value",
                                &[Arg::Text(Some(device)), series, Arg::Int(hour), Arg::Real(value)],
                            )?;
                        }
                    }
                    CheckedBody::Heartbeat(_) => {}
                }
            }
            transitions.finish(c, now)?;
            if conflicts.is_empty() {
                Ok(stored)
            } else {
                Err(DbError::Conflict(conflicts))
            }
        })
    }

    /// Every device, with its open alarms by stage.
    pub fn devices(&self) -> Result<Vec<DeviceSummary>> {
        self.read(|c| {
            let mut devices = c
                .rows(&format!("{LAST_SEEN} ORDER BY id"), &[])?
                .iter()
                .map(|r| {
                    Ok(DeviceSummary {
                        id: r.text(0)?,
                        last_seen: r.opt_int(1)?,
                        open_alarms: [0; 4],
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // The alarms whose latest transition is not `cleared`.
            let open = c.rows(
                "SELECT device_id, stage FROM alarm_latest WHERE to_handle = 1 AND state <> 'cleared'",
                &[],
            )?;
            for r in open {
                let (device, stage) = (r.text(0)?, r.int(1)?);
                let slot = devices.iter_mut().find(|d| d.id == device).and_then(|d| {
                    usize::try_from(stage - 1)
                        .ok()
                        .and_then(|i| d.open_alarms.get_mut(i))
                });
                if let Some(n) = slot {
                    *n += 1;
                }
            }
            Ok(devices)
        })
    }

    /// Alarm transitions, the last to arrive first (at most 1000): a device's clock cannot be
    /// trusted to order them (a transition stamped a day ahead would top the list for a day).
    pub fn alarms(&self, f: &AlarmFilter) -> Result<Vec<AlarmRecord>> {
        let open_clause = if f.open {
            "AND id IN (SELECT last_id FROM alarm_latest WHERE to_handle = 1 AND state <> 'cleared')"
        } else {
            ""
        };
        let sql = format!(
            "SELECT device_id, created_at, body, message_id FROM alerts a
             WHERE (CAST(?1 AS TEXT) IS NULL OR device_id = ?1) AND stage >= ?2 AND created_at >= ?3 AND created_at < ?4 {open_clause}
             ORDER BY id DESC LIMIT 1000"
        );
        let args = [
            Arg::Text(f.device.as_deref()),
            Arg::Int(f.min_stage.unwrap_or(0).into()),
            Arg::Int(f.since.unwrap_or(i64::MIN)),
            Arg::Int(f.until.unwrap_or(i64::MAX)),
        ];
        self.read(|c| {
            c.rows(&sql, &args)?
                .iter()
                .map(|r| {
                    let alert: AlertBody = stored(&r.text(2)?, &r.text(3)?)?;
                    Ok(AlarmRecord {
                        device_id: r.text(0)?,
                        created_at: r.int(1)?,
                        alert,
                    })
                })
                .collect()
        })
    }

    /// The newest `limit` forecasts of `device` (and `series`), newest first.
    pub fn forecasts(
        &self,
        device: &str,
        series: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ForecastBody>> {
        self.read(|c| {
            c.rows(
                "SELECT body, message_id FROM forecasts WHERE device_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR series = ?2)
                 ORDER BY issued_at DESC LIMIT ?3",
                &[
                    Arg::Text(Some(device)),
                    Arg::Text(series),
                    Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
                ],
            )?
            .iter()
            .map(|r| stored(&r.text(0)?, &r.text(1)?))
            .collect()
        })
    }

    /// The hourly actual values of `device`'s `series` with `from <= hour < to`, oldest first.
    pub fn actuals(
        &self,
        device: &str,
        series: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>> {
        self.read(|c| {
            c.rows(
                "SELECT hour, value FROM actuals WHERE device_id = ?1 AND series = ?2 AND hour >= ?3 AND hour < ?4 ORDER BY hour",
                &[
                    Arg::Text(Some(device)),
                    Arg::Text(Some(series)),
                    Arg::Int(from),
                    Arg::Int(to),
                ],
            )?
            .iter()
            .map(|r| Ok((r.int(0)?, r.real(1)?)))
            .collect()
        })
    }

    /// The day-ahead accuracy of every series of `device` over the last `days` days of actuals.
    pub fn accuracy(&self, device: &str, days: i64) -> Result<Vec<Accuracy>> {
        let newest: Vec<Row> = self.read(|c| {
            c.rows(
                "SELECT series, max(hour) FROM actuals WHERE device_id = ?1 GROUP BY series ORDER BY series",
                &[Arg::Text(Some(device))],
            )
        })?;
        let mut out = Vec::new();
        for r in newest {
            let (name, newest) = (r.text(0)?, r.int(1)?);
            let from = newest - days * DAY;
            let actuals = self.actuals(device, &name, from, i64::MAX)?;
            // The forecasts that can be "the day before" of those hours: (issued_at, time -> value).
            let forecasts: Vec<(i64, std::collections::HashMap<i64, f64>)> = self
                .read(|c| {
                    c.rows(
                        "SELECT issued_at, body, message_id FROM forecasts WHERE device_id = ?1 AND series = ?2 AND issued_at >= ?3 ORDER BY issued_at",
                        &[
                            Arg::Text(Some(device)),
                            Arg::Text(Some(&name)),
                            Arg::Int(from - 8 * DAY),
                        ],
                    )
                })?
                .iter()
                .map(|r| {
                    let body: ForecastBody = stored(&r.text(1)?, &r.text(2)?)?;
                    let points = body
                        .points
                        .iter()
                        .filter_map(|p| Some((seconds(&p.time)?, p.value)))
                        .collect();
                    Ok((r.int(0)?, points))
                })
                .collect::<Result<_>>()?;
            let (mut abs, mut pct, mut n, mut n_pct) = (0.0, 0.0, 0usize, 0usize);
            for (hour, actual) in actuals {
                let day_before = forecasts
                    .iter()
                    .rev()
                    .find(|(issued, points)| *issued <= hour - DAY && points.contains_key(&hour));
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
