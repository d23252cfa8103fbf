//! Server-side retention: messages (by arrival), the MQTT messages refused for good (by
//! arrival), forecasts (by issue) and actual values (by hour) older than the days kept are
//! removed; alarm transitions, their state and audit records,
//! people and rules are kept. On PostgreSQL a month's partition is dropped once all of it is
//! older than that (`partitions.rs`), so a row may outlive the days kept by up to a month;
//! on SQLite the rows are deleted. Every server process runs [`start`]: the work is done under
//! `Db::write_alone`'s lock, once per round, whichever process gets there.
//!
//! Invariants: a device whose every message was removed is still known as heard from (its
//! newest removed message's arrival is kept in `devices.seen_before`), so the silent-device
//! alarm and the fleet's "last seen" do not forget it; on PostgreSQL the months ahead always
//! have their partitions.

use std::sync::Arc;
use std::time::Duration;

use hydrowatch_core::time::DAY;

use crate::db::Db;
use crate::partitions::{self, PARTITIONED};
use crate::periodic::Periodic;
use crate::sql::{Arg, DbError};

/// How often retention runs.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What a round of retention did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    /// Rows deleted one by one (SQLite's; PostgreSQL's from its default partitions).
    pub rows_deleted: u64,
    /// The monthly partitions dropped (PostgreSQL).
    pub partitions_dropped: Vec<String>,
    /// The monthly partitions made for the months ahead (PostgreSQL).
    pub partitions_made: Vec<String>,
}

impl Db {
    /// One round at `now` (Unix seconds): makes the months ahead's partitions and, when
    /// `keep_days` is given, removes what is older than that many days.
    pub fn retain(&self, now: i64, keep_days: Option<u32>) -> Result<Retained, DbError> {
        let postgres = self.is_postgres();
        self.write_alone(|c| {
            let mut done = Retained::default();
            if postgres {
                done.partitions_made = partitions::make(c, now, now)?;
            }
            let Some(days) = keep_days else {
                return Ok(done);
            };
            let cutoff = now - i64::from(days) * DAY;
            // Before the messages go: the arrival of each device's newest one among them (all
            // that remains is newer, so this never moves back).
            c.exec(
                "UPDATE devices SET seen_before =
                   (SELECT max(received_at) FROM messages m WHERE m.device_id = devices.id AND m.received_at < ?1)
                 WHERE EXISTS (SELECT 1 FROM messages m WHERE m.device_id = devices.id AND m.received_at < ?1)",
                &[Arg::Int(cutoff)],
            )?;
            // The MQTT messages refused for good are kept as long as the messages.
            done.rows_deleted += c.exec(
                "DELETE FROM refused_messages WHERE received_at < ?1",
                &[Arg::Int(cutoff)],
            )?;
            if postgres {
                let (dropped, deleted) = partitions::drop_before(c, cutoff)?;
                done.partitions_dropped = dropped;
                done.rows_deleted += deleted;
            } else {
                for (table, column) in PARTITIONED {
                    done.rows_deleted += c.exec(
                        &format!("DELETE FROM {table} WHERE {column} < ?1"),
                        &[Arg::Int(cutoff)],
                    )?;
                }
            }
            Ok(done)
        })
    }
}

/// Starts retention over `db`: a round now and every [`EVERY`], keeping `keep_days` days (None:
/// everything; the months ahead's partitions are still made).
pub fn start(db: Arc<Db>, keep_days: Option<u32>) -> std::io::Result<Periodic> {
    Periodic::start("retention", EVERY, move |_| {
        match db.retain(chrono::Utc::now().timestamp(), keep_days) {
            Ok(done) if done == Retained::default() => {}
            Ok(done) => tracing::info!(
                rows_deleted = done.rows_deleted,
                partitions_dropped = ?done.partitions_dropped,
                partitions_made = ?done.partitions_made,
                "retention"
            ),
            Err(e) => tracing::error!("retention: {e}"),
        }
    })
}
