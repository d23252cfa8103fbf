//! Forecasting on the device database: the hourly history of a series, its forecaster (the
//! default chosen by `backtest --select`, else the combination; a trained one saved in its model
//! folder, else trained now, else the best baseline, saying why), the forecast recorded with its
//! message to the server, and the weekly retraining that keeps a new model only when it
//! backtests better than the one in use. `hydrowatch forecast` and the daemon's jobs both call
//! these: one code path.
//!
//! A model folder is replaced whole ([`crate::models`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono_tz::Tz;
use hydrowatch_config::Config;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_local;
use hydrowatch_forecast::backtest::{Schedule, origins};
use hydrowatch_forecast::calendar::{DeviceCalendar, device_calendar};
use hydrowatch_forecast::forecaster::best_baseline;
use hydrowatch_forecast::{
    Fit, Forecast, ForecastError, Forecaster, History, Holidays, Predict, artifact,
};
use hydrowatch_store::{ForecastPoint, Kept, OutboxLimits, Retrain, SeriesInfo, Store, StoreError};

use crate::error::{JobError, PerSeries};
use crate::judge::Outbound;
use crate::models::{clear, fresh_dir, install, saved_model};
use crate::training::{Comparison, HistoryData, Order, Outcome, Training};

/// The device's days off in `zone` (the device's, or a file's): the national holidays of its
/// country and its region's, and the days `[forecast]` lists (see [`device_calendar`]).
pub fn calendar(config: &Config, zone: Tz) -> Result<DeviceCalendar, JobError> {
    Ok(device_calendar(
        zone,
        config.forecast.country.as_deref(),
        config.forecast.region.as_deref(),
        &config.forecast.holidays,
    )?)
}

/// The hourly history of series `name`; the last hour is left out when it holds fewer readings
/// than a typical hour (it is still being filled). Hours more than a day ahead of the wall
/// clock are left out: a reading stored there (a mistyped year, however it got in) would
/// otherwise stretch the history to it.
pub fn db_history(store: &Store, name: &str, holidays: &Holidays) -> Result<History, JobError> {
    let id = store.series_id(name)?;
    let horizon = chrono::Utc::now().timestamp() + hydrowatch_core::time::DAY;
    let hours = store.hourly(id, i64::MIN / 2, horizon)?;
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Err(JobError::NoReadings {
            series: name.into(),
            db: store.path().display().to_string(),
        });
    };
    let mut values = vec![f64::NAN; ((last.hour - first.hour) / 3600 + 1) as usize];
    for h in &hours {
        values[((h.hour - first.hour) / 3600) as usize] = h.mean;
    }
    let mut counts: Vec<u32> = hours.iter().map(|h| h.count).collect();
    counts.sort_unstable();
    if last.count < counts[counts.len() / 2] {
        values.pop();
    }
    let mut history = History::hourly(first.hour, values, store.timezone());
    history.holidays = holidays.clone();
    Ok(history)
}

/// The forecaster of `series`: the default recorded by `backtest --select`, else the default
/// forecaster (the combination).
pub fn series_forecaster(store: &Store, series: &SeriesInfo) -> Result<Forecaster, JobError> {
    match store.default_model(series.id)? {
        Some(m) => Forecaster::from_name(&m.name).ok_or(JobError::UnknownForecaster {
            series: series.name.clone(),
            name: m.name,
        }),
        None => Ok(Forecaster::default()),
    }
}

/// The forecast's points as the store keeps them.
pub fn points(fc: &Forecast) -> Vec<ForecastPoint> {
    (0..fc.points.len())
        .map(|i| ForecastPoint {
            target: fc.time(i),
            value: fc.points[i],
            lower: fc.lower[i],
            upper: fc.upper[i],
        })
        .collect()
}

/// Writes `fc` as CSV, `time,value,lower,upper`, times local in `tz` (the prototype's
/// `Day{step}prediction.csv`).
pub fn write_csv(fc: &Forecast, tz: Tz, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "time,value,lower,upper")?;
    for i in 0..fc.points.len() {
        writeln!(
            out,
            "{},{:.4},{:.4},{:.4}",
            format_local(fc.time(i), tz),
            fc.points[i],
            fc.lower[i],
            fc.upper[i]
        )?;
    }
    Ok(())
}

/// A series' forecast and how it was made.
#[derive(Debug)]
pub struct SeriesForecast {
    /// The forecast.
    pub forecast: Forecast,
    /// Which forecaster, and why (for people).
    pub note: String,
    /// Whether a model was trained (and saved) for it now.
    pub trained: bool,
}

/// Forecasts `series` with its forecaster ([`series_forecaster`]): a baseline directly; a
/// trained forecaster from the model saved in `models/<series>` (trained by `training` and put
/// there when missing, of another kind or unreadable); the best baseline when it cannot forecast
/// or no model can be trained yet.
pub fn forecast_series(
    store: &Store,
    series: &SeriesInfo,
    models: &Path,
    holidays: &Holidays,
    training: Training<'_>,
) -> Result<SeriesForecast, JobError> {
    let history = db_history(store, &series.name, holidays)?;
    let forecaster = series_forecaster(store, series)?;
    let chosen = store.default_model(series.id)?.is_some();
    if !forecaster.is_trained() {
        let forecast = forecaster.fit(&history)?.predict(&history)?;
        return Ok(SeriesForecast {
            forecast,
            note: format!(
                "baseline {}, the default chosen by `backtest --select`",
                forecaster.name()
            ),
            trained: false,
        });
    }
    let dir = models.join(&series.name);
    let baseline = |reason: &dyn std::fmt::Display| -> Result<SeriesForecast, JobError> {
        let forecast = best_baseline(&history)?;
        let note = format!("baseline {} because {reason}", forecast.model);
        Ok(SeriesForecast {
            forecast,
            note,
            trained: false,
        })
    };
    if let Some(m) = saved_model(&dir, &forecaster) {
        return match m.predict(&history) {
            Ok(forecast) => Ok(SeriesForecast {
                forecast,
                note: format!("model {} from {}", m.name(), dir.display()),
                trained: false,
            }),
            Err(e) => baseline(&e),
        };
    }
    let fresh = fresh_dir(&dir);
    let order = Order {
        series: series.name.clone(),
        forecaster: forecaster.name(),
        history: HistoryData::from(&history),
        train_until: None,
        compare: None,
        out: fresh.clone(),
    };
    let trained = training(&order).and_then(|_| {
        install(&fresh, &dir)?;
        Ok(artifact::load_fitted(&dir)?.0)
    });
    clear(&fresh);
    match trained {
        Ok(model) => {
            let how = if chosen { "chosen" } else { "default" };
            Ok(SeriesForecast {
                forecast: model.predict(&history)?,
                note: format!(
                    "{how} model {} trained now and saved to {}",
                    model.name(),
                    dir.display()
                ),
                trained: true,
            })
        }
        Err(e) => baseline(&e),
    }
}

/// What [`forecast_and_record`] did for one series.
#[derive(Debug)]
pub enum Recorded {
    /// The forecast was stored, and queued for the server when one is configured.
    Stored {
        /// The forecast and how it was made.
        made: SeriesForecast,
        /// Messages queued for the server.
        queued: usize,
    },
    /// A forecast from the same hour was stored before (a job that ran just before a crash):
    /// neither stored nor sent again.
    AlreadyStored(SeriesForecast),
}

/// Forecasts `series` ([`forecast_series`]) and stores the forecast with its message to the
/// server (with the week's hourly actuals, which the server scores the forecasts with) in one
/// transaction, and writes its CSV copy when `daemon.forecast_csv_dir` is set. The daemon's
/// forecast job and `hydrowatch forecast` on the database both call this.
pub fn forecast_and_record(
    store: &mut Store,
    series: &SeriesInfo,
    config: &Config,
    models: &Path,
    holidays: &Holidays,
    training: Training<'_>,
) -> Result<Recorded, JobError> {
    let made = forecast_series(store, series, models, holidays, training)?;
    let fc = &made.forecast;
    if store.latest_forecast(series.id)? == Some(fc.start) {
        return Ok(Recorded::AlreadyStored(made));
    }
    let tz = store.timezone();
    let actuals: Vec<(Timestamp, f64)> = store
        .hourly(
            series.id,
            fc.start - 7 * hydrowatch_core::time::DAY,
            fc.start,
        )?
        .iter()
        .map(|h| (h.hour, h.mean))
        .collect();
    let outbound = Outbound::from_config(config);
    let messages: Vec<_> = outbound
        .iter()
        .map(|o| {
            crate::envelope::forecast(
                &o.device_id,
                &series.name,
                &series.unit,
                fc,
                fc.start,
                tz,
                &actuals,
            )
        })
        .collect();
    let limits = outbound
        .as_ref()
        .map_or(OutboxLimits::UNBOUNDED, |o| o.limits);
    store.record_forecast(series.id, fc.start, &points(fc), &messages, limits)?;
    if let Some(dir) = &config.daemon.forecast_csv_dir
        && let Err(e) = write_csv_copy(dir, &series.name, fc, tz)
    {
        tracing::warn!("cannot write the forecast's CSV copy: {e}");
    }
    Ok(Recorded::Stored {
        queued: messages.len(),
        made,
    })
}

/// Forecasts each of `series` in turn ([`forecast_and_record`]) until `stop` says so: the
/// daemon's forecast job and `hydrowatch forecast` on the database. A series that fails does not
/// stop the others.
pub fn forecast_all(
    store: &mut Store,
    series: &[SeriesInfo],
    config: &Config,
    models: &Path,
    holidays: &Holidays,
    training: Training<'_>,
    stop: &dyn Fn() -> bool,
) -> PerSeries<Recorded> {
    let mut done = Vec::with_capacity(series.len());
    for s in series {
        if stop() {
            break;
        }
        let recorded = forecast_and_record(store, s, config, models, holidays, training);
        done.push((s.name.clone(), recorded));
    }
    done
}

/// `<dir>/<series>_<YYYYMMDD-HHMM>.csv`: `time,value,lower,upper` in local time, written aside
/// and renamed into place.
fn write_csv_copy(dir: &Path, series: &str, fc: &Forecast, tz: Tz) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let stamp = format_local(fc.start, tz)
        .replace(['-', ':'], "")
        .replace(' ', "-");
    let path = dir.join(format!("{series}_{stamp}.csv"));
    let tmp = path.with_extension("csv.tmp");
    let mut out = BufWriter::new(File::create(&tmp)?);
    write_csv(fc, tz, &mut out)?;
    out.flush()?;
    drop(out);
    std::fs::rename(tmp, path)
}

/// Retrains each series of the database in turn ([`retrain_series`]) until `stop` says so.
pub fn retrain_all(
    store: &Store,
    models: &Path,
    holidays: &Holidays,
    training: Training<'_>,
    now: Timestamp,
    stop: &dyn Fn() -> bool,
) -> Result<PerSeries<Option<Retrain>>, StoreError> {
    let mut done = Vec::new();
    for s in store.series()? {
        if stop() {
            break;
        }
        let retrained = retrain_series(store, &s, models, holidays, training, now);
        done.push((s.name, retrained));
    }
    Ok(done)
}

/// Weeks of recent history on which the model in use and a new one are compared.
pub const RETRAIN_WEEKS: usize = 2;

/// Retrains the forecaster of `series` through `training`: a candidate is fitted on the history
/// before the last [`RETRAIN_WEEKS`] weeks, both it and the model in use forecast from every
/// local midnight of those weeks, and the candidate replaces the model (by renaming) only when
/// its mean PI1 + PI3 is lower. Both scores are recorded. Series whose forecaster is a baseline
/// are left alone (`None`).
pub fn retrain_series(
    store: &Store,
    series: &SeriesInfo,
    models: &Path,
    holidays: &Holidays,
    training: Training<'_>,
    now: Timestamp,
) -> Result<Option<Retrain>, JobError> {
    let forecaster = series_forecaster(store, series)?;
    if !forecaster.is_trained() {
        return Ok(None);
    }
    let history = db_history(store, &series.name, holidays)?;
    let days = origins(&history, RETRAIN_WEEKS, Schedule::Daily);
    let Some(&first) = days.first() else {
        return Err(ForecastError::TooShort {
            what: format!("comparing models over the last {RETRAIN_WEEKS} weeks"),
            needed: RETRAIN_WEEKS * hydrowatch_forecast::WEEK,
            available: history.series.values.len(),
        }
        .into());
    };
    let dir = models.join(&series.name);
    let fresh = fresh_dir(&dir);
    let order = Order {
        series: series.name.clone(),
        forecaster: forecaster.name(),
        history: HistoryData::from(&history),
        train_until: Some(first),
        compare: Some(Comparison {
            current: dir.clone(),
            origins: days,
        }),
        out: fresh.clone(),
    };
    let outcome = training(&order).and_then(|o| {
        if o.keep {
            install(&fresh, &dir)?;
        }
        Ok(o)
    });
    clear(&fresh);
    let Outcome {
        current_score,
        candidate_score,
        keep: better,
    } = outcome?;
    let record = Retrain {
        at: now,
        model: forecaster.name(),
        current_score,
        candidate_score,
        kept: if better {
            Kept::Candidate
        } else {
            Kept::Current
        },
    };
    store.record_retrain(series.id, &record)?;
    Ok(Some(record))
}
