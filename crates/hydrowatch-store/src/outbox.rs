//! The outbox: messages for the central server, kept until the server acknowledges them
//! (design.md, Delivery). They are delivered alerts first (oldest first), then the rest oldest
//! first, so that alarms are not stuck behind days of forecasts when a link returns. Rows leave
//! only by [`Store::outbox_ack`], by the drop policy (when the outbox exceeds its limits, the
//! oldest forecasts and heartbeats go first and alerts last) or by their kind's time to live
//! ([`Store::outbox_expire`], by the wall clock at which they were queued); each drop and each
//! expiry is counted per kind (`meta('outbox_dropped_<kind>')`, `meta('outbox_expired_<kind>')`).
//! Messages are enqueued in the same transaction as what produced them (see
//! [`Store::record_detection`]).

use hydrowatch_core::Timestamp;
use rusqlite::{OptionalExtension, Transaction};

use crate::{Result, Store};

/// How large the outbox may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most messages kept.
    pub max_rows: u64,
    /// Most bytes of message bodies kept.
    pub max_bytes: u64,
}

impl OutboxLimits {
    /// No limit (a device without a server never queues anything anyway).
    pub const UNBOUNDED: OutboxLimits = OutboxLimits {
        max_rows: u64::MAX,
        max_bytes: u64::MAX,
    };
}

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// Its idempotency key (a UUID): the server stores a message once however often it is sent.
    pub message_id: String,
    /// `alert`, `forecast` or `heartbeat`.
    pub kind: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// The whole envelope, JSON.
    pub body: String,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Its place in the outbox (oldest first).
    pub id: i64,
    /// The message.
    pub message: OutboxMessage,
}

/// The outbox's size and its drops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxStats {
    /// Messages waiting.
    pub rows: u64,
    /// Bytes of their bodies.
    pub bytes: u64,
    /// Messages dropped by the policy since the database was created, per kind.
    pub dropped: Vec<(String, u64)>,
    /// Messages the server refused for good, set aside (see [`Store::outbox_set_aside`]).
    pub set_aside: u64,
    /// Messages removed when their time to live ran out, since the database was created, per
    /// kind.
    pub expired: Vec<(String, u64)>,
}

/// The wall clock in Unix seconds (a message's time to live runs by it, not by the data's).
fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Enqueues `messages` inside `tx`, then drops by policy until the limits hold.
pub(crate) fn enqueue(
    tx: &Transaction<'_>,
    messages: &[OutboxMessage],
    limits: OutboxLimits,
) -> rusqlite::Result<()> {
    let now = wall_clock();
    for m in messages {
        tx.execute(
            "INSERT INTO outbox(message_id, kind, created_at, body, enqueued_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            (&m.message_id, &m.kind, m.created_at, &m.body, now),
        )?;
    }
    if messages.is_empty() {
        return Ok(());
    }
    loop {
        let (rows, bytes): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if rows as u64 <= limits.max_rows && bytes as u64 <= limits.max_bytes {
            return Ok(());
        }
        // Alerts last: the oldest of another kind goes first.
        let victim: (i64, String) = match tx
            .query_row(
                "SELECT id, kind FROM outbox WHERE kind != 'alert' ORDER BY id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
        {
            Some(v) => v,
            None => tx.query_row("SELECT id, kind FROM outbox ORDER BY id LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?,
        };
        tx.execute("DELETE FROM outbox WHERE id = ?1", [victim.0])?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [format!("outbox_dropped_{}", victim.1)],
        )?;
        tracing::warn!(kind = %victim.1, "outbox full: dropped the oldest {} message", victim.1);
    }
}

impl Store {
    /// Enqueues `messages` in one transaction, dropping by policy beyond `limits`.
    pub fn enqueue(&mut self, messages: &[OutboxMessage], limits: OutboxLimits) -> Result<()> {
        let wrap = self.wrapper();
        let tx = self.conn.transaction().map_err(&wrap)?;
        enqueue(&tx, messages, limits).map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    /// Up to `limit` waiting messages in the order of delivery: alerts first, oldest first.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, message_id, kind, created_at, body FROM outbox
                 ORDER BY (kind != 'alert'), id LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    message: OutboxMessage {
                        message_id: r.get(1)?,
                        kind: r.get(2)?,
                        created_at: r.get(3)?,
                        body: r.get(4)?,
                    },
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }

    /// Removes the messages the server acknowledged; returns how many were waiting.
    pub fn outbox_ack(&mut self, message_ids: &[String]) -> Result<usize> {
        let wrap = self.wrapper();
        let tx = self.conn.transaction().map_err(&wrap)?;
        let mut removed = 0;
        for id in message_ids {
            removed += tx
                .execute("DELETE FROM outbox WHERE message_id = ?1", [id])
                .map_err(&wrap)?;
        }
        tx.commit().map_err(&wrap)?;
        Ok(removed)
    }

    /// Moves the waiting messages `message_ids` out of the outbox into the set-aside table, with
    /// `reason`, at `now`: the server refused them for good (it holds their ids with other
    /// content), and the messages after them must not wait behind them. Returns how many moved.
    pub fn outbox_set_aside(
        &mut self,
        message_ids: &[String],
        reason: &str,
        now: i64,
    ) -> Result<usize> {
        let wrap = self.wrapper();
        let tx = self.conn.transaction().map_err(&wrap)?;
        let mut moved = 0;
        for id in message_ids {
            tx.execute(
                "INSERT OR REPLACE INTO outbox_set_aside(message_id, kind, created_at, body, reason, set_aside_at)
                 SELECT message_id, kind, created_at, body, ?2, ?3 FROM outbox WHERE message_id = ?1",
                rusqlite::params![id, reason, now],
            )
            .map_err(&wrap)?;
            moved += tx
                .execute("DELETE FROM outbox WHERE message_id = ?1", [id])
                .map_err(&wrap)?;
        }
        tx.commit().map_err(&wrap)?;
        Ok(moved)
    }

    /// Removes the messages of each `(kind, seconds)` of `ttl` queued more than `seconds`
    /// before `now` (Unix seconds, the wall clock), counting them per kind; returns how many of
    /// each kind went (kinds with none left out).
    pub fn outbox_expire(&mut self, ttl: &[(String, i64)], now: i64) -> Result<Vec<(String, u64)>> {
        let wrap = self.wrapper();
        let tx = self.conn.transaction().map_err(&wrap)?;
        let mut expired = Vec::new();
        for (kind, seconds) in ttl {
            let n = tx
                .execute(
                    "DELETE FROM outbox WHERE kind = ?1 AND enqueued_at < ?2",
                    rusqlite::params![kind, now.saturating_sub(*seconds)],
                )
                .map_err(&wrap)?;
            if n > 0 {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
                    rusqlite::params![format!("outbox_expired_{kind}"), n as i64],
                )
                .map_err(&wrap)?;
                tracing::warn!(
                    kind,
                    n,
                    "outbox: {n} {kind} messages outlived their time to live and were removed"
                );
                expired.push((kind.clone(), n as u64));
            }
        }
        tx.commit().map_err(&wrap)?;
        Ok(expired)
    }

    /// The outbox's size and drops.
    pub fn outbox_stats(&self) -> Result<OutboxStats> {
        let (rows, bytes): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT substr(key, 16), CAST(value AS INTEGER) FROM meta
                 WHERE key LIKE 'outbox_dropped_%' ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        let dropped = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT substr(key, 16), CAST(value AS INTEGER) FROM meta
                 WHERE key LIKE 'outbox_expired_%' ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        let expired = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        let set_aside: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox_set_aside", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(OutboxStats {
            rows: rows as u64,
            bytes: bytes as u64,
            dropped,
            set_aside: set_aside as u64,
            expired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, kind: &str, bytes: usize) -> OutboxMessage {
        OutboxMessage {
            message_id: id.into(),
            kind: kind.into(),
            created_at: 0,
            body: "x".repeat(bytes),
        }
    }

    /// The ids waiting, oldest first.
    fn waiting(store: &Store) -> Vec<String> {
        store
            .outbox_batch(100)
            .unwrap()
            .into_iter()
            .map(|r| r.message.message_id)
            .collect()
    }

    #[test]
    fn oldest_first_acknowledged_rows_leave_and_alerts_are_dropped_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("o.db"), chrono_tz::UTC).unwrap();
        let roomy = OutboxLimits {
            max_rows: 100,
            max_bytes: 10_000,
        };
        store
            .enqueue(
                &[
                    message("a1", "alert", 10),
                    message("f1", "forecast", 10),
                    message("a2", "alert", 10),
                ],
                roomy,
            )
            .unwrap();
        let batch = store.outbox_batch(2).unwrap();
        let ids: Vec<&str> = batch
            .iter()
            .map(|r| r.message.message_id.as_str())
            .collect();
        assert_eq!(ids, ["a1", "a2"], "alerts first");
        assert_eq!(store.outbox_ack(&["a1".into(), "zz".into()]).unwrap(), 1);

        // Three rows at most: a fourth and fifth drop the forecast first, then the oldest alert.
        let tight = OutboxLimits {
            max_rows: 3,
            max_bytes: 10_000,
        };
        store
            .enqueue(
                &[message("h1", "heartbeat", 10), message("a3", "alert", 10)],
                tight,
            )
            .unwrap();
        let left = waiting(&store);
        assert_eq!(left, ["a2", "a3", "h1"]);
        store.enqueue(&[message("a4", "alert", 10)], tight).unwrap();
        store.enqueue(&[message("a5", "alert", 10)], tight).unwrap();
        let left = waiting(&store);
        assert_eq!(left, ["a3", "a4", "a5"]);
        let stats = store.outbox_stats().unwrap();
        assert_eq!((stats.rows, stats.bytes), (3, 30));
        assert_eq!(
            stats.dropped,
            [
                ("alert".to_string(), 1),
                ("forecast".to_string(), 1),
                ("heartbeat".to_string(), 1)
            ]
        );
        // A byte limit counts too.
        let small = OutboxLimits {
            max_rows: 100,
            max_bytes: 25,
        };
        store
            .enqueue(&[message("f2", "forecast", 5)], small)
            .unwrap();
        assert!(store.outbox_stats().unwrap().bytes <= 25);
    }

    #[test]
    fn messages_outlive_their_kinds_time_to_live_by_the_wall_clock_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("o.db"), chrono_tz::UTC).unwrap();
        // Created long ago by the data's clock (a replay), queued now by the wall clock.
        store
            .enqueue(
                &[
                    message("h1", "heartbeat", 10),
                    message("f1", "forecast", 10),
                    message("a1", "alert", 10),
                ],
                OutboxLimits::UNBOUNDED,
            )
            .unwrap();
        let now = wall_clock();
        let ttl = [
            ("heartbeat".to_string(), 3600),
            ("forecast".to_string(), 7200),
        ];
        assert!(
            store.outbox_expire(&ttl, now).unwrap().is_empty(),
            "queued just now"
        );
        assert_eq!(
            store.outbox_expire(&ttl, now + 3601).unwrap(),
            [("heartbeat".to_string(), 1)]
        );
        assert_eq!(
            store.outbox_expire(&ttl, now + 7201).unwrap(),
            [("forecast".to_string(), 1)]
        );
        assert_eq!(waiting(&store), ["a1"], "alerts have no time to live here");
        store
            .enqueue(&[message("h2", "heartbeat", 10)], OutboxLimits::UNBOUNDED)
            .unwrap();
        store.outbox_expire(&ttl, now + 99_999).unwrap();
        let stats = store.outbox_stats().unwrap();
        assert_eq!(
            stats.expired,
            [("forecast".to_string(), 1), ("heartbeat".to_string(), 2)]
        );
    }
}
