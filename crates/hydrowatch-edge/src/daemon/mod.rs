//! `hydrowatch run`: the threads of the daemon and how they stop.
//!
//! - sources (tokio tasks) send batches of readings to the bounded ingest channel;
//! - the ingest thread ([`ingest`]) admits and commits them (one transaction for all batches
//!   waiting), answers the sources, and rings the detection and jobs threads;
//! - the detection thread ([`detect`]) judges what is committed and not judged yet;
//! - the jobs thread ([`jobs`]), at low priority, runs the forecast, retention and retraining
//!   when due ([`crate::schedule`]);
//! - the uplink thread ([`delivery`]) delivers the outbox, with backoff, and queues heartbeats;
//! - the health endpoint (a tokio task) shows the counters.
//!
//! Stopping (SIGTERM, SIGINT): sources stop, the ingest thread commits what it was given, the
//! detection thread judges it, the jobs thread finishes the job it is in, and the daemon exits 0.
//! With `until_sources_end` the daemon also stops when every source has ended, after a last
//! pass of each thread and a last delivery (given up after `drain`: what is not delivered waits
//! in the outbox for the next start).

mod delivery;
mod detect;
mod ingest;
mod jobs;
mod training;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use hydrowatch_config::Config;
use hydrowatch_core::Timestamp;
use hydrowatch_detect::Refit;
use hydrowatch_forecast::Holidays;
use hydrowatch_ops::judge::{DatabaseDetector, JudgeError, time_of_day};
use hydrowatch_store::{Store, StoreError};
use tokio::sync::{mpsc, watch};

pub use delivery::{Delivery, DeliverySettings, Flushed, Next, Phase, Stopped};
pub use ingest::Admission;
pub use jobs::{Job, JobFailed};
pub use training::{WORKER_COMMAND, worker};

use crate::clock::Clock;
use crate::health::Metrics;
use crate::latency::Waiting;
use crate::sources::{self, Batch, Intake, Newest, SourceCounters};
use crate::uplink::{Uplink, UplinkConfig};

/// Batches waiting for the ingest thread before sources wait.
const CHANNEL: usize = 256;

/// Why the daemon could not start (once running, failures are logged and retried, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The database could not be opened or prepared.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The detector could not be set up.
    #[error(transparent)]
    Judge(#[from] JudgeError),
    /// The configuration cannot run.
    #[error("{0}")]
    Setup(String),
    /// A thread could not be started.
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
}

/// The daemon of one device.
#[derive(Debug)]
pub struct Daemon {
    /// The configuration.
    pub config: Config,
    /// The database file.
    pub db: PathBuf,
    /// Stop when every source has ended (a replay), after everything is judged and delivered.
    pub until_sources_end: bool,
    /// How long a finishing daemon keeps trying to deliver the outbox.
    pub drain: Duration,
    /// The program whose [`WORKER_COMMAND`] trains models in a child process (`hydrowatch`
    /// itself), so that training's memory returns when it ends; `None` trains in this process.
    pub worker: Option<PathBuf>,
}

/// What a run did, printed when it stops.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// The final counters.
    pub metrics: serde_json::Value,
    /// Seconds it ran.
    pub seconds: f64,
}

/// A doorbell: one thread rings, another waits for it (or a timeout).
#[derive(Debug, Default)]
struct Bell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Bell {
    fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let rung = self.rung.lock().unwrap_or_else(|e| e.into_inner());
        let (mut rung, _) = self
            .cv
            .wait_timeout_while(rung, timeout, |r| !*r)
            .unwrap_or_else(|e| e.into_inner());
        *rung = false;
    }
}

/// What the threads share.
struct Shared {
    config: Config,
    db: PathBuf,
    tz: Tz,
    /// The forecasters' days off: the national calendar and the listed days.
    holidays: Holidays,
    drain: Duration,
    /// See [`Daemon::worker`].
    worker: Option<PathBuf>,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// The newest reading stored of each series (the line sources place the repeated autumn
    /// hour after it).
    newest: Arc<Newest>,
    /// Stop now (a signal).
    stop: AtomicBool,
    /// Every source ended and the ingest thread committed everything: finish and stop.
    ingest_done: AtomicBool,
    detect_done: AtomicBool,
    jobs_done: AtomicBool,
    detect_bell: Bell,
    jobs_bell: Bell,
    uplink_bell: Bell,
    /// Readings committed and not judged yet, with their arrival (for the verdict's wait).
    waiting: Mutex<Vec<Waiting>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn open(&self) -> Result<Store, StoreError> {
        Store::open(&self.db, self.tz)
    }

    /// Sleeps `d` unless the daemon stops meanwhile.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

impl Daemon {
    /// Runs until SIGTERM or SIGINT (or, with `until_sources_end`, until the sources end).
    pub fn run(self) -> Result<Summary, DaemonError> {
        let started = Instant::now();
        let config = self.config;
        if config.source.is_empty() {
            return Err(DaemonError::Setup(
                "no [[source]] is configured: add one (kinds: simulator, csv_replay, stdin, tcp, serial, modbus; see `hydrowatch config example`)".into(),
            ));
        }
        let tz = config.device.timezone;
        let store = Store::open(&self.db, tz)?;
        let mut ids = HashMap::new();
        for s in &config.series {
            ids.insert(s.name.clone(), store.ensure_series(&s.name, Some(&s.unit))?);
        }
        let replay = config.source.iter().any(|s| s.speed() != 1.0);
        let counters = Arc::new(SourceCounters::default());
        let metrics = Arc::new(Metrics {
            device_id: config.device.id.clone(),
            sources: counters.clone(),
            ..Metrics::default()
        });
        metrics
            .started
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        // The newest reading of each stored series, read once: a replay's clock starts at the
        // latest, and the line sources place the repeated autumn hour after a series' own.
        let mut stored_newest = HashMap::new();
        for s in store.series()? {
            if let Some((_, newest)) = store.span(s.id)? {
                stored_newest.insert(s.name, newest);
            }
        }
        let newest = Arc::new(Newest::new(
            config
                .series
                .iter()
                .map(|s| (s.name.clone(), stored_newest.get(&s.name).copied())),
        ));
        let clock = if replay {
            tracing::info!(
                "a source runs faster than real time: the daemon keeps time by the readings"
            );
            let latest = stored_newest.values().copied().max().unwrap_or(i64::MIN);
            Clock::Readings(AtomicI64::new(latest))
        } else {
            Clock::Wall(AtomicI64::new(i64::MIN))
        };
        let calendar = hydrowatch_ops::forecasting::calendar(&config, tz)
            .map_err(|e| DaemonError::Setup(e.to_string()))?;
        tracing::info!("holidays: {}", calendar.describe());
        let today = chrono::Utc::now().with_timezone(&tz).date_naive();
        if let Some(until) = calendar.ended(today) {
            tracing::warn!(
                "the national holiday calendar ends {until}: list the coming holidays in [forecast] holidays"
            );
        }
        let shared = Arc::new(Shared {
            db: self.db.clone(),
            tz,
            holidays: calendar.holidays,
            drain: self.drain,
            worker: self.worker.clone(),
            metrics: metrics.clone(),
            clock,
            newest,
            stop: AtomicBool::new(false),
            ingest_done: AtomicBool::new(false),
            detect_done: AtomicBool::new(false),
            jobs_done: AtomicBool::new(false),
            detect_bell: Bell::default(),
            jobs_bell: Bell::default(),
            uplink_bell: Bell::default(),
            waiting: Mutex::new(Vec::new()),
            config,
        });
        refresh_outbox(&store, &metrics);
        tracing::info!(
            device = %shared.config.device.id,
            db = %self.db.display(),
            sources = shared.config.source.len(),
            "hydrowatch daemon starting"
        );

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hydrowatch-io")
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::channel::<Batch>(CHANNEL);
        let (stop_tx, stop_rx) = watch::channel(false);

        // The detector starts (and catches up on what a crash left unjudged) before readings flow.
        let detector = {
            let shared = shared.clone();
            let mut store = shared.open()?;
            let (detector, since) = DatabaseDetector::open(
                &store,
                &shared.config,
                Refit::Daily(time_of_day(shared.config.schedule.criteria_at)),
                None,
                matches!(shared.clock, Clock::Wall(_))
                    .then_some(i64::from(shared.config.daemon.future_seconds)),
            )?;
            std::thread::Builder::new()
                .name("detect".into())
                .spawn(move || detect::detect_thread(&shared, &mut store, detector, since))?
        };
        let ingest = {
            let shared = shared.clone();
            let admission =
                ingest::admission(ids, tz, &shared.clock, shared.config.daemon.future_seconds);
            std::thread::Builder::new()
                .name("ingest".into())
                .spawn(move || ingest::ingest_thread(&shared, store, rx, &admission))?
        };
        let jobs = {
            let shared = shared.clone();
            let store = shared.open()?;
            std::thread::Builder::new()
                .name("jobs".into())
                .spawn(move || jobs::jobs_thread(&shared, store))?
        };
        let uplink = match &shared.config.server {
            Some(server) => {
                let uplink = Uplink::new(UplinkConfig::of(server, &shared.config.device.id))
                    .map_err(|e| DaemonError::Setup(e.to_string()))?;
                let settings = DeliverySettings {
                    idle: Duration::from_secs(30),
                    heartbeat_every: Duration::from_secs(
                        u64::from(shared.config.daemon.heartbeat_minutes) * 60,
                    ),
                    retry_base: Duration::from_secs(1),
                    retry_max: Duration::from_secs(u64::from(server.retry_max_seconds)),
                    refused_wait: Duration::from_secs(60),
                    drain: shared.drain,
                };
                let shared = shared.clone();
                let store = shared.open()?;
                Some(
                    std::thread::Builder::new()
                        .name("uplink".into())
                        .spawn(move || delivery::uplink_thread(&shared, store, uplink, settings))?,
                )
            }
            None => None,
        };

        let until_sources_end = self.until_sources_end;
        let names = Arc::new(
            shared
                .config
                .series
                .iter()
                .map(|s| s.name.clone())
                .collect(),
        );
        let outcome: Result<(), DaemonError> = runtime.block_on(async {
            if !shared.config.daemon.health_listen.is_empty() {
                let addr = &shared.config.daemon.health_listen;
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    DaemonError::Setup(format!("daemon.health_listen = {addr:?}: cannot listen: {e}"))
                })?;
                tracing::info!(listen = %addr, "health endpoint: /health and /metrics");
                let app = crate::health::router(metrics.clone());
                let mut stop = stop_rx.clone();
                tokio::spawn(hydrowatch_listen::serve(
                    listener,
                    app,
                    crate::health::LIMITS,
                    None,
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    },
                ));
            }
            let mut tasks = tokio::task::JoinSet::new();
            for source in sources::from_config(&shared.config) {
                let name = source.name();
                let intake = Intake {
                    tx: tx.clone(),
                    stop: stop_rx.clone(),
                    tz,
                    series: Arc::clone(&names),
                    newest: Arc::clone(&shared.newest),
                    counters: counters.clone(),
                };
                tasks.spawn(async move {
                    tracing::info!(source = %name, "source started");
                    if let Err(e) = source.run(intake).await {
                        tracing::error!(source = %name, "source stopped: {e}");
                    }
                });
            }
            drop(tx);
            let signal = shutdown_signal();
            tokio::pin!(signal);
            loop {
                tokio::select! {
                    _ = &mut signal => {
                        tracing::info!("stop signal received: finishing");
                        break;
                    }
                    done = tasks.join_next() => {
                        if done.is_none() {
                            if until_sources_end {
                                tracing::info!("every source has ended: finishing");
                                break;
                            }
                            tracing::warn!("every source has ended; still running the jobs and the uplink");
                            (&mut signal).await;
                            break;
                        }
                    }
                }
            }
            let _ = stop_tx.send(true);
            while tasks.join_next().await.is_some() {}
            Ok(())
        });
        if outcome.is_err() {
            shared.stop.store(true, Ordering::Release);
            let _ = stop_tx.send(true);
        }
        // Sources are gone: the channel closes, the ingest thread commits what is left.
        let _ = ingest.join();
        shared.ingest_done.store(true, Ordering::Release);
        if !until_sources_end {
            shared.stop.store(true, Ordering::Release);
        }
        shared.detect_bell.ring();
        let _ = detector.join();
        shared.detect_done.store(true, Ordering::Release);
        shared.jobs_bell.ring();
        let _ = jobs.join();
        shared.jobs_done.store(true, Ordering::Release);
        shared.uplink_bell.ring();
        if let Some(u) = uplink {
            let _ = u.join();
        }
        runtime.shutdown_timeout(Duration::from_secs(2));
        outcome?;
        tracing::info!("hydrowatch daemon stopped");
        Ok(Summary {
            metrics: metrics.json(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Listens from now on for the process being asked to stop, SIGTERM (a service manager,
/// `kill`, `timeout`) or SIGINT (Ctrl-C): the future resolves at the first. Call it inside a
/// runtime, before saying that the process runs (a signal before the call is not seen). The
/// daemon, the server and the demo stop on the same signals.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind)
            .map_err(|e| tracing::error!("cannot listen for {name}: {e}"))
            .ok()
    };
    let (term, int) = (
        listen(SignalKind::terminate(), "SIGTERM"),
        listen(SignalKind::interrupt(), "SIGINT"),
    );
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
    }
}

fn refresh_outbox(store: &Store, metrics: &Metrics) {
    if let Ok(stats) = store.outbox_stats() {
        metrics.outbox_depth.store(stats.rows, Ordering::Relaxed);
        metrics.outbox_dropped.store(
            stats.dropped.iter().map(|(_, n)| n).sum(),
            Ordering::Relaxed,
        );
        metrics
            .outbox_set_aside
            .store(stats.set_aside, Ordering::Relaxed);
        metrics.outbox_expired.store(
            stats.expired.iter().map(|(_, n)| n).sum(),
            Ordering::Relaxed,
        );
    }
}

/// Records a run of `job` in the database (logged when that fails).
fn record(store: &Store, job: &str, at: Timestamp, ok: bool, message: &str) {
    if let Err(e) = store.record_job(job, at, ok, message) {
        tracing::error!(job, "cannot record the job's run: {e}");
    }
}
