//! Notifications: admins' [`rules`] say which alarms go to which webhook or e-mail address; a
//! notifier thread raises and clears the server's own `device_silent` alarms
//! ([`crate::silent`]), plans new alarm transitions into the durable [`queue`] in the server's
//! database once a second, and [`send`]s what is due, retrying with backoff. Shelved alarms
//! notify nobody; a burst of alarms of one device within a rule's window goes out as one message
//! with its count; an alarm still unacknowledged after a rule's delay is notified once more.
//!
//! Invariants: nothing queued is lost across a restart (it is in the database until sent); a
//! notification is sent at least once and carries one delivery id however often it is retried,
//! so that a receiver keeps it once (a server killed after a receiver took it and before it was
//! marked sent sends it again, with the same id). Any number of server processes may share a
//! database: what must happen once (raising silent-device alarms, planning) runs under
//! [`Db::write_alone`]'s lock, and each due notification is taken by one process for
//! [`LEASE_SECONDS`] before it is sent.

pub mod queue;
pub mod rules;
pub mod send;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hydrowatch_protocol::Notification;

use crate::db::Db;
use crate::periodic::Periodic;
use crate::sql::DbError;
pub use send::{Mailer, MailerError};

/// How long a notification taken for sending is left to the process that took it, in seconds
/// (longer than an attempt's time limit): one taken by a server that dies is sent by another
/// (or by it, restarted) this much later.
pub const LEASE_SECONDS: i64 = 30;

/// How the notifier runs.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// The e-mail relay (None: e-mail rules fail their attempts, logged).
    pub mailer: Option<Mailer>,
    /// Time between rounds.
    pub every: Duration,
    /// A device heard from last longer ago than this gets a `device_silent` alarm (None: never).
    pub silent_after: Option<Duration>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            mailer: None,
            every: Duration::from_secs(1),
            silent_after: Some(Duration::from_secs(15 * 60)),
        }
    }
}

/// The notifier's thread; stopped (after the round it is in) when dropped.
pub type Notifier = Periodic;

/// Starts the notifier over `db`.
pub fn start(db: Arc<Db>, settings: NotifySettings) -> std::io::Result<Notifier> {
    let mut http = None;
    Periodic::start("notifier", settings.every, move |stopping| {
        let http = http.get_or_insert_with(|| {
            reqwest::blocking::Client::builder()
                .timeout(send::ATTEMPT_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client without special settings builds")
        });
        if let Err(e) = round(&db, http, &settings, stopping) {
            tracing::error!("notifications: {e}");
        }
    })
}

/// One round: plan, then send what is due (until `stop`).
fn round(
    db: &Db,
    http: &reqwest::blocking::Client,
    settings: &NotifySettings,
    stop: &AtomicBool,
) -> Result<(), DbError> {
    let now = chrono::Utc::now().timestamp();
    if let Some(span) = settings.silent_after {
        db.watch_silence(now, i64::try_from(span.as_secs()).unwrap_or(i64::MAX))?;
    }
    let rules = db.rules()?;
    db.plan_notifications(&rules, now)?;
    // One at a time, so that a notification is never held longer than its own attempt.
    for _ in 0..50 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = chrono::Utc::now().timestamp();
        let Some(q) = db.take_due_notifications(now, 1, LEASE_SECONDS)?.pop() else {
            break;
        };
        let Some(rule) = rules.iter().find(|r| r.record.id == q.rule_id) else {
            continue;
        };
        let n = Notification {
            delivery: format!("hw-{}", q.id),
            rule: rule.record.name.clone(),
            device_id: q.device_id.clone(),
            kind: q.kind.clone(),
            count: q.count,
            alarms: q.alarms.clone(),
        };
        let now = chrono::Utc::now().timestamp();
        match send::send(http, settings.mailer.as_ref(), rule, &n, now) {
            Ok(()) => {
                tracing::info!(
                    delivery = n.delivery,
                    rule = n.rule,
                    device = n.device_id,
                    "notified"
                );
                db.notification_sent(q.id, now)?;
            }
            Err(e) => {
                tracing::warn!(
                    delivery = n.delivery,
                    attempt = q.attempts + 1,
                    "notification not delivered: {e}"
                );
                if db.notification_failed(&q, &e, now)? {
                    tracing::error!(
                        delivery = n.delivery,
                        "notification given up after {} h: {e}",
                        queue::GIVE_UP_AFTER / 3600
                    );
                }
            }
        }
    }
    Ok(())
}
