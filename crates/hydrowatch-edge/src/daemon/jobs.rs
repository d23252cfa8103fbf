//! The scheduled jobs: the forecast, the retention and the weekly retraining, each run when due
//! ([`crate::schedule`]) by one thread at low priority. Each job calls the same operation as its
//! command (`hydrowatch forecast` on the database: [`forecast_all`]) and reports per series; a
//! model is trained in a child process ([`super::training`]) when the daemon has a worker.
//!
//! Invariants: a job's run is recorded (time, success, what it did) whether it succeeded or not;
//! a series whose history is still too short is a normal state ("not yet"), not a failure.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hydrowatch_config::ForecastAt;
use hydrowatch_core::Timestamp;
use hydrowatch_forecast::{Fit, Fitted, ForecastError, Forecaster, History};
use hydrowatch_ops::error::{JobError, PerSeries};
use hydrowatch_ops::forecasting::{Recorded, forecast_all, retrain_all};
use hydrowatch_ops::judge::time_of_day;
use hydrowatch_ops::training::{Order, Outcome, carry_out};
use hydrowatch_store::{JobRun, Store, StoreError};

use super::{Shared, record, refresh_outbox};
use crate::schedule::Every;

/// A scheduled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Forecast every configured series.
    Forecast,
    /// Delete what is older than `storage.retention_days`.
    Retention,
    /// Train a candidate model of each series and keep the better one.
    Retrain,
}

impl Job {
    /// Every job, in the order they are checked.
    pub const ALL: [Job; 3] = [Job::Forecast, Job::Retention, Job::Retrain];

    /// Its name in the database's job log, the logs and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Job::Forecast => "forecast",
            Job::Retention => "retention",
            Job::Retrain => "retrain",
        }
    }
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobFailed {
    /// The database failed before any series was done.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// These series failed (the others were done).
    #[error("failed for {}", .0.iter().map(|(s, e)| format!("{s}: {e}")).collect::<Vec<_>>().join("; "))]
    Series(Vec<(String, JobError)>),
}

/// A successful job: what it did, for the log and the job record.
type Done = String;

/// Splits per-series results into what was done and what failed; a history too short is done.
fn per_series<T>(
    results: PerSeries<T>,
    describe: impl Fn(&str, T) -> String,
) -> Result<Done, JobFailed> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (series, result) in results {
        match result {
            Ok(r) => done.push(describe(&series, r)),
            // Too little history is a new device's normal state, not a failure to retry.
            Err(e @ JobError::Forecast(ForecastError::TooShort { .. })) => {
                done.push(format!("{series}: not yet ({e})"));
            }
            Err(e) => failed.push((series, e)),
        }
    }
    if failed.is_empty() {
        Ok(done.join("; "))
    } else {
        Err(JobFailed::Series(failed))
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

/// Runs the jobs when due; after the detection thread finished (a replay's end), one last check.
pub(super) fn jobs_thread(shared: &Shared, mut store: Store) {
    lower_priority();
    let s = &shared.config.schedule;
    let every = |job: Job| match job {
        Job::Forecast => match s.forecast_at {
            ForecastAt::Daily(t) => Every::Day(time_of_day(t)),
            ForecastAt::Hourly(m) => Every::Hour(u32::from(m)),
        },
        Job::Retention => Every::Day(time_of_day(s.retention_at)),
        Job::Retrain => Every::Week(s.retrain_at.weekday, time_of_day(s.retrain_at.time)),
    };
    // The jobs' last runs, read once and again only after a job ran (this thread is the only
    // one that records these jobs), not at every commit that rings the bell.
    let mut runs: HashMap<Job, Option<JobRun>> = HashMap::new();
    loop {
        let last = shared.detect_done.load(Ordering::Acquire);
        if let Some(now) = shared.clock.now() {
            for job in Job::ALL {
                if shared.stopping() {
                    return;
                }
                let last_run = match runs.entry(job) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => match store.last_job(job.name()) {
                        Ok(run) => e.insert(run),
                        Err(err) => {
                            tracing::error!(
                                job = job.name(),
                                "cannot read the job's last run: {err}"
                            );
                            continue;
                        }
                    },
                };
                if !every(job).is_due(now, shared.tz, last_run.as_ref()) {
                    continue;
                }
                run(shared, &mut store, job, now);
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

/// Runs `job` at `now`, logs and records how it went.
fn run(shared: &Shared, store: &mut Store, job: Job, now: Timestamp) {
    let started = Instant::now();
    let result = match job {
        Job::Forecast => forecast_job(shared, store, now),
        Job::Retention => retention_job(shared, store, now),
        Job::Retrain => retrain_job(shared, store, now),
    };
    let message = match &result {
        Ok(done) => {
            tracing::info!(
                job = job.name(),
                seconds = started.elapsed().as_secs_f64(),
                "{}: {done}",
                job.name()
            );
            format!("{}: {done}", job.name())
        }
        Err(e) => {
            shared.metrics.job_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                job = job.name(),
                "failed: {e}; tried again in {} minutes",
                crate::schedule::RETRY_SECONDS / 60
            );
            format!("{} {e}", job.name())
        }
    };
    record(store, job.name(), now, result.is_ok(), &message);
}

fn train(forecaster: &Forecaster, history: &History) -> Result<Fitted, ForecastError> {
    tracing::info!(model = %forecaster.name(), hours = history.series.values.len(), "training");
    forecaster.fit(history)
}

/// Carries out a training order: in a child process of the daemon's worker program, or here.
fn training(shared: &Shared, order: &Order) -> Result<Outcome, JobError> {
    match &shared.worker {
        Some(exe) => super::training::in_child(shared, exe, order),
        None => carry_out(order, &train),
    }
}

/// Forecasts every configured series, records each forecast with its message to the server.
fn forecast_job(shared: &Shared, store: &mut Store, now: Timestamp) -> Result<Done, JobFailed> {
    let series: Vec<_> = store
        .series()?
        .into_iter()
        .filter(|s| shared.config.series(&s.name).is_some())
        .collect();
    let results = forecast_all(
        store,
        &series,
        &shared.config,
        &shared.config.daemon.models_dir,
        &shared.holidays,
        &|order| training(shared, order),
        &|| shared.stopping(),
    );
    let done = per_series(results, |name, recorded| match recorded {
        Recorded::AlreadyStored(_) => format!("{name}: already stored"),
        Recorded::Stored { made, .. } => {
            if made.trained {
                record(
                    store,
                    Job::Retrain.name(),
                    now,
                    true,
                    &format!("{name}: first model trained"),
                );
            }
            shared
                .metrics
                .last_forecast
                .fetch_max(made.forecast.start, Ordering::Relaxed);
            format!("{name}: {}", made.note)
        }
    });
    refresh_outbox(store, &shared.metrics);
    shared.uplink_bell.ring();
    done
}

fn retention_job(shared: &Shared, store: &mut Store, now: Timestamp) -> Result<Done, JobFailed> {
    let r = hydrowatch_ops::retention::apply(store, &shared.config, now)?;
    Ok(format!(
        "{} readings, {} forecast rows, {} cleared alarms older than {} days deleted",
        r.readings, r.forecasts, r.alarms, shared.config.storage.retention_days
    ))
}

fn retrain_job(shared: &Shared, store: &Store, now: Timestamp) -> Result<Done, JobFailed> {
    let results = retrain_all(
        store,
        &shared.config.daemon.models_dir,
        &shared.holidays,
        &|order| training(shared, order),
        now,
        &|| shared.stopping(),
    )?;
    per_series(results, |name, retrained| match retrained {
        Some(r) => format!(
            "{name}: kept the {} (current {}, candidate {})",
            r.kept.name(),
            r.current_score.map_or("none".into(), |x| format!("{x:.3}")),
            r.candidate_score
                .map_or("none".into(), |x| format!("{x:.3}"))
        ),
        None => format!("{name}: uses a baseline, nothing to retrain"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_history_is_done_not_yet_and_any_other_error_fails_naming_the_series() {
        let short = || {
            JobError::Forecast(ForecastError::TooShort {
                what: "training".into(),
                needed: 336,
                available: 20,
            })
        };
        let done = per_series(
            vec![
                ("flow_rate".to_string(), Ok(1)),
                ("pressure".to_string(), Err(short())),
            ],
            |s, n| format!("{s}: {n}"),
        )
        .unwrap();
        assert!(
            done.starts_with("flow_rate: 1; pressure: not yet ("),
            "{done}"
        );
        let failed = per_series(
            vec![
                ("flow_rate".to_string(), Ok(1)),
                (
                    "pressure".to_string(),
                    Err(JobError::NoReadings {
                        series: "pressure".into(),
                        db: "d.db".into(),
                    }),
                ),
            ],
            |s, n| format!("{s}: {n}"),
        )
        .unwrap_err();
        assert_eq!(
            failed.to_string(),
            "failed for pressure: series pressure of d.db has no readings"
        );
        let names: Vec<&str> = Job::ALL.iter().map(|j| j.name()).collect();
        assert_eq!(names, ["forecast", "retention", "retrain"]);
    }
}
