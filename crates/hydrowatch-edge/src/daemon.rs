//! `hydrowatch run`: the threads of the daemon and how they stop.
//!
//! - sources (tokio tasks) send batches of readings to the bounded ingest channel;
//! - the ingest thread commits them (one transaction for all batches waiting), answers the
//!   sources, and rings the detection and jobs threads;
//! - the detection thread judges what is committed and not judged yet ([`crate::judge`]);
//! - the jobs thread, at low priority, runs the forecast, retention and retraining when due
//!   ([`crate::schedule`]);
//! - the uplink thread delivers the outbox, with backoff, and queues heartbeats;
//! - the health endpoint (a tokio task) shows the counters.
//!
//! Stopping (SIGTERM, SIGINT): sources stop, the ingest thread commits what it was given, the
//! detection thread judges it, the jobs thread finishes the job it is in, and the daemon exits 0.
//! With `until_sources_end` the daemon also stops when every source has ended, after a last
//! pass of each thread and a last delivery (given up after `drain`: what is not delivered waits
//! in the outbox for the next start).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use hydrowatch_config::{Config, ForecastAt};
use hydrowatch_core::time::{FIRST_YEAR, LAST_YEAR, format_local, from_the_future, in_span};
use hydrowatch_core::{Reading, Timestamp};
use hydrowatch_detect::Refit;
use hydrowatch_forecast::{Fit, ForecastError, Holidays};
use hydrowatch_store::{JobRun, OutboxLimits, Outcome, SeriesId, Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::forecasting::{JobError, Recorded};
use crate::health::Metrics;
use crate::judge::{DatabaseDetector, JudgeError, Outbound, observe_row, time_of_day};
use crate::schedule::Every;
use crate::sources::{self, Batch, Fate, Intake, Newest, SourceCounters};
use crate::uplink::{Backoff, Uplink, UplinkConfig};

/// Most readings committed in one transaction.
const MAX_COMMIT: usize = 20_000;
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
        let calendar = crate::forecasting::calendar(&config, tz)
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
                .spawn(move || detect_thread(&shared, &mut store, detector, since))?
        };
        let ingest = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("ingest".into())
                .spawn(move || ingest_thread(&shared, store, rx, ids))?
        };
        let jobs = {
            let shared = shared.clone();
            let store = shared.open()?;
            std::thread::Builder::new()
                .name("jobs".into())
                .spawn(move || jobs_thread(&shared, store))?
        };
        let uplink = match &shared.config.server {
            Some(server) => {
                let uplink = Uplink::new(UplinkConfig {
                    url: server.url.clone(),
                    token: server.token.clone(),
                    device_id: shared.config.device.id.clone(),
                    batch: 200,
                    timeout: Duration::from_secs(15),
                })
                .map_err(|e| DaemonError::Setup(e.to_string()))?;
                let shared = shared.clone();
                let store = shared.open()?;
                Some(
                    std::thread::Builder::new()
                        .name("uplink".into())
                        .spawn(move || uplink_thread(&shared, store, uplink))?,
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
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await;
                });
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

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
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
    }
}

/// Commits batches: everything waiting goes into one transaction; a failed commit (a full disk)
/// is logged and tried again, and nothing is answered before it succeeds.
fn ingest_thread(
    shared: &Shared,
    mut store: Store,
    mut rx: mpsc::Receiver<Batch>,
    ids: HashMap<String, SeriesId>,
) {
    let m = &shared.metrics;
    let future = i64::from(shared.config.daemon.future_seconds);
    let configured = || {
        let mut names: Vec<&str> = ids.keys().map(String::as_str).collect();
        names.sort_unstable();
        names.join(", ")
    };
    while let Some(first) = rx.blocking_recv() {
        let mut batches = vec![first];
        let mut n = batches[0].readings.len();
        while n < MAX_COMMIT {
            match rx.try_recv() {
                Ok(b) => {
                    n += b.readings.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        let wall = chrono::Utc::now().timestamp();
        let mut fates: Vec<Vec<Fate>> = Vec::with_capacity(batches.len());
        let mut rows: Vec<(SeriesId, Reading)> = Vec::with_capacity(n);
        let mut slots: Vec<(usize, usize)> = Vec::with_capacity(n);
        for (b, batch) in batches.iter().enumerate() {
            let mut f = Vec::with_capacity(batch.readings.len());
            for (i, r) in batch.readings.iter().enumerate() {
                let id = ids.get(&r.series);
                let refused = match id {
                    None => Some(format!(
                        "series {:?} is not configured (configured: {})",
                        r.series,
                        configured()
                    )),
                    Some(_) if !in_span(r.ts) => Some(format!(
                        "{} {}: the year is outside {FIRST_YEAR}-{LAST_YEAR} (a mistyped year?)",
                        r.series,
                        format_local(r.ts, shared.tz),
                    )),
                    Some(_) if matches!(shared.clock, Clock::Wall(_)) => {
                        from_the_future(r.ts, wall, future, shared.tz)
                            .map(|why| format!("{} {why}", r.series))
                    }
                    Some(_) => None,
                };
                if let (None, Some(&id)) = (&refused, id) {
                    rows.push((
                        id,
                        Reading {
                            ts: r.ts,
                            value: r.value,
                        },
                    ));
                    slots.push((b, i));
                }
                f.push(match refused {
                    Some(why) => {
                        m.readings_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(source = %batch.origin, "reading refused: {why}");
                        Fate::Refused(why)
                    }
                    None => Fate::Stored,
                });
            }
            fates.push(f);
        }
        let outcomes = loop {
            match store.insert_readings(&rows) {
                Ok(o) => {
                    *m.commit_failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    break o;
                }
                Err(e) => {
                    m.commit_failures.fetch_add(1, Ordering::Relaxed);
                    *m.commit_failing.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(e.to_string());
                    tracing::error!(
                        readings = rows.len(),
                        "cannot commit readings: {e}; they are held and tried again in 5 s"
                    );
                    std::thread::sleep(Duration::from_secs(5));
                    // Space may have returned: give the write-ahead log's freed pages back.
                    store.checkpoint();
                }
            }
        };
        let mut newest = i64::MIN;
        for (((b, i), outcome), (_, r)) in slots.iter().zip(outcomes).zip(&rows) {
            let batch = &batches[*b];
            fates[*b][*i] = match outcome {
                Outcome::Inserted => {
                    m.readings_ingested.fetch_add(1, Ordering::Relaxed);
                    newest = newest.max(r.ts);
                    shared.newest.stored(&batch.readings[*i].series, r.ts);
                    Fate::Stored
                }
                Outcome::Duplicate => {
                    m.readings_duplicate.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(source = %batch.origin, "duplicate reading {} {} ignored (already stored)", batch.readings[*i].series, format_local(r.ts, shared.tz));
                    Fate::Duplicate
                }
                Outcome::Conflict { stored } => {
                    m.readings_refused.fetch_add(1, Ordering::Relaxed);
                    let why = format!(
                        "{} {} = {} conflicts with the stored {stored}: the stored value is kept",
                        batch.readings[*i].series,
                        format_local(r.ts, shared.tz),
                        r.value
                    );
                    tracing::warn!(source = %batch.origin, "{why}");
                    Fate::Refused(why)
                }
            };
        }
        if newest > i64::MIN {
            m.last_reading.fetch_max(newest, Ordering::Relaxed);
            shared.clock.committed(newest);
        }
        for (batch, f) in batches.into_iter().zip(fates) {
            if let Some(reply) = batch.reply {
                let _ = reply.send(f);
            }
        }
        shared.detect_bell.ring();
        shared.jobs_bell.ring();
    }
}

/// Judges what is committed; after the ingest thread finished, one last pass.
fn detect_thread(
    shared: &Shared,
    store: &mut Store,
    mut detector: DatabaseDetector,
    floor: Timestamp,
) {
    let m = &shared.metrics;
    loop {
        let last = shared.ingest_done.load(Ordering::Acquire);
        let clock = shared.clock.detection_now();
        let result = detector.judge(store, floor, Timestamp::MAX, clock, &mut |r, ts, v| {
            Ok::<_, JudgeError>(observe_row(r, ts, v))
        });
        match result {
            Ok(rec) => {
                m.alarm_transitions
                    .fetch_add(rec.transitions as u64, Ordering::Relaxed);
                if rec.transitions > 0 {
                    if let Ok(open) = store.alarms(true) {
                        m.alarms_open.store(open.len() as u64, Ordering::Relaxed);
                    }
                    refresh_outbox(store, m);
                    shared.uplink_bell.ring();
                }
                let at = shared.clock.now().unwrap_or_default();
                if rec.criteria > 0 {
                    record(
                        store,
                        "criteria",
                        at,
                        true,
                        &format!("{} series refitted", rec.criteria),
                    );
                }
                if rec.nights > 0 {
                    record(
                        store,
                        "night_flow",
                        at,
                        true,
                        &format!("{} nights summed up", rec.nights),
                    );
                }
            }
            Err(e) => {
                m.job_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!("detection failed: {e}; trying again");
                shared.sleep(Duration::from_secs(1));
            }
        }
        if last || shared.stopping() && shared.ingest_done.load(Ordering::Acquire) {
            return;
        }
        shared.detect_bell.wait(Duration::from_secs(1));
    }
}

fn record(store: &Store, job: &str, at: Timestamp, ok: bool, message: &str) {
    if let Err(e) = store.record_job(job, at, ok, message) {
        tracing::error!(job, "cannot record the job's run: {e}");
    }
}

/// Lowers the calling thread's scheduling priority (nice 10): training never slows ingestion.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::warn!("cannot lower the jobs thread's priority");
        }
    }
}

/// Runs the forecast, retention and retraining when due; after the detection thread finished
/// (a replay's end), one last check.
fn jobs_thread(shared: &Shared, mut store: Store) {
    lower_priority();
    let s = &shared.config.schedule;
    let forecast_every = match s.forecast_at {
        ForecastAt::Daily(t) => Every::Day(time_of_day(t)),
        ForecastAt::Hourly(m) => Every::Hour(u32::from(m)),
    };
    let plan = [
        ("forecast", forecast_every),
        ("retention", Every::Day(time_of_day(s.retention_at))),
        (
            "retrain",
            Every::Week(s.retrain_at.weekday, time_of_day(s.retrain_at.time)),
        ),
    ];
    // The jobs' last runs, read once and again only after a job ran (this thread is the only
    // one that records these jobs), not at every commit that rings the bell.
    let mut runs: HashMap<&str, Option<JobRun>> = HashMap::new();
    loop {
        let last = shared.detect_done.load(Ordering::Acquire);
        if let Some(now) = shared.clock.now() {
            for (name, every) in plan {
                if shared.stopping() {
                    return;
                }
                if !runs.contains_key(name) {
                    match store.last_job(name) {
                        Ok(run) => {
                            runs.insert(name, run);
                        }
                        Err(e) => {
                            tracing::error!(job = name, "cannot read the job's last run: {e}");
                            continue;
                        }
                    }
                }
                let due = every.is_due(now, shared.tz, runs[name].as_ref());
                if !due {
                    continue;
                }
                let started = Instant::now();
                let result = match name {
                    "forecast" => forecast_job(shared, &mut store, now),
                    "retention" => retention_job(shared, &mut store, now),
                    _ => retrain_job(shared, &store, now),
                };
                match &result {
                    Ok(message) => tracing::info!(
                        job = name,
                        seconds = started.elapsed().as_secs_f64(),
                        "{message}"
                    ),
                    Err(e) => {
                        shared.metrics.job_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            job = name,
                            "failed: {e}; tried again in {} minutes",
                            crate::schedule::RETRY_SECONDS / 60
                        );
                    }
                }
                let (ok, message) = match result {
                    Ok(m) => (true, m),
                    Err(e) => (false, e),
                };
                record(&store, name, now, ok, &message);
                // The forecast job also records a first training as a retraining.
                runs.clear();
            }
        }
        if last || shared.stopping() {
            return;
        }
        shared.jobs_bell.wait(Duration::from_secs(1));
    }
}

fn train(
    forecaster: &hydrowatch_forecast::Forecaster,
    history: &hydrowatch_forecast::History,
) -> Result<hydrowatch_forecast::Fitted, hydrowatch_forecast::ForecastError> {
    tracing::info!(model = %forecaster.name(), hours = history.series.values.len(), "training");
    forecaster.fit(history)
}

/// Forecasts every configured series and records each forecast with its message to the server
/// (see [`crate::forecasting::forecast_and_record`], which `hydrowatch forecast` also calls).
fn forecast_job(shared: &Shared, store: &mut Store, now: Timestamp) -> Result<String, String> {
    let models = &shared.config.daemon.models_dir;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let series = store.series().map_err(|e| e.to_string())?;
    for s in series
        .iter()
        .filter(|s| shared.config.series(&s.name).is_some())
    {
        if shared.stopping() {
            break;
        }
        let recorded = crate::forecasting::forecast_and_record(
            store,
            s,
            &shared.config,
            models,
            &shared.holidays,
            &train,
        );
        let made = match recorded {
            Ok(Recorded::Stored { made, .. }) => made,
            Ok(Recorded::AlreadyStored(_)) => {
                done.push(format!("{}: already stored", s.name));
                continue;
            }
            // Too little history is a new device's normal state, not a failure to retry.
            Err(e @ JobError::Forecast(ForecastError::TooShort { .. })) => {
                done.push(format!("{}: not yet ({e})", s.name));
                continue;
            }
            Err(e) => {
                failed.push(format!("{}: {e}", s.name));
                continue;
            }
        };
        if made.trained {
            record(
                store,
                "retrain",
                now,
                true,
                &format!("{}: first model trained", s.name),
            );
        }
        shared
            .metrics
            .last_forecast
            .fetch_max(made.forecast.start, Ordering::Relaxed);
        done.push(format!("{}: {}", s.name, made.note));
    }
    refresh_outbox(store, &shared.metrics);
    shared.uplink_bell.ring();
    if failed.is_empty() {
        Ok(format!("forecast: {}", done.join("; ")))
    } else {
        Err(format!("forecast failed for {}", failed.join("; ")))
    }
}

fn retention_job(shared: &Shared, store: &mut Store, now: Timestamp) -> Result<String, String> {
    let days = i64::from(shared.config.storage.retention_days);
    let r = store
        .apply_retention(now - days * 86_400, 5_000)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "retention: {} readings, {} forecast rows, {} cleared alarms older than {days} days deleted",
        r.readings, r.forecasts, r.alarms
    ))
}

fn retrain_job(shared: &Shared, store: &Store, now: Timestamp) -> Result<String, String> {
    let models = &shared.config.daemon.models_dir;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for s in store.series().map_err(|e| e.to_string())? {
        if shared.stopping() {
            break;
        }
        match crate::forecasting::retrain_series(store, &s, models, &shared.holidays, &train, now) {
            Ok(Some(r)) => done.push(format!(
                "{}: kept the {} (current {}, candidate {})",
                s.name,
                r.kept,
                r.current_score.map_or("none".into(), |x| format!("{x:.3}")),
                r.candidate_score
                    .map_or("none".into(), |x| format!("{x:.3}"))
            )),
            Ok(None) => done.push(format!("{}: uses a baseline, nothing to retrain", s.name)),
            // Retraining holds the last two weeks out: a young device waits for more history.
            Err(e @ JobError::Forecast(ForecastError::TooShort { .. })) => {
                done.push(format!("{}: not yet ({e})", s.name));
            }
            Err(e) => failed.push(format!("{}: {e}", s.name)),
        }
    }
    if failed.is_empty() {
        Ok(format!("retrain: {}", done.join("; ")))
    } else {
        Err(format!("retrain failed for {}", failed.join("; ")))
    }
}

/// Delivers the outbox: at once when rung, every 30 s otherwise, with backoff and jitter while
/// the server is unreachable; queues a heartbeat every `daemon.heartbeat_minutes`.
fn uplink_thread(shared: &Shared, mut store: Store, uplink: Uplink) {
    let m = &shared.metrics;
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    let every = Duration::from_secs(u64::from(shared.config.daemon.heartbeat_minutes) * 60);
    let mut next_heartbeat = Instant::now();
    let mut drain_started: Option<Instant> = None;
    let limits =
        Outbound::from_config(&shared.config).map_or(OutboxLimits::UNBOUNDED, |o| o.limits);
    loop {
        let finishing = shared.jobs_done.load(Ordering::Acquire);
        // Stopped by a signal: one last attempt to deliver what the last passes queued.
        let last_attempt = shared.stopping() && finishing;
        if Instant::now() >= next_heartbeat && !finishing {
            next_heartbeat = Instant::now() + every;
            let now = chrono::Utc::now().timestamp();
            let message =
                crate::envelope::heartbeat(&shared.config.device.id, m.heartbeat(now), now);
            if let Err(e) = store.enqueue(&[message], limits) {
                tracing::error!("cannot queue a heartbeat: {e}");
            }
        }
        let result = uplink.flush(&mut store);
        refresh_outbox(&store, m);
        if last_attempt {
            if let Ok(n) = result {
                m.delivered.fetch_add(n as u64, Ordering::Relaxed);
            }
            return;
        }
        match result {
            Ok(n) => {
                m.delivered.fetch_add(n as u64, Ordering::Relaxed);
                backoff.reset();
                if finishing && m.outbox_depth.load(Ordering::Relaxed) == 0 {
                    return;
                }
                if !finishing {
                    shared.uplink_bell.wait(Duration::from_secs(30));
                }
            }
            Err(e) => {
                let started = *drain_started.get_or_insert_with(Instant::now);
                if finishing && started.elapsed() >= shared.drain {
                    tracing::warn!(
                        "stopping with {} messages still waiting in the outbox (kept for the next start)",
                        m.outbox_depth.load(Ordering::Relaxed)
                    );
                    return;
                }
                if !finishing {
                    drain_started = None;
                }
                let wait = if e.is_transient() {
                    backoff.next_delay()
                } else {
                    Duration::from_secs(60)
                };
                tracing::warn!(
                    "delivery failed: {e}; next attempt in {:.1} s",
                    wait.as_secs_f64()
                );
                if shared.stopping() {
                    // Stopping: wait for the last passes, then one last attempt.
                    shared.uplink_bell.wait(Duration::from_millis(500));
                } else {
                    shared.sleep(if finishing {
                        wait.min(Duration::from_secs(2))
                    } else {
                        wait
                    });
                }
            }
        }
    }
}
