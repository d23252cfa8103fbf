//! The backtest contest (`hydrowatch backtest`): every forecaster asked for, and other programs'
//! forecasts read from files, from the same origins of a series; scored per series, as a mean
//! over series and per season; the winner recorded as the series' default (`--select`).
//!
//! Invariants: every forecaster of a series is scored on the same origins; another program's
//! forecasts must cover every origin, each with all [`HORIZON`] hours, or the series fails at
//! once; those are shown, never selected (the device cannot run them); a series too short for a
//! trained forecaster is still scored on the others (the caller is told which was left out).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use hydrowatch_csv::{CsvError, ForecastRow};
use hydrowatch_forecast::backtest::{
    BacktestResult, Scored, backtest, external, score, score_by_season,
};
use hydrowatch_forecast::forecaster::winner;
use hydrowatch_forecast::{Fit, Fitted, Forecast, ForecastError, Forecaster, HORIZON, History};
use hydrowatch_store::{Store, StoreError};

/// Why a series' contest failed.
#[derive(Debug, thiserror::Error)]
pub enum ContestError {
    /// A baseline could not be backtested (a series too short for every forecaster).
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    /// Another program's forecasts could not be read or written.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// Another program's forecasts do not fit the backtest.
    #[error("{file}: {problem}")]
    External {
        /// The file.
        file: PathBuf,
        /// What does not fit.
        problem: String,
    },
    /// The database failed (recording a winner).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No forecaster could be scored, so none can be selected.
    #[error("series {0}: no forecaster could be scored")]
    NoWinner(String),
    /// A folder could not be created.
    #[error("cannot create {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Another program whose forecasts are scored beside ours: its name and the folder holding
/// `<series>.csv` (rows `origin,time,value[,lower,upper]`).
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    /// Its name in the tables.
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
}

/// One series' contest: the results in the order of the forecasters, externals last.
#[derive(Debug)]
pub struct SeriesResults {
    /// The series.
    pub name: String,
    /// Its history.
    pub history: History,
    /// The results.
    pub results: Vec<BacktestResult>,
    /// Whether each result has a band (other programs' may not).
    pub banded: Vec<bool>,
    /// How many results at the end are other programs'.
    pub externals: usize,
}

impl SeriesResults {
    /// Our forecasters' results (those a device can run).
    pub fn own(&self) -> &[BacktestResult] {
        &self.results[..self.results.len() - self.externals]
    }
}

/// Fits a forecaster; the label names it and its series (the command shows a progress bar).
pub type LabelledFit<'a> = &'a dyn Fn(&Forecaster, &History, &str) -> Result<Fitted, ForecastError>;

struct Labelled<'a>(&'a Forecaster, String, LabelledFit<'a>);

impl Fit for Labelled<'_> {
    type Fitted = Fitted;
    fn fit(&self, history: &History) -> Result<Fitted, ForecastError> {
        (self.2)(self.0, history, &self.1)
    }
}

/// Runs the contest on series `name` from the origins `at`, fitted again every `refit` days;
/// `left_out` hears of each trained forecaster the series is too short for.
#[allow(clippy::too_many_arguments)]
pub fn run_series(
    name: &str,
    history: History,
    forecasters: &[Forecaster],
    externals: &[External],
    at: &[usize],
    refit: Option<usize>,
    fit: LabelledFit<'_>,
    left_out: &mut dyn FnMut(&Forecaster, &ForecastError),
) -> Result<SeriesResults, ContestError> {
    // Other programs' forecasts are read first: a file that does not fit fails at once.
    let theirs = externals
        .iter()
        .map(|e| read_external(&e.dir, name, &history, at))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = Vec::new();
    let mut banded = Vec::new();
    for f in forecasters {
        let label = format!("{name} {}", f.name());
        match backtest(&Labelled(f, label, fit), &history, at, refit) {
            Ok(mut r) => {
                r.name = f.name();
                results.push(r);
                banded.push(true);
            }
            Err(e) if f.is_trained() => left_out(f, &e),
            Err(e) => return Err(e.into()),
        }
    }
    for (e, (forecasts, has_band)) in externals.iter().zip(theirs) {
        results.push(external(&e.name, &history, forecasts));
        banded.push(has_band);
    }
    Ok(SeriesResults {
        name: name.into(),
        history,
        results,
        banded,
        externals: externals.len(),
    })
}

/// Records the winner of `series` (the lowest PI1 + PI3 of our forecasters) as its default
/// forecaster in `store`, at `now`; returns its name and score.
pub fn select(
    store: &mut Store,
    series: &SeriesResults,
    now: i64,
) -> Result<(String, f64), ContestError> {
    let best = winner(series.own()).ok_or_else(|| ContestError::NoWinner(series.name.clone()))?;
    let id = store.ensure_series(&series.name, None)?;
    let score = best.scores.selection();
    store.set_default_model(id, &best.name, score, now)?;
    Ok((best.name.clone(), score))
}

/// Each series' scores of each forecaster over all its origins.
pub fn overall(series: &[&SeriesResults]) -> Vec<Vec<Scored>> {
    series
        .iter()
        .map(|s| {
            s.results
                .iter()
                .map(|r| score(&s.history, &r.forecasts.iter().collect::<Vec<_>>()))
                .collect()
        })
        .collect()
}

/// Each series' scores of each forecaster over its origins in `season`; `None` when no series
/// has an origin there.
pub fn in_season(series: &[&SeriesResults], season: &str) -> Option<Vec<Vec<Scored>>> {
    let scored: Vec<Vec<Scored>> = series
        .iter()
        .map(|s| {
            s.results
                .iter()
                .map(|r| {
                    score_by_season(&s.history, &r.forecasts)
                        .into_iter()
                        .find(|(name, _)| *name == season)
                        .map_or(NOTHING, |(_, scored)| scored)
                })
                .collect()
        })
        .collect();
    scored
        .iter()
        .any(|s| s.iter().any(|x| x.forecasts > 0))
        .then_some(scored)
}

const NOTHING: Scored = Scored {
    scores: hydrowatch_forecast::Scores {
        pi1: f64::NAN,
        pi2: f64::NAN,
        pi3: f64::NAN,
        rmse: f64::NAN,
        mape: f64::NAN,
    },
    coverage: f64::NAN,
    forecasts: 0,
};

/// One forecaster's line of a summary over several series.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// The forecaster.
    pub name: String,
    /// Mean PI1, PI2, PI3, RMSE (in the series' unit) and MAPE (%) over the series.
    pub means: [f64; 5],
    /// The mean of each series' change of PI1, PI2 and PI3 against seasonal naive (fractions);
    /// `None` where it cannot be computed.
    pub vs_naive: [Option<f64>; 3],
    /// The mean band coverage; `None` when a series' result has no band.
    pub coverage: Option<f64>,
}

/// Per forecaster: the mean scores over the series, the mean of each series' change against
/// seasonal naive (every series weighs the same whatever its flow), the mean coverage.
pub fn summarise(series: &[&SeriesResults], scored: &[Vec<Scored>]) -> Vec<SummaryRow> {
    let Some(first) = series.first() else {
        return Vec::new();
    };
    let naive = first
        .results
        .iter()
        .position(|r| r.name == "seasonal-naive");
    let finite_mean = |v: Vec<f64>| -> Option<f64> {
        let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    first
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mean = |f: &dyn Fn(&Scored) -> f64| {
                finite_mean(scored.iter().map(|s| f(&s[i])).collect()).unwrap_or(0.0)
            };
            let change = |f: &dyn Fn(&Scored) -> f64| {
                let n = naive?;
                finite_mean(scored.iter().map(|s| f(&s[i]) / f(&s[n]) - 1.0).collect())
            };
            let banded = series.iter().all(|s| s.banded[i]);
            SummaryRow {
                name: r.name.clone(),
                means: [
                    mean(&|s| s.scores.pi1),
                    mean(&|s| s.scores.pi2),
                    mean(&|s| s.scores.pi3),
                    mean(&|s| s.scores.rmse),
                    mean(&|s| s.scores.mape),
                ],
                vs_naive: [
                    change(&|s| s.scores.pi1),
                    change(&|s| s.scores.pi2),
                    change(&|s| s.scores.pi3),
                ],
                coverage: banded
                    .then(|| mean(&|s| s.coverage))
                    .filter(|c| c.is_finite()),
            }
        })
        .collect()
}

fn not_fitting(file: &Path, problem: String) -> ContestError {
    ContestError::External {
        file: file.to_path_buf(),
        problem,
    }
}

/// The forecasts of another program for `series` from `dir`, one per origin of `at`, and whether
/// every row has a band.
pub fn read_external(
    dir: &Path,
    series: &str,
    history: &History,
    at: &[usize],
) -> Result<(Vec<Forecast>, bool), ContestError> {
    let path = dir.join(format!("{series}.csv"));
    let rows = hydrowatch_csv::read_forecasts(&path, history.timezone)?;
    let banded = rows.iter().all(|r| r.lower.is_some() && r.upper.is_some());
    let mut by_origin: HashMap<i64, Vec<&ForecastRow>> = HashMap::new();
    for r in &rows {
        by_origin.entry(r.origin).or_default().push(r);
    }
    let s = &history.series;
    let mut out = Vec::with_capacity(at.len());
    for &o in at {
        let start = s.time(o);
        let local = hydrowatch_core::time::format_local(start, history.timezone);
        let Some(rows) = by_origin.get(&start) else {
            return Err(not_fitting(
                &path,
                format!(
                    "no forecast from the origin {local} (the file must cover every origin of the backtest)"
                ),
            ));
        };
        let mut points = vec![f64::NAN; HORIZON];
        let (mut lower, mut upper) = (vec![f64::NAN; HORIZON], vec![f64::NAN; HORIZON]);
        for r in rows {
            let h = (r.time - start) / s.step;
            if (r.time - start) % s.step != 0 || !(0..HORIZON as i64).contains(&h) {
                return Err(not_fitting(
                    &path,
                    format!(
                        "line {}: the time is not one of the 168 hours after its origin {local}",
                        r.line
                    ),
                ));
            }
            let h = h as usize;
            points[h] = r.value;
            lower[h] = r.lower.unwrap_or(r.value);
            upper[h] = r.upper.unwrap_or(r.value);
        }
        let have = points.iter().filter(|v| v.is_finite()).count();
        if have != HORIZON {
            return Err(not_fitting(
                &path,
                format!("the forecast from {local} has {have} of the {HORIZON} hours"),
            ));
        }
        out.push(Forecast {
            start,
            step: s.step,
            points,
            lower,
            upper,
            model: String::new(),
        });
    }
    Ok((out, banded))
}

/// Writes `forecasts` as `dir/<series>.csv`, the form [`read_external`] reads.
pub fn write_forecasts(
    dir: &Path,
    series: &str,
    forecasts: &[Forecast],
    tz: Tz,
) -> Result<(), ContestError> {
    std::fs::create_dir_all(dir).map_err(|e| ContestError::Io(dir.to_path_buf(), e))?;
    let rows: Vec<ForecastRow> = forecasts
        .iter()
        .flat_map(|fc| {
            (0..fc.points.len()).map(move |h| ForecastRow {
                line: 0,
                origin: fc.start,
                time: fc.time(h),
                value: fc.points[h],
                lower: Some(fc.lower[h]),
                upper: Some(fc.upper[h]),
            })
        })
        .collect();
    Ok(hydrowatch_csv::write_forecasts(
        &dir.join(format!("{series}.csv")),
        &rows,
        tz,
    )?)
}
