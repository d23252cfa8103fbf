//! Forecasting on the device database: the hourly history of a series, its forecaster (the
//! default chosen by `backtest --select`, else the saved network, else a network trained now,
//! else the best baseline, saying why), and the weekly retraining that keeps a new network only
//! when it backtests better than the one in use. `hydrowatch forecast` and the daemon's jobs both
//! call these.
//!
//! A model folder is replaced whole: the new one is written beside it and renamed into place,
//! so a crash while saving leaves the old model, never half of a new one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use hydrowatch_core::Timestamp;
use hydrowatch_forecast::backtest::{backtest, evaluate, first_origin};
use hydrowatch_forecast::baseline::{MstlEts, SeasonalBlend, SeasonalMean, SeasonalNaive};
use hydrowatch_forecast::neural::{FittedNeural, ModelKind, NeuralConfig, Strategy};
use hydrowatch_forecast::{
    Fit, Forecast, ForecastError, History, Holidays, Predict, WEEK, artifact,
};
use hydrowatch_store::{ForecastPoint, Retrain, SeriesInfo, Store, StoreError};

/// Why a forecast or a retraining failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The forecaster failed.
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Nothing to forecast from.
    #[error("series {series} of {db} has no readings")]
    NoReadings {
        /// The series.
        series: String,
        /// The database.
        db: String,
    },
    /// The default forecaster recorded for a series is not one this program knows.
    #[error(
        "series {series}: unknown default forecaster {name:?} (run `hydrowatch backtest --select` again)"
    )]
    UnknownForecaster {
        /// The series.
        series: String,
        /// The recorded name.
        name: String,
    },
}

/// Trains a network (the command line shows a progress bar; the daemon logs).
pub type Trainer<'a> = &'a dyn Fn(&NeuralConfig, &History) -> Result<FittedNeural, ForecastError>;

/// The hourly history of series `name`; the last hour is left out when it holds fewer readings
/// than a typical hour (it is still being filled).
pub fn db_history(store: &Store, name: &str, holidays: &Holidays) -> Result<History, JobError> {
    let id = store.series_id(name)?;
    let hours = store.hourly(id, i64::MIN / 2, i64::MAX)?;
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

/// The forecast of the baseline called `name` (as `backtest` names them), `None` for a name
/// that is not a baseline's.
pub fn baseline_named(name: &str, history: &History) -> Option<Result<Forecast, ForecastError>> {
    let fc = |f: Result<Forecast, ForecastError>| Some(f);
    match name {
        "seasonal-naive" => fc(SeasonalNaive.fit(history).and_then(|m| m.predict(history))),
        "seasonal-mean-4w" => fc(SeasonalMean::default()
            .fit(history)
            .and_then(|m| m.predict(history))),
        "seasonal-blend" => fc(SeasonalBlend.fit(history).and_then(|m| m.predict(history))),
        "mstl-ets" => fc(MstlEts::default()
            .fit(history)
            .and_then(|m| m.predict(history))),
        _ => None,
    }
}

/// The network configuration called `name` (`lstm/mimo`, ...), with the default settings.
pub fn network_named(name: &str) -> Option<NeuralConfig> {
    let (kind, strategy) = name.split_once('/')?;
    Some(NeuralConfig::new(
        kind.parse().ok()?,
        strategy.parse().ok()?,
    ))
}

/// The default network: an LSTM emitting all 168 hours at once.
pub fn default_network() -> NeuralConfig {
    NeuralConfig::new(ModelKind::Lstm, Strategy::Mimo)
}

/// The best baseline over the last weeks the history allows (backtest PI1 + PI3); `reason` says
/// why no model, and goes into the returned note.
pub fn baseline_forecast(
    history: &History,
    reason: &str,
) -> Result<(Forecast, String), ForecastError> {
    let weeks = (history.series.values.len() / WEEK)
        .saturating_sub(3)
        .clamp(1, 4);
    fn candidate<F: Fit>(f: &F, history: &History, weeks: usize) -> Option<(f64, Forecast)> {
        let score = backtest(f, history, weeks).ok()?.scores;
        let fc = f.fit(history).ok()?.predict(history).ok()?;
        Some((score.pi1 + score.pi3, fc))
    }
    let best = [
        candidate(&SeasonalBlend, history, weeks),
        candidate(&SeasonalMean::default(), history, weeks),
        candidate(&MstlEts::default(), history, weeks),
        candidate(&SeasonalNaive, history, weeks),
    ]
    .into_iter()
    .flatten()
    .filter(|(score, _)| score.is_finite())
    .min_by(|a, b| a.0.total_cmp(&b.0));
    let fc = match best {
        Some((_, fc)) => fc,
        None => SeasonalNaive.fit(history)?.predict(history)?,
    };
    let note = format!("baseline {} because {reason}", fc.model);
    Ok((fc, note))
}

/// Writes the training log of `model` as CSV: `net,epoch,train_loss,val_loss,learning_rate`.
pub fn write_loss_history(model: &FittedNeural, path: &Path) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "net,epoch,train_loss,val_loss,learning_rate")?;
    for (net, log) in model.log.iter().enumerate() {
        for e in log {
            writeln!(
                out,
                "{},{},{},{},{}",
                net + 1,
                e.epoch,
                e.train_loss,
                e.val_loss,
                e.learning_rate
            )?;
        }
    }
    out.flush()
}

/// Saves `model` (and its loss history) as the folder `dir`, replacing what was there in one
/// rename.
pub fn save_model(model: &FittedNeural, history: &History, dir: &Path) -> Result<(), JobError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| JobError::Io { path, source }
    };
    let name = dir
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let fresh = parent.join(format!(".{name}.new"));
    let old = parent.join(format!(".{name}.old"));
    for leftover in [&fresh, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).map_err(io(leftover))?;
        }
    }
    let context = artifact::Context {
        step: 3600,
        timezone: history.timezone,
        holidays: history.holidays.clone(),
    };
    artifact::save(model, &context, &fresh)?;
    write_loss_history(model, &fresh.join("loss_history.csv")).map_err(io(&fresh))?;
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&fresh, dir).map_err(io(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
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
pub fn write_csv(fc: &Forecast, tz: chrono_tz::Tz, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "time,value,lower,upper")?;
    for i in 0..fc.points.len() {
        writeln!(
            out,
            "{},{:.4},{:.4},{:.4}",
            hydrowatch_core::time::format_local(fc.time(i), tz),
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
    /// Whether a network was trained (and saved) for it now.
    pub trained: bool,
}

/// Forecasts `series` with its forecaster: the default chosen by `backtest --select`, else the
/// network saved in `models/<series>` (trained with `train` and saved there when missing, of
/// another kind or unreadable), else, when no network can be trained, the best baseline.
pub fn forecast_series(
    store: &Store,
    series: &SeriesInfo,
    models: &Path,
    holidays: &Holidays,
    train: Trainer<'_>,
) -> Result<SeriesForecast, JobError> {
    let history = db_history(store, &series.name, holidays)?;
    let dir = models.join(&series.name);
    let chosen = store.default_model(series.id)?;
    let network = match chosen.as_ref().map(|m| m.name.as_str()) {
        Some(name) if !name.contains('/') => {
            let fc =
                baseline_named(name, &history).ok_or_else(|| JobError::UnknownForecaster {
                    series: series.name.clone(),
                    name: name.into(),
                })??;
            return Ok(SeriesForecast {
                forecast: fc,
                note: format!("baseline {name}, the default chosen by `backtest --select`"),
                trained: false,
            });
        }
        Some(name) => Some(
            network_named(name).ok_or_else(|| JobError::UnknownForecaster {
                series: series.name.clone(),
                name: name.into(),
            })?,
        ),
        None => None,
    };
    let how = if network.is_some() {
        "chosen"
    } else {
        "default"
    };
    let config = network.unwrap_or_else(default_network);
    match saved_model(&dir, &config) {
        Some(m) => {
            let (forecast, note) = match m.predict(&history) {
                Ok(fc) => (fc, format!("model {} from {}", m.name(), dir.display())),
                Err(e) => baseline_forecast(&history, &e.to_string())?,
            };
            Ok(SeriesForecast {
                forecast,
                note,
                trained: false,
            })
        }
        None => match train(&config, &history) {
            Ok(model) => {
                save_model(&model, &history, &dir)?;
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
            Err(e) => {
                let (forecast, note) = baseline_forecast(&history, &e.to_string())?;
                Ok(SeriesForecast {
                    forecast,
                    note,
                    trained: false,
                })
            }
        },
    }
}

/// The network saved in `dir` if it is of the kind `config` names and can be read; a folder
/// that cannot be read is logged (and replaced by the caller).
fn saved_model(dir: &Path, config: &NeuralConfig) -> Option<FittedNeural> {
    if !dir.join("model.json").is_file() {
        return None;
    }
    match artifact::load(dir) {
        Ok((m, _)) if m.name() == config.name() => Some(m),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "{e}; training a new model");
            None
        }
    }
}

/// Weeks of recent history on which the model in use and a new one are compared.
pub const RETRAIN_WEEKS: usize = 2;

/// Retrains the network of `series`: a candidate is trained on the history before the last
/// [`RETRAIN_WEEKS`] weeks, both it and the model in use forecast from every day of those weeks,
/// and the candidate replaces the model only when its mean PI1 + PI3 is lower. Both scores are
/// recorded. Series whose default forecaster is a baseline are left alone (`None`).
pub fn retrain_series(
    store: &Store,
    series: &SeriesInfo,
    models: &Path,
    holidays: &Holidays,
    train: Trainer<'_>,
    now: Timestamp,
) -> Result<Option<Retrain>, JobError> {
    let config = match store.default_model(series.id)? {
        Some(m) if !m.name.contains('/') => return Ok(None),
        Some(m) => network_named(&m.name).ok_or_else(|| JobError::UnknownForecaster {
            series: series.name.clone(),
            name: m.name,
        })?,
        None => default_network(),
    };
    let history = db_history(store, &series.name, holidays)?;
    let first = first_origin(&history, RETRAIN_WEEKS)?;
    let dir = models.join(&series.name);
    let score = |m: &FittedNeural| {
        evaluate(m, &history, RETRAIN_WEEKS)
            .ok()
            .map(|r| r.scores.pi1 + r.scores.pi3)
            .filter(|s| s.is_finite())
    };
    let current = saved_model(&dir, &config);
    let current_score = current.as_ref().and_then(score);
    let candidate = train(&config, &history.until(first))?;
    let candidate_score = score(&candidate);
    let better = match (candidate_score, current_score) {
        (Some(new), Some(old)) => new < old,
        (Some(_), None) => true,
        (None, _) => current.is_none(),
    };
    if better {
        save_model(&candidate, &history, &dir)?;
    }
    let record = Retrain {
        at: now,
        model: config.name(),
        current_score,
        candidate_score,
        kept: if better { "candidate" } else { "current" }.into(),
    };
    store.record_retrain(series.id, &record)?;
    Ok(Some(record))
}
