//! Rolling-origin backtests, as the device lives: from each origin (a local midnight, or a local
//! Monday 00:00), a forecast of the next 168 hours from the history before that origin only,
//! scored against what happened. A forecaster is fitted on the history before the first origin
//! and, when asked, fitted again on all the history before an origin every few days (as a device
//! that retrains on schedule).
//!
//! Where a forecaster cannot forecast from an origin (its input falls in a long gap), the
//! seasonal-blend forecast is scored in its place, as the device would send it, and counted.

use hydrowatch_core::time::DAY;
use std::time::Instant;

use chrono::Datelike;
use hydrowatch_core::Timestamp;

use crate::baseline::SeasonalBlend;
use crate::clock::{day_starts, week_starts, weeks_before_end};
use crate::{Fit, Forecast, ForecastError, HORIZON, History, Predict, Scores};

/// Which origins a backtest forecasts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every local midnight (the device's daily forecast).
    Daily,
    /// Every local Monday 00:00 (a year of origins at a week's cost each).
    Weekly,
}

/// The origins of a backtest over the last `weeks` local weeks of `history`: the local midnights
/// (or Mondays 00:00) whose 168 hours lie inside it, as indices of `history`.
pub fn origins(history: &History, weeks: usize, schedule: Schedule) -> Vec<usize> {
    let n = history.series.values.len();
    if n < HORIZON {
        return Vec::new();
    }
    let from = weeks_before_end(history, weeks);
    match schedule {
        Schedule::Daily => day_starts(history, from, n - HORIZON),
        Schedule::Weekly => week_starts(history, from, n - HORIZON),
    }
}

/// The outcome of one forecaster's backtest.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BacktestResult {
    /// The forecaster, e.g. `lstm/mimo`.
    pub name: String,
    /// Mean scores over the origins.
    pub scores: Scores,
    /// Share of the known actual hours inside the forecast's 10-90% band (0.8 when the band is
    /// right).
    pub coverage: f64,
    /// Forecasts scored.
    pub origins: usize,
    /// Origins where the forecaster could not forecast and the seasonal blend stood in.
    pub fallbacks: usize,
    /// Mean seconds per fit.
    pub fit_seconds: f64,
    /// Mean seconds per forecast.
    pub predict_seconds: f64,
    /// The forecast from each origin, in origin order.
    #[serde(skip)]
    pub forecasts: Vec<Forecast>,
}

/// Scores of forecasts from a set of origins, and their band's coverage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Mean scores over the forecasts that have a known actual in hours 1-24.
    pub scores: Scores,
    /// Share of the known actual hours inside the band.
    pub coverage: f64,
    /// Forecasts scored.
    pub forecasts: usize,
}

/// Scores `forecasts` against `history` (each forecast's hours are looked up by time, so any
/// origins can be scored).
pub fn score(history: &History, forecasts: &[&Forecast]) -> Scored {
    let s = &history.series;
    let mut all = Vec::with_capacity(forecasts.len());
    let (mut inside, mut known) = (0usize, 0usize);
    for fc in forecasts {
        let actual: Vec<f64> = (0..fc.points.len())
            .map(|h| {
                let i = (fc.time(h) - s.start).div_euclid(s.step);
                usize::try_from(i)
                    .ok()
                    .and_then(|i| s.values.get(i).copied())
                    .unwrap_or(f64::NAN)
            })
            .collect();
        for (h, a) in actual.iter().enumerate().filter(|(_, a)| a.is_finite()) {
            known += 1;
            inside += usize::from(fc.lower[h] <= *a && *a <= fc.upper[h]);
        }
        all.extend(Scores::of(&actual, &fc.points));
    }
    Scored {
        scores: Scores::mean(&all),
        coverage: if known == 0 {
            f64::NAN
        } else {
            inside as f64 / known as f64
        },
        forecasts: all.len(),
    }
}

/// The meteorological seasons by month, named by their months so that they read right in
/// either hemisphere.
pub const SEASONS: [&str; 4] = ["Dec-Feb", "Mar-May", "Jun-Aug", "Sep-Nov"];

/// The season (index into [`SEASONS`]) of the local date of `ts` in the history's zone.
pub fn season_of(history: &History, ts: Timestamp) -> usize {
    (hydrowatch_core::time::local_date(ts, history.timezone).month() as usize % 12) / 3
}

/// [`score`] per season of the forecasts' origins (a season without origins is left out).
pub fn score_by_season(history: &History, forecasts: &[Forecast]) -> Vec<(&'static str, Scored)> {
    (0..SEASONS.len())
        .filter_map(|k| {
            let of: Vec<&Forecast> = forecasts
                .iter()
                .filter(|f| season_of(history, f.start) == k)
                .collect();
            (!of.is_empty()).then(|| (SEASONS[k], score(history, &of)))
        })
        .collect()
}

/// Backtests `config` from `origins` of `history`: fitted on the history before the first, and
/// with `refit_days`, again on all the history before each origin at least that many days after
/// the last fit.
pub fn backtest<F: Fit>(
    config: &F,
    history: &History,
    origins: &[usize],
    refit_days: Option<usize>,
) -> Result<BacktestResult, ForecastError> {
    let Some(&first) = origins.first() else {
        return Err(no_origins(history));
    };
    let s = &history.series;
    let mut fitted = None;
    let (mut fit_seconds, mut fits, mut fitted_at) = (0.0, 0usize, s.time(first));
    let mut forecasts = Vec::with_capacity(origins.len());
    let (mut fallbacks, mut predict_seconds) = (0, 0.0);
    let mut stand_in = None;
    for &o in origins {
        // A local day is 23 to 25 hours: a refit is due an hour early at most.
        let due = refit_days.is_some_and(|d| s.time(o) - fitted_at >= d as i64 * DAY - 3600);
        if fitted.is_none() || due {
            let started = Instant::now();
            fitted = Some(config.fit(&history.until(o))?);
            fit_seconds += started.elapsed().as_secs_f64();
            fits += 1;
            fitted_at = s.time(o);
        }
        let model = fitted.as_ref().expect("fitted above");
        let started = Instant::now();
        let (fc, fell_back) = forecast_or_stand_in(model, history, first, o, &mut stand_in)?;
        predict_seconds += started.elapsed().as_secs_f64();
        fallbacks += usize::from(fell_back);
        forecasts.push(fc);
    }
    let name = fitted.as_ref().map_or_else(String::new, |m| m.name());
    Ok(result(
        name,
        history,
        forecasts,
        fallbacks,
        fit_seconds / fits.max(1) as f64,
        predict_seconds,
    ))
}

/// Scores an already fitted forecaster from `origins` of `history` (the weekly retraining
/// compares the model in use with a new one this way: neither has seen those weeks).
pub fn evaluate<P: Predict>(
    fitted: &P,
    history: &History,
    origins: &[usize],
) -> Result<BacktestResult, ForecastError> {
    let Some(&first) = origins.first() else {
        return Err(no_origins(history));
    };
    let started = Instant::now();
    let mut stand_in = None;
    let mut forecasts = Vec::with_capacity(origins.len());
    let mut fallbacks = 0;
    for &o in origins {
        let (fc, fell_back) = forecast_or_stand_in(fitted, history, first, o, &mut stand_in)?;
        fallbacks += usize::from(fell_back);
        forecasts.push(fc);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(result(
        fitted.name(),
        history,
        forecasts,
        fallbacks,
        0.0,
        seconds,
    ))
}

/// Scores forecasts that were made elsewhere (another program's, read from files), by name.
pub fn external(name: &str, history: &History, forecasts: Vec<Forecast>) -> BacktestResult {
    result(name.to_string(), history, forecasts, 0, 0.0, 0.0)
}

fn result(
    name: String,
    history: &History,
    forecasts: Vec<Forecast>,
    fallbacks: usize,
    fit_seconds: f64,
    predict_seconds: f64,
) -> BacktestResult {
    let scored = score(history, &forecasts.iter().collect::<Vec<_>>());
    BacktestResult {
        name,
        scores: scored.scores,
        coverage: scored.coverage,
        origins: scored.forecasts,
        fallbacks,
        fit_seconds,
        predict_seconds: predict_seconds / forecasts.len().max(1) as f64,
        forecasts,
    }
}

fn no_origins(history: &History) -> ForecastError {
    ForecastError::TooShort {
        what: "a backtest (one origin with 168 hours after it)".into(),
        needed: HORIZON + 1,
        available: history.series.values.len(),
    }
}

/// The forecast of `model` from origin `o`, or where it cannot forecast there the seasonal
/// blend's (fitted before `first`, once), and whether the blend stood in.
fn forecast_or_stand_in<P: Predict>(
    model: &P,
    history: &History,
    first: usize,
    o: usize,
    stand_in: &mut Option<crate::baseline::FittedSeasonalBlend>,
) -> Result<(Forecast, bool), ForecastError> {
    let past = history.until(o);
    match model.predict(&past) {
        Ok(fc) => Ok((fc, false)),
        Err(ForecastError::Input(_) | ForecastError::TooShort { .. }) => {
            let blend = match stand_in {
                Some(b) => b,
                None => stand_in.insert(SeasonalBlend.fit(&history.until(first))?),
            };
            Ok((blend.predict(&past)?, true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WEEK;
    use crate::baseline::SeasonalNaive;

    fn repeating_week(weeks: usize) -> History {
        let values: Vec<f64> = (0..weeks * WEEK)
            .map(|i| ((i % WEEK) as f64).sqrt())
            .collect();
        // 1970-01-05 was a Monday.
        History::hourly(4 * 86_400, values, chrono_tz::UTC)
    }

    #[test]
    fn a_repeating_week_is_forecast_perfectly_by_seasonal_naive() {
        let history = repeating_week(12);
        let daily = origins(&history, 8, Schedule::Daily);
        assert_eq!(daily.len(), 7 * 7 + 1);
        let r = backtest(&SeasonalNaive, &history, &daily, None).unwrap();
        assert_eq!(r.origins, 50);
        assert!(r.scores.pi1 < 1e-12 && r.scores.pi3 < 1e-12, "{r:?}");
        let weekly = origins(&history, 8, Schedule::Weekly);
        assert_eq!(weekly.len(), 8);
        assert!(weekly.iter().all(|o| o % WEEK == 0), "Mondays: {weekly:?}");
        assert!(backtest(&SeasonalNaive, &history.until(100), &[], None).is_err());
    }

    #[test]
    fn refitting_every_week_fits_once_per_week_and_scores_every_origin() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        /// Seasonal naive that counts its fits.
        struct Counted(AtomicUsize);
        impl Fit for Counted {
            type Fitted = <SeasonalNaive as Fit>::Fitted;
            fn fit(&self, h: &History) -> Result<Self::Fitted, ForecastError> {
                self.0.fetch_add(1, Ordering::Relaxed);
                SeasonalNaive.fit(h)
            }
        }
        let history = repeating_week(12);
        let daily = origins(&history, 8, Schedule::Daily);
        let counted = Counted(AtomicUsize::new(0));
        let r = backtest(&counted, &history, &daily, Some(7)).unwrap();
        assert_eq!(r.origins, 50);
        assert_eq!(
            counted.0.load(Ordering::Relaxed),
            8,
            "origins 0, 7, ..., 49"
        );
        assert_eq!(r.forecasts.len(), 50);
        assert_eq!(
            r.scores,
            backtest(&SeasonalNaive, &history, &daily, None)
                .unwrap()
                .scores
        );
    }

    #[test]
    fn seasons_and_coverage() {
        // 60 weeks of one repeating week: every season has origins; a band of zero width around
        // perfect forecasts covers every hour.
        let history = repeating_week(60);
        let weekly = origins(&history, 52, Schedule::Weekly);
        let r = backtest(&SeasonalNaive, &history, &weekly, None).unwrap();
        assert_eq!(r.coverage, 1.0);
        let seasons = score_by_season(&history, &r.forecasts);
        assert_eq!(seasons.len(), 4);
        assert_eq!(
            seasons.iter().map(|(_, s)| s.forecasts).sum::<usize>(),
            r.origins
        );
        // The first origin, Monday 1970-03-02, is in Mar-May.
        assert_eq!(season_of(&history, r.forecasts[0].start), 1);
    }

    /// A forecaster that can never forecast.
    struct Broken;
    impl Fit for Broken {
        type Fitted = Broken;
        fn fit(&self, _: &History) -> Result<Broken, ForecastError> {
            Ok(Broken)
        }
    }
    impl Predict for Broken {
        fn predict(&self, _: &History) -> Result<crate::Forecast, ForecastError> {
            Err(ForecastError::Input("a gap".into()))
        }
        fn name(&self) -> String {
            "broken".into()
        }
    }

    #[test]
    fn the_seasonal_blend_stands_in_where_a_forecaster_cannot_forecast_and_is_counted() {
        // A repeating day: every seasonal lag is exact, so the blend is too.
        let values: Vec<f64> = (0..12 * WEEK).map(|i| ((i % 24) as f64).sqrt()).collect();
        let history = History::hourly(0, values, chrono_tz::UTC);
        let r = backtest(
            &Broken,
            &history,
            &origins(&history, 2, Schedule::Daily),
            None,
        )
        .unwrap();
        assert_eq!(r.fallbacks, r.origins);
        assert!(r.scores.pi1 < 1e-12, "the stand-in forecast is scored");
    }
}
