//! Notifications: admins' [`rules`] say which alarms go to which webhook or e-mail address; a
//! notifier thread raises and clears the server's own `device_silent` alarms
//! ([`crate::silent`]), plans new alarm transitions into the durable [`queue`] in the server's
//! database once a second, and hands what is due to its receiver's sender (a thread per receiver
//! with work, [`MAX_RECEIVERS_AT_ONCE`] at most), which [`send`]s it, retrying with backoff. A
//! receiver that does not answer costs one attempt at a time and delays no other receiver, nor
//! the silence check; a receiver's notifications go out device by device in turn. Shelved alarms
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

pub mod channels;
pub mod queue;
pub mod rules;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hydrowatch_protocol::Notification;

use crate::db::Db;
use crate::periodic::Periodic;
use crate::sql::DbError;
pub use channels::email::{Mailer, MailerError};
use queue::Queued;
use rules::Rule;

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

/// Receivers served at once, each by a thread of its own sending its notifications one at a
/// time (a webhook's origin is a receiver; the e-mail relay is one).
pub const MAX_RECEIVERS_AT_ONCE: usize = 16;
/// Notifications held in this process per receiver; the rest waits in the database.
const QUEUED_PER_RECEIVER: usize = 200;
/// Due notifications taken from the database per round.
const TAKEN_PER_ROUND: i64 = 1000;

/// The notifier: a thread that watches for silent devices, plans and hands due notifications to
/// their receivers' senders, once a second; stopped (after the round and the attempts under
/// way) when dropped.
#[derive(Debug)]
pub struct Notifier {
    rounds: Option<Periodic>,
    deliveries: Arc<Deliveries>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // The rounds first (they start senders), then the senders, each after its attempt.
        drop(self.rounds.take());
        self.deliveries.stop.store(true, Ordering::Relaxed);
        let workers = std::mem::take(&mut self.deliveries.lock().workers);
        for w in workers {
            let _ = w.join();
        }
    }
}

/// Starts the notifier over `db`; webhooks go to private addresses only when
/// `private_webhooks` (the server's [`crate::Settings`] says it).
pub fn start(
    db: Arc<Db>,
    settings: NotifySettings,
    private_webhooks: bool,
) -> std::io::Result<Notifier> {
    let mut http = reqwest::blocking::Client::builder()
        .timeout(channels::ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if !private_webhooks {
        http = http.dns_resolver(Arc::new(channels::webhook::PublicOnly));
    }
    let http = http.build().map_err(std::io::Error::other)?;
    let deliveries = Arc::new(Deliveries::default());
    let shared = Arc::new(Sending {
        db,
        http,
        settings,
        private_webhooks,
    });
    let d = deliveries.clone();
    let rounds = Periodic::start("notifier", shared.settings.every, move |stopping| {
        if let Err(e) = round(&shared, &d, stopping) {
            tracing::error!("notifications: {e}");
        }
    })?;
    Ok(Notifier {
        rounds: Some(rounds),
        deliveries,
    })
}

/// What the rounds and the senders share.
struct Sending {
    db: Arc<Db>,
    http: reqwest::blocking::Client,
    settings: NotifySettings,
    /// Webhooks may go to private addresses (the server's `Settings` says so).
    private_webhooks: bool,
}

/// The deliveries under way in this process.
///
/// Invariants: a notification is in `in_flight` from when it is queued for its receiver until
/// it is marked sent or failed (or dropped from the queue), so a round never queues it twice; a
/// receiver has at most one sender; after a failed attempt its queue is emptied and nothing is
/// queued for it before its backoff has passed (a dead receiver costs one attempt at a time,
/// and delays nobody else's).
#[derive(Debug, Default)]
struct Deliveries {
    stop: AtomicBool,
    state: Mutex<DeliveryState>,
}

#[derive(Debug, Default)]
struct DeliveryState {
    in_flight: HashSet<i64>,
    receivers: HashMap<String, Receiver>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// One receiver's notifications waiting in this process, per device, served in turn (one
/// device's flood does not hold another's first notification back).
#[derive(Debug, Default)]
struct Receiver {
    waiting: BTreeMap<String, VecDeque<(Queued, Rule)>>,
    queued: usize,
    /// The device served last.
    last: Option<String>,
    /// A sender is on it.
    busy: bool,
    /// No attempt before this (Unix seconds): it failed.
    resting_until: i64,
}

impl Receiver {
    fn push(&mut self, q: Queued, rule: Rule) {
        self.queued += 1;
        self.waiting
            .entry(q.device_id.clone())
            .or_default()
            .push_back((q, rule));
    }

    /// The next notification: the oldest of the device after the one served last.
    fn pop(&mut self) -> Option<(Queued, Rule)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let device = match &self.last {
            Some(last) => self
                .waiting
                .range::<String, _>((Excluded(last), Unbounded))
                .next()
                .or_else(|| self.waiting.iter().next()),
            None => self.waiting.iter().next(),
        }?
        .0
        .clone();
        let queue = self.waiting.get_mut(&device)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(&device);
        }
        self.queued = self.queued.saturating_sub(1);
        self.last = Some(device);
        next
    }

    /// Empties the queue: the ids that were in it.
    fn drain(&mut self) -> Vec<i64> {
        self.queued = 0;
        std::mem::take(&mut self.waiting)
            .into_values()
            .flatten()
            .map(|(q, _)| q.id)
            .collect()
    }
}

impl Deliveries {
    fn lock(&self) -> std::sync::MutexGuard<'_, DeliveryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiver a rule's notifications go to (a webhook's origin, the e-mail relay).
fn receiver_of(rule: &Rule) -> String {
    channels::channel_of(rule.record.channel).receiver(&rule.record.target)
}

/// One round: raise silent devices' alarms, plan, then hand what is due to the receivers'
/// senders (never waiting for a delivery).
fn round(
    shared: &Arc<Sending>,
    deliveries: &Arc<Deliveries>,
    stop: &AtomicBool,
) -> Result<(), DbError> {
    let (db, settings) = (&shared.db, &shared.settings);
    let now = chrono::Utc::now().timestamp();
    if let Some(span) = settings.silent_after {
        db.watch_silence(now, i64::try_from(span.as_secs()).unwrap_or(i64::MAX))?;
    }
    let rules = db.rules()?;
    db.plan_notifications(&rules, now)?;
    if stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    let due = db.take_due_notifications(now, TAKEN_PER_ROUND, LEASE_SECONDS)?;
    let mut state = deliveries.lock();
    state.workers.retain(|w| !w.is_finished());
    // Taken for a receiver that rests or has no room: due again then, not after the lease.
    let mut later: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for q in due {
        if state.in_flight.contains(&q.id) {
            continue;
        }
        let Some(rule) = rules.iter().find(|r| r.record.id == q.rule_id) else {
            continue;
        };
        let receiver = state.receivers.entry(receiver_of(rule)).or_default();
        if receiver.resting_until > now {
            later.entry(receiver.resting_until).or_default().push(q.id);
            continue;
        }
        if receiver.queued >= QUEUED_PER_RECEIVER {
            later.entry(now + 1).or_default().push(q.id);
            continue;
        }
        let id = q.id;
        receiver.push(q, rule.clone());
        state.in_flight.insert(id);
    }
    let idle: Vec<String> = state
        .receivers
        .iter()
        .filter(|(_, r)| !r.busy && r.queued > 0)
        .map(|(k, _)| k.clone())
        .collect();
    for key in idle {
        let running = state.receivers.values().filter(|r| r.busy).count();
        if running >= MAX_RECEIVERS_AT_ONCE {
            break;
        }
        if let Some(r) = state.receivers.get_mut(&key) {
            r.busy = true;
        }
        let (shared, d) = (shared.clone(), deliveries.clone());
        let worker = std::thread::Builder::new()
            .name("notify-send".into())
            .spawn(move || deliver(&shared, &d, &key));
        match worker {
            Ok(w) => state.workers.push(w),
            Err(e) => {
                tracing::error!("notifications: cannot start a sender: {e}");
                break;
            }
        }
    }
    state
        .receivers
        .retain(|_, r| r.busy || r.queued > 0 || r.resting_until > now);
    drop(state);
    for (due, ids) in later {
        db.notifications_due_at(&ids, due)?;
    }
    Ok(())
}

/// Sends receiver `key`'s queue one at a time until it is empty, an attempt fails (the rest is
/// dropped and the receiver rests for the failed one's backoff), or the notifier stops.
fn deliver(shared: &Sending, deliveries: &Deliveries, key: &str) {
    loop {
        let next = {
            let mut state = deliveries.lock();
            let Some(receiver) = state.receivers.get_mut(key) else {
                return;
            };
            let next = if deliveries.stop.load(Ordering::Relaxed) {
                None
            } else {
                receiver.pop()
            };
            if next.is_none() {
                receiver.busy = false;
                let dropped = receiver.drain();
                dropped.iter().for_each(|id| {
                    state.in_flight.remove(id);
                });
                return;
            }
            next
        };
        let Some((q, rule)) = next else { return };
        let failed = match attempt(shared, &rule, &q) {
            Ok(failed) => failed,
            Err(e) => {
                tracing::error!("notifications: {e}");
                true
            }
        };
        let mut state = deliveries.lock();
        state.in_flight.remove(&q.id);
        if failed {
            let rest_until = chrono::Utc::now().timestamp() + queue::backoff(q.attempts);
            let dropped = match state.receivers.get_mut(key) {
                Some(receiver) => {
                    receiver.resting_until = rest_until;
                    receiver.busy = false;
                    receiver.drain()
                }
                None => Vec::new(),
            };
            dropped.iter().for_each(|id| {
                state.in_flight.remove(id);
            });
            drop(state);
            // What was waiting behind it is due when the receiver's rest ends.
            if let Err(e) = shared.db.notifications_due_at(&dropped, rest_until) {
                tracing::error!("notifications: {e}");
            }
            return;
        }
    }
}

/// One attempt at `q` by `rule`, recorded: whether it failed.
fn attempt(shared: &Sending, rule: &Rule, q: &Queued) -> Result<bool, DbError> {
    let n = Notification {
        delivery: format!("hw-{}", q.id),
        rule: rule.record.name.clone(),
        device_id: q.device_id.clone(),
        kind: q.kind.clone(),
        count: q.count,
        alarms: q.alarms.clone(),
    };
    let now = chrono::Utc::now().timestamp();
    let settings = &shared.settings;
    let with = channels::Delivery {
        http: &shared.http,
        mailer: settings.mailer.as_ref(),
        private_webhooks: shared.private_webhooks,
    };
    let channel = channels::channel_of(rule.record.channel);
    match channel.send(&with, &rule.record.target, rule.secret.as_deref(), &n, now) {
        Ok(()) => {
            tracing::info!(
                delivery = n.delivery,
                rule = n.rule,
                device = n.device_id,
                "notified"
            );
            shared.db.notification_sent(q.id, now)?;
            Ok(false)
        }
        Err(e) => {
            tracing::warn!(
                delivery = n.delivery,
                attempt = q.attempts + 1,
                "notification not delivered: {e}"
            );
            if shared.db.notification_failed(q, &e, now)? {
                tracing::error!(
                    delivery = n.delivery,
                    "notification given up after {} h: {e}",
                    queue::GIVE_UP_AFTER / 3600
                );
            }
            Ok(true)
        }
    }
}
