//! MQTT ingest (`serve --mqtt URL`): the server's replicas share the subscription
//! `$share/hydrowatch/hydrowatch/v1/+/+`, so the broker hands each device message to one of them;
//! each is checked as an HTTPS one is, stored by the same [`Db::ingest`], and only then
//! acknowledged to the broker. And what Mosquitto needs to know of the fleet: its password file
//! (one line per device, the device's token as its password) and its ACL (a device may publish
//! only under its own id).
//!
//! Invariants: a message is acknowledged to the broker only once it is stored, or once it is
//! recorded in `refused_messages` (it can never be accepted: sending it again would be refused
//! again); while the database fails, the same message is tried again (after 1, 2, 4, 8 s)
//! and nothing after it is read, so the broker keeps the rest; after 5 failed attempts it is set
//! aside, kept whole in `refused_messages`, if the database takes that record (one message the
//! database refuses does not stall the intake; a database that takes nothing loses nothing). The device's identity is the topic's, which the broker's
//! ACL ties to the user it authenticated; the envelope must name the same device.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use hydrowatch_mqtt::{BrokerSettings, Event, Link, Received, SHARED_SUBSCRIPTION, parse_topic};
use serde_json::Value;

use crate::db::Db;
use crate::sql::{Arg, DbError};

/// Bytes of a refused message's payload kept (a set-aside one is kept whole).
const REFUSED_PREFIX: usize = 200;

/// Largest payload read (one envelope; HTTPS allows 4 MB for a batch).
pub const MAX_PAYLOAD: usize = 4 << 20;

/// Counts of the MQTT ingest since the process started.
#[derive(Debug, Default)]
pub struct MqttCounters {
    /// Messages stored (new ones).
    pub stored: AtomicU64,
    /// Messages received again (already stored) and acknowledged.
    pub repeated: AtomicU64,
    /// Messages refused for good (recorded in `refused_messages`).
    pub refused: AtomicU64,
    /// Database failures that held a message back (tried again).
    pub retried: AtomicU64,
}

/// The running MQTT ingest; stops when dropped.
#[derive(Debug)]
pub struct MqttIngest {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Its counts.
    pub counters: Arc<MqttCounters>,
}

impl MqttIngest {
    /// Stops reading (messages not yet acknowledged are the broker's again) and waits.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MqttIngest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Connects to the broker (a persistent session named by `settings.client_id`, reconnecting
/// with waits up to 30 s) and ingests in a thread of its own.
pub fn start(
    db: Arc<Db>,
    settings: BrokerSettings,
) -> Result<MqttIngest, hydrowatch_mqtt::MqttError> {
    let link = Link::open(&settings, true, true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(MqttCounters::default());
    let thread = {
        let (stop, counters) = (stop.clone(), counters.clone());
        let address = settings.address();
        std::thread::Builder::new()
            .name("mqtt ingest".into())
            .spawn(move || run(&db, &link, &address, &stop, &counters))
            .map_err(|e| hydrowatch_mqtt::MqttError::Down(e.to_string()))?
    };
    Ok(MqttIngest {
        stop,
        thread: Some(thread),
        counters,
    })
}

fn run(db: &Db, link: &Link, address: &str, stop: &AtomicBool, counters: &MqttCounters) {
    while !stop.load(Ordering::Acquire) {
        match link.next(Duration::from_millis(200)) {
            None | Some(Event::Sent(_) | Event::Acked { .. }) => {}
            Some(Event::Connected { session_present }) => {
                tracing::info!(session_present, "MQTT: connected to {address}");
                // Again on every connection: harmless when the session kept it.
                if let Err(e) = link.subscribe(SHARED_SUBSCRIPTION) {
                    tracing::error!("MQTT: cannot subscribe: {e}");
                }
            }
            Some(Event::Down(why)) => {
                tracing::warn!("MQTT: {address}: {why}; reconnecting");
            }
            Some(Event::Received(r)) => {
                // Stored (or refused for good, or set aside) before the broker hears of it.
                let mut failures = 0u32;
                loop {
                    let now = chrono::Utc::now().timestamp();
                    let result = if failures >= ATTEMPTS {
                        set_aside(db, &r, now)
                    } else {
                        ingest_message(db, &r.topic, &r.payload, now)
                    };
                    match result {
                        Ok(outcome) => {
                            let c = match outcome {
                                Outcome::Stored => &counters.stored,
                                Outcome::Repeated => &counters.repeated,
                                Outcome::Refused => &counters.refused,
                            };
                            c.fetch_add(1, Ordering::Relaxed);
                            if let Err(e) = link.ack(&r) {
                                tracing::warn!("MQTT: cannot acknowledge: {e}");
                            }
                            break;
                        }
                        Err(e) => {
                            counters.retried.fetch_add(1, Ordering::Relaxed);
                            failures += 1;
                            // 1, 2, 4, 8 s, then set aside at once; while even that fails (the
                            // database takes nothing), every 32 s at most.
                            let wait = if failures == ATTEMPTS {
                                Duration::ZERO
                            } else {
                                Duration::from_secs(1 << (failures - 1).min(5))
                            };
                            tracing::error!(
                                topic = r.topic,
                                "MQTT: cannot store a message (attempt {failures}), trying again in {} s: {e}",
                                wait.as_secs()
                            );
                            let until = std::time::Instant::now() + wait;
                            while std::time::Instant::now() < until {
                                if stop.load(Ordering::Acquire) {
                                    return;
                                }
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Attempts at storing one message before it is set aside: kept whole in `refused_messages`
/// and acknowledged, if the database takes that record (a message the database alone refuses,
/// again and again, must not stall the replica's intake; a database that takes nothing keeps
/// it being tried, so nothing is lost).
const ATTEMPTS: u32 = 5;

/// Sets `r` aside after [`ATTEMPTS`] failures: recorded whole with the reason.
fn set_aside(db: &Db, r: &Received, now: i64) -> Result<Outcome, DbError> {
    let device = parse_topic(&r.topic).map_or("", |(d, _)| d);
    let reason = format!(
        "set aside after {ATTEMPTS} attempts to store it failed (the database refused this message; see the log)"
    );
    tracing::error!(
        topic = r.topic,
        "MQTT: message {reason}; kept whole in refused_messages"
    );
    db.refuse_message(device, None, &r.topic, &reason, &r.payload, usize::MAX, now)
        .map(|()| Outcome::Refused)
}

/// What became of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored.
    Stored,
    /// Stored before (the same message again).
    Repeated,
    /// Refused for good, and recorded in `refused_messages`.
    Refused,
}

/// Checks and stores one message received on `topic` at `now`: the MQTT ingest's one path. A
/// message that can never be accepted is recorded in `refused_messages`. An error is the
/// database's (try again).
pub fn ingest_message(db: &Db, topic: &str, payload: &[u8], now: i64) -> Result<Outcome, DbError> {
    let refuse = |device: &str, message_id: Option<&str>, reason: String| {
        tracing::error!(
            topic,
            "MQTT: message refused for good (kept in refused_messages): {reason}"
        );
        db.refuse_message(
            device,
            message_id,
            topic,
            &reason,
            payload,
            REFUSED_PREFIX,
            now,
        )
        .map(|()| Outcome::Refused)
    };
    let (device, kind) = match parse_topic(topic) {
        Ok(t) => t,
        Err(e) => return refuse("", None, e.to_string()),
    };
    if payload.len() > MAX_PAYLOAD {
        return refuse(
            device,
            None,
            format!("the payload is over {} MB", MAX_PAYLOAD >> 20),
        );
    }
    let value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                device,
                None,
                format!(
                    "the payload is not JSON: {}",
                    hydrowatch_protocol::check::prefix_error(&e.to_string())
                ),
            );
        }
    };
    let message_id = value["message_id"].as_str();
    if !db.has_device(device)? {
        return refuse(
            device,
            message_id,
            format!(
                "unknown device {:?} (issue it a token with `hydrowatch serve token create`)",
                hydrowatch_core::prefix(device)
            ),
        );
    }
    let checked = match hydrowatch_protocol::check(0, &value, device, now) {
        Ok(c) => c,
        Err(e) => return refuse(device, message_id, e.to_string()),
    };
    if checked.kind().name() != kind {
        return refuse(
            device,
            message_id,
            format!(
                "published on the {:?} topic, but the envelope is a {}",
                hydrowatch_core::prefix(kind),
                checked.kind().name()
            ),
        );
    }
    match db.ingest(device, std::slice::from_ref(&checked), now) {
        Ok(1) => Ok(Outcome::Stored),
        Ok(_) => Ok(Outcome::Repeated),
        Err(DbError::Conflict(_)) => refuse(
            device,
            message_id,
            "the message id was stored before with other content".into(),
        ),
        Err(e) => Err(e),
    }
}

impl Db {
    /// Records a message that the MQTT ingest can never accept: why, and the first `keep`
    /// bytes of its payload. Every text is made storable first (control and bidirectional
    /// characters replaced by U+FFFD: a NUL in a hostile topic or payload must not make the
    /// record itself fail on PostgreSQL).
    #[allow(clippy::too_many_arguments)]
    pub fn refuse_message(
        &self,
        device: &str,
        message_id: Option<&str>,
        topic: &str,
        reason: &str,
        payload: &[u8],
        keep: usize,
        now: i64,
    ) -> Result<(), DbError> {
        let storable = |t: &str| -> String {
            t.chars()
                .map(|c| {
                    if hydrowatch_core::unsafe_char(c) {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect()
        };
        let prefix = storable(&String::from_utf8_lossy(
            &payload[..payload.len().min(keep)],
        ));
        let (device, topic, reason) = (storable(device), storable(topic), storable(reason));
        let message_id = message_id.map(storable);
        let (device, topic, reason) = (device.as_str(), topic.as_str(), reason.as_str());
        let message_id = message_id.as_deref();
        self.write(|c| {
            c.exec(
                "INSERT INTO refused_messages (device_id, message_id, topic, reason, payload_prefix, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[
                    Arg::Text(Some(device)),
                    Arg::Text(message_id),
                    Arg::Text(Some(topic)),
                    Arg::Text(Some(reason)),
                    Arg::Text(Some(&prefix)),
                    Arg::Int(now),
                ],
            )
            .map(|_| ())
        })
    }

    /// How many messages were refused for good (`refused_messages`).
    pub fn refused_messages(&self) -> Result<i64, DbError> {
        self.read(|c| c.rows("SELECT count(*) FROM refused_messages", &[])?[0].int(0))
    }
}

/// Mosquitto's password-file line for `user` (PBKDF2-SHA512, 101 rounds, a 12-byte salt: its
/// `$7$` format, what `mosquitto_passwd` writes).
pub fn mosquitto_password_line(user: &str, password: &str) -> String {
    let salt: [u8; 12] = rand::random();
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, 101, &mut hash);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("{user}:$7$101${}${}", b64.encode(salt), b64.encode(hash))
}

/// Puts `user`'s line into Mosquitto's password file `file` (created if missing; an existing
/// line of the user is replaced, every other line kept), by writing a new file and renaming it.
/// Mosquitto reads it again on SIGHUP.
pub fn set_mosquitto_password(file: &Path, user: &str, password: &str) -> std::io::Result<()> {
    let old = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut text: String = old
        .lines()
        .filter(|l| l.split_once(':').map(|(u, _)| u) != Some(user))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&mosquitto_password_line(user, password));
    text.push('\n');
    let tmp = file.with_extension("new");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)
}

/// Mosquitto's ACL for a fleet: `server_user` reads every device's topics, a device (logged in
/// with its id as user name) publishes only under its own id.
pub fn mosquitto_acl(server_user: &str) -> String {
    format!(
        "# hydrowatch: written by `hydrowatch serve mqtt-acl`.\n\
         # The server's replicas read every device's messages.\n\
         user {server_user}\n\
         topic read hydrowatch/v1/#\n\n\
         # A device (user name = its id) publishes only under its own id.\n\
         pattern write hydrowatch/v1/%u/+\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_lines_are_in_mosquittos_format_and_replace_the_users_old_line() {
        let line = mosquitto_password_line("dma-017", "secret");
        let parts: Vec<&str> = line.split('$').collect();
        assert_eq!(parts[0], "dma-017:");
        assert_eq!(&parts[1..3], ["7", "101"]);
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(parts[3]).unwrap().len(), 12);
        assert_eq!(b64.decode(parts[4]).unwrap().len(), 64);
        assert_ne!(line, mosquitto_password_line("dma-017", "secret"), "salted");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwd");
        set_mosquitto_password(&file, "a", "1").unwrap();
        set_mosquitto_password(&file, "b", "2").unwrap();
        let before = std::fs::read_to_string(&file).unwrap();
        set_mosquitto_password(&file, "a", "3").unwrap();
        let after = std::fs::read_to_string(&file).unwrap();
        assert_eq!(after.lines().count(), 2);
        let line_of = |text: &str, user: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{user}:")))
                .unwrap()
                .to_string()
        };
        assert_eq!(line_of(&before, "b"), line_of(&after, "b"));
        assert_ne!(line_of(&before, "a"), line_of(&after, "a"));
    }
}
