//! Where readings come from: one module per kind, each behind [`Source`]. A source turns what it
//! receives into [`Batch`]es of readings for the ingest thread and never judges or stores
//! anything itself; a batch's `reply`, when given, is answered only after its readings are
//! committed. Bad input (a garbled line, an unknown series, a device that does not answer) is
//! logged with where it came from and what was wrong, counted, and never stops the daemon.

mod lines;
mod modbus;
mod replay;
mod serial;
mod simulator;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use hydrowatch_config::{Config, SourceConfig};
use hydrowatch_core::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};

pub use lines::{Field, LineFormat, parse_line};

/// One reading as a source received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The series' name.
    pub series: String,
    /// When it was measured.
    pub ts: Timestamp,
    /// The value.
    pub value: f64,
}

/// What became of each reading of a batch, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Stored now.
    Stored,
    /// Stored before with the same value: nothing changed.
    Duplicate,
    /// Refused, and why (a conflicting value, a reading from the future, an unknown series).
    Refused(String),
}

/// Readings for the ingest thread.
#[derive(Debug)]
pub struct Batch {
    /// Who sent them, for the logs (`tcp 127.0.0.1:50312`, `serial /dev/ttyUSB0`, ...).
    pub origin: String,
    /// The readings.
    pub readings: Vec<Incoming>,
    /// Answered once they are committed.
    pub reply: Option<oneshot::Sender<Vec<Fate>>>,
    /// When the source handed them over (their waits are measured from here).
    pub arrived: std::time::Instant,
}

/// The newest reading stored of each configured series, kept by the ingest thread and read by
/// the line sources: a local time of the repeated autumn hour that arrives on a new connection is
/// placed after it, as a file's row is placed after the row before.
#[derive(Debug, Default)]
pub struct Newest(std::collections::HashMap<String, std::sync::atomic::AtomicI64>);

impl Newest {
    /// From each series' newest stored reading (`None`: none yet).
    pub fn new(series: impl IntoIterator<Item = (String, Option<Timestamp>)>) -> Newest {
        Newest(
            series
                .into_iter()
                .map(|(name, ts)| {
                    (
                        name,
                        std::sync::atomic::AtomicI64::new(ts.unwrap_or(i64::MIN)),
                    )
                })
                .collect(),
        )
    }

    /// The newest reading stored of `series`.
    pub fn get(&self, series: &str) -> Option<Timestamp> {
        self.0
            .get(series)
            .map(|t| t.load(std::sync::atomic::Ordering::Acquire))
            .filter(|&t| t != i64::MIN)
    }

    /// Notes that a reading of `series` at `ts` is stored.
    pub fn stored(&self, series: &str, ts: Timestamp) {
        if let Some(t) = self.0.get(series) {
            t.fetch_max(ts, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// Counters every source shares with the health endpoint.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Lines, rows or polls that could not be turned into readings.
    pub bad_input: std::sync::atomic::AtomicU64,
    /// Polls of a device that did not answer in time.
    pub timeouts: std::sync::atomic::AtomicU64,
}

/// What a running source is given.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Where batches go.
    pub tx: mpsc::Sender<Batch>,
    /// Turns true when the daemon stops.
    pub stop: watch::Receiver<bool>,
    /// The device's zone (times written without an offset are local times).
    pub tz: Tz,
    /// Names of the configured series.
    pub series: Arc<Vec<String>>,
    /// The newest reading stored of each series.
    pub newest: Arc<Newest>,
    /// Shared counters.
    pub counters: Arc<SourceCounters>,
}

impl Intake {
    /// Sends a batch; `false` when the daemon is stopping.
    pub async fn send(&self, origin: &str, readings: Vec<Incoming>) -> bool {
        if readings.is_empty() {
            return true;
        }
        self.tx
            .send(Batch {
                origin: origin.into(),
                readings,
                reply: None,
                arrived: std::time::Instant::now(),
            })
            .await
            .is_ok()
    }

    /// Sends a batch and waits until it is committed; `None` when the daemon is stopping.
    pub async fn commit(&self, origin: &str, readings: Vec<Incoming>) -> Option<Vec<Fate>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Batch {
                origin: origin.into(),
                readings,
                reply: Some(reply),
                arrived: std::time::Instant::now(),
            })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Whether the daemon is stopping.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d`, or less when the daemon stops; `false` when it stops.
    pub async fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    /// Counts and logs a device that did not answer.
    pub fn timeout(&self, origin: &str, message: &str) {
        self.counters
            .timeouts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(source = origin, "device not answering: {message}");
    }

    /// Counts and logs one piece of bad input.
    pub fn bad_input(&self, origin: &str, message: &str) {
        self.counters
            .bad_input
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(source = origin, "bad input: {message}");
    }
}

/// Why a source could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file, port or socket could not be opened.
    #[error("{origin}: {message}")]
    Open {
        /// The source.
        origin: String,
        /// What failed.
        message: String,
    },
}

/// The future a running source is.
pub type Running = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;

/// A source of readings.
pub trait Source: Send {
    /// Its name in the logs, e.g. `tcp 127.0.0.1:7010`.
    fn name(&self) -> String;
    /// Runs until the daemon stops (or, for a file, until it is replayed).
    fn run(self: Box<Self>, intake: Intake) -> Running;
}

/// The sources of a configuration.
pub fn from_config(config: &Config) -> Vec<Box<dyn Source>> {
    config
        .source
        .iter()
        .map(|s| -> Box<dyn Source> {
            match s {
                SourceConfig::Simulator(c) => {
                    Box::new(simulator::Simulator::new(c.clone(), config.device.timezone))
                }
                SourceConfig::CsvReplay(c) => Box::new(replay::Replay::new(c.clone())),
                SourceConfig::Stdin(_) => Box::new(lines::Stdin),
                SourceConfig::Tcp(c) => Box::new(lines::Tcp::new(c.listen.clone())),
                SourceConfig::Serial(c) => Box::new(serial::Serial::new(c.clone())),
                SourceConfig::Modbus(c) => Box::new(modbus::Modbus::new(c.clone())),
            }
        })
        .collect()
}

/// Paces a replay: data time runs `speed` times faster than the wall clock from the first
/// reading on (0: no waiting at all).
#[derive(Debug)]
pub struct Pacer {
    speed: f64,
    start: Option<(Timestamp, tokio::time::Instant)>,
}

impl Pacer {
    /// A pacer at `speed`.
    pub fn new(speed: f64) -> Pacer {
        Pacer { speed, start: None }
    }

    /// How long to wait before sending the reading of data time `ts`.
    pub fn delay(&mut self, ts: Timestamp) -> Duration {
        if self.speed <= 0.0 {
            return Duration::ZERO;
        }
        let (t0, wall0) = *self.start.get_or_insert((ts, tokio::time::Instant::now()));
        let due = wall0 + Duration::from_secs_f64(((ts - t0).max(0) as f64) / self.speed);
        due.saturating_duration_since(tokio::time::Instant::now())
    }
}

/// The current minute (wall clock), for readings that carry no time of their own.
pub fn this_minute() -> Timestamp {
    let now = chrono::Utc::now().timestamp();
    now - now.rem_euclid(60)
}
