//! Delivery of the outbox to the central server: when to send, when to queue a heartbeat, how
//! long to wait after a failure and when to give up at the end of a run. [`Delivery`] decides
//! all of it without I/O or a clock of its own (the time is what the caller says), so its rules
//! are unit-tested; [`uplink_thread`] only carries its decisions out.
//!
//! Invariants: a heartbeat is queued at most once per `heartbeat_every` and never after the
//! jobs finished; the wait after a failure grows with jitter up to `retry_max` and restarts from
//! `retry_base` after a success; a finishing run gives up delivering only after failing for
//! `drain` in a row.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hydrowatch_ops::judge::Outbound;
use hydrowatch_store::{OutboxLimits, Store};

use super::{Shared, refresh_outbox};
use crate::uplink::{Backoff, Uplink};

/// How delivery is paced.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    /// The longest wait for new messages before looking at the outbox again.
    pub idle: Duration,
    /// Between heartbeats.
    pub heartbeat_every: Duration,
    /// The first wait after an unreachable server.
    pub retry_base: Duration,
    /// The longest wait after an unreachable server.
    pub retry_max: Duration,
    /// The wait after an answer that is not an acknowledgement (not a network failure).
    pub refused_wait: Duration,
    /// How long a finishing run keeps trying before it leaves the rest for the next start.
    pub drain: Duration,
}

/// Where the daemon is in its life, as delivery sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Normal running.
    Running,
    /// A stop signal came; the jobs are still finishing (their messages are still to come).
    Stopping,
    /// The sources ended (a replay) and the jobs finished: deliver what is left, within `drain`.
    Finishing,
    /// A stop signal came and the jobs finished: one last attempt.
    Final,
}

impl Phase {
    /// The phase of a daemon that was signalled (`stopping`) and whose jobs are done (`finished`).
    pub fn of(stopping: bool, finished: bool) -> Phase {
        match (stopping, finished) {
            (false, false) => Phase::Running,
            (true, false) => Phase::Stopping,
            (false, true) => Phase::Finishing,
            (true, true) => Phase::Final,
        }
    }
}

/// How a pass over the outbox went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything sent was acknowledged; `left` messages are still in the outbox.
    Delivered {
        /// Messages still waiting.
        left: u64,
    },
    /// The bandwidth cap holds the rest back for this long.
    Capped {
        /// Until the next batch may go.
        wait: Duration,
    },
    /// Delivery failed; `transient` when waiting may help (unreachable, 5xx, 429).
    Failed {
        /// Whether to back off and retry soon.
        transient: bool,
    },
}

/// What the uplink thread does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Look at the outbox again at once.
    Again,
    /// Wait until new messages are queued, at most this long.
    WaitForMessages(Duration),
    /// Wait this long (a backoff: new messages do not cut it short).
    Sleep(Duration),
    /// Stop delivering.
    Stop(Stopped),
}

/// Why delivery stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The outbox is empty.
    Delivered,
    /// The last attempt after a stop signal was made.
    LastAttempt,
    /// A finishing run could not deliver for `drain`: the rest waits for the next start.
    DrainExpired,
}

/// The state of delivery: the backoff, the next heartbeat, the failures of a finishing run.
#[derive(Debug)]
pub struct Delivery {
    settings: DeliverySettings,
    backoff: Backoff,
    next_heartbeat: Instant,
    failing_since: Option<Instant>,
}

impl Delivery {
    /// A delivery starting at `now`, whose first heartbeat is due at once.
    pub fn new(settings: DeliverySettings, now: Instant) -> Delivery {
        Delivery {
            backoff: Backoff::new(settings.retry_base, settings.retry_max),
            settings,
            next_heartbeat: now,
            failing_since: None,
        }
    }

    /// Whether to queue a heartbeat now (and if so, the next is due `heartbeat_every` later).
    pub fn heartbeat_due(&mut self, now: Instant, phase: Phase) -> bool {
        let due = now >= self.next_heartbeat && matches!(phase, Phase::Running | Phase::Stopping);
        if due {
            self.next_heartbeat = now + self.settings.heartbeat_every;
        }
        due
    }

    /// What to do after a pass over the outbox that went as `flushed`.
    pub fn after(&mut self, now: Instant, phase: Phase, flushed: Flushed) -> Next {
        if phase == Phase::Final {
            return Next::Stop(Stopped::LastAttempt);
        }
        match flushed {
            Flushed::Delivered { left } => {
                self.backoff.reset();
                self.failing_since = None;
                match phase {
                    Phase::Finishing if left == 0 => Next::Stop(Stopped::Delivered),
                    Phase::Finishing => Next::Again,
                    _ => Next::WaitForMessages(self.settings.idle),
                }
            }
            Flushed::Capped { wait } => {
                // Not a failure: the link works, the cap paces it.
                self.backoff.reset();
                self.failing_since = None;
                Next::Sleep(wait)
            }
            Flushed::Failed { transient } => {
                let wait = if transient {
                    self.backoff.next_delay()
                } else {
                    self.settings.refused_wait
                };
                match phase {
                    Phase::Finishing => {
                        let since = *self.failing_since.get_or_insert(now);
                        if now.duration_since(since) >= self.settings.drain {
                            Next::Stop(Stopped::DrainExpired)
                        } else {
                            Next::Sleep(wait.min(Duration::from_secs(2)))
                        }
                    }
                    // The jobs' last messages are still to come: wait for them, not the backoff.
                    Phase::Stopping => Next::WaitForMessages(Duration::from_millis(500)),
                    _ => Next::Sleep(wait),
                }
            }
        }
    }
}

/// Delivers the outbox as [`Delivery`] decides, and queues the heartbeats.
pub(super) fn uplink_thread(
    shared: &Shared,
    mut store: Store,
    mut uplink: Uplink,
    settings: DeliverySettings,
) {
    let m = &shared.metrics;
    let limits =
        Outbound::from_config(&shared.config).map_or(OutboxLimits::UNBOUNDED, |o| o.limits);
    let mut delivery = Delivery::new(settings, Instant::now());
    loop {
        let phase = Phase::of(shared.stopping(), shared.jobs_done.load(Ordering::Acquire));
        if delivery.heartbeat_due(Instant::now(), phase) {
            let now = chrono::Utc::now().timestamp();
            let message = hydrowatch_ops::envelope::heartbeat(
                &shared.config.device.id,
                m.heartbeat(now),
                now,
            );
            if let Err(e) = store.enqueue(&[message], limits) {
                tracing::error!("cannot queue a heartbeat: {e}");
            }
        }
        let result = uplink.flush(&mut store);
        refresh_outbox(&store, m);
        let flushed = match &result {
            Ok(sent) => {
                m.delivered
                    .fetch_add(sent.delivered as u64, Ordering::Relaxed);
                m.uplink_bytes.fetch_add(sent.bytes, Ordering::Relaxed);
                match sent.capped {
                    Some(wait) => {
                        m.uplink_capped.fetch_add(1, Ordering::Relaxed);
                        Flushed::Capped { wait }
                    }
                    None => Flushed::Delivered {
                        left: m.outbox_depth.load(Ordering::Relaxed),
                    },
                }
            }
            Err(e) => Flushed::Failed {
                transient: e.is_transient(),
            },
        };
        let next = delivery.after(Instant::now(), phase, flushed);
        if let (Err(e), Next::Sleep(wait) | Next::WaitForMessages(wait)) = (&result, next) {
            tracing::warn!(
                "delivery failed: {e}; next attempt in {:.1} s",
                wait.as_secs_f64()
            );
        }
        match next {
            Next::Again => {}
            Next::WaitForMessages(d) => shared.uplink_bell.wait(d),
            Next::Sleep(d) => shared.sleep(d),
            Next::Stop(Stopped::DrainExpired) => {
                tracing::warn!(
                    "stopping with {} messages still waiting in the outbox (kept for the next start)",
                    m.outbox_depth.load(Ordering::Relaxed)
                );
                return;
            }
            Next::Stop(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            idle: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(900),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            refused_wait: Duration::from_secs(60),
            drain: Duration::from_secs(10),
        }
    }

    const UNREACHABLE: Flushed = Flushed::Failed { transient: true };

    #[test]
    fn heartbeats_come_every_period_and_never_once_the_jobs_finished() {
        let t0 = Instant::now();
        let mut d = Delivery::new(settings(), t0);
        assert!(d.heartbeat_due(t0, Phase::Running));
        assert!(!d.heartbeat_due(t0 + Duration::from_secs(899), Phase::Running));
        assert!(d.heartbeat_due(t0 + Duration::from_secs(900), Phase::Running));
        assert!(!d.heartbeat_due(t0 + Duration::from_secs(1000), Phase::Running));
        // Signalled, jobs still running: still alive, still reporting.
        assert!(d.heartbeat_due(t0 + Duration::from_secs(1800), Phase::Stopping));
        for phase in [Phase::Finishing, Phase::Final] {
            assert!(!d.heartbeat_due(t0 + Duration::from_secs(99_999), phase));
        }
    }

    #[test]
    fn an_unreachable_server_is_retried_with_growing_jittered_waits_reset_by_a_success() {
        let t0 = Instant::now();
        let mut d = Delivery::new(settings(), t0);
        let mut waits = Vec::new();
        for _ in 0..12 {
            match d.after(t0, Phase::Running, UNREACHABLE) {
                Next::Sleep(w) => waits.push(w),
                other => panic!("{other:?}"),
            }
        }
        for (n, w) in waits.iter().enumerate() {
            assert!(
                *w <= Duration::from_secs((1u64 << n).min(300)),
                "{n}: {w:?}"
            );
        }
        assert!(
            waits.iter().any(|w| *w > Duration::from_secs(16)),
            "{waits:?}"
        );
        // Refused (not a network failure): a fixed wait.
        assert_eq!(
            d.after(t0, Phase::Running, Flushed::Failed { transient: false }),
            Next::Sleep(Duration::from_secs(60))
        );
        assert_eq!(
            d.after(t0, Phase::Running, Flushed::Delivered { left: 0 }),
            Next::WaitForMessages(Duration::from_secs(30))
        );
        match d.after(t0, Phase::Running, UNREACHABLE) {
            Next::Sleep(w) => assert!(w <= Duration::from_secs(1), "{w:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_finishing_run_drains_the_outbox_and_gives_up_after_drain_failing_in_a_row() {
        let t0 = Instant::now();
        let mut d = Delivery::new(settings(), t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            d.after(at(0), Phase::Finishing, Flushed::Delivered { left: 5 }),
            Next::Again
        );
        match d.after(at(1), Phase::Finishing, UNREACHABLE) {
            Next::Sleep(w) => assert!(w <= Duration::from_secs(2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            d.after(at(10), Phase::Finishing, UNREACHABLE),
            Next::Sleep(_)
        ));
        // A success in between restarts the count.
        assert_eq!(
            d.after(at(10), Phase::Finishing, Flushed::Delivered { left: 1 }),
            Next::Again
        );
        assert!(matches!(
            d.after(at(12), Phase::Finishing, UNREACHABLE),
            Next::Sleep(_)
        ));
        assert_eq!(
            d.after(at(22), Phase::Finishing, UNREACHABLE),
            Next::Stop(Stopped::DrainExpired)
        );
        let mut d = Delivery::new(settings(), t0);
        assert_eq!(
            d.after(at(0), Phase::Finishing, Flushed::Delivered { left: 0 }),
            Next::Stop(Stopped::Delivered)
        );
    }

    #[test]
    fn the_bandwidth_cap_paces_delivery_without_counting_as_a_failure() {
        let t0 = Instant::now();
        let mut d = Delivery::new(settings(), t0);
        let wait = Duration::from_millis(700);
        for phase in [Phase::Running, Phase::Finishing] {
            assert_eq!(
                d.after(t0, phase, Flushed::Capped { wait }),
                Next::Sleep(wait)
            );
        }
        // A finishing run paced for longer than `drain` is not given up.
        assert_eq!(
            d.after(
                t0 + Duration::from_secs(60),
                Phase::Finishing,
                Flushed::Capped { wait }
            ),
            Next::Sleep(wait)
        );
    }

    #[test]
    fn a_signal_waits_for_the_jobs_last_messages_then_makes_one_last_attempt() {
        let t0 = Instant::now();
        let mut d = Delivery::new(settings(), t0);
        assert_eq!(
            d.after(t0, Phase::Stopping, UNREACHABLE),
            Next::WaitForMessages(Duration::from_millis(500))
        );
        assert_eq!(Phase::of(true, false), Phase::Stopping);
        assert_eq!(Phase::of(true, true), Phase::Final);
        assert_eq!(Phase::of(false, true), Phase::Finishing);
        for flushed in [UNREACHABLE, Flushed::Delivered { left: 3 }] {
            assert_eq!(
                d.after(t0, Phase::Final, flushed),
                Next::Stop(Stopped::LastAttempt)
            );
        }
    }
}
