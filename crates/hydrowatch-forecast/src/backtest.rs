//! Rolling-origin backtests: fit on the history before the last `weeks` weeks (once, or again
//! every few days as a device that retrains), then forecast from every day's midnight origin in
//! those weeks (as the device does daily) with only the history before that origin, and score
//! each forecast against what happened.
//!
//! Where a forecaster cannot forecast from an origin (its input falls in a long gap), the
//! seasonal-blend forecast is scored in its place, as the device would send it, and counted.

use std::time::Instant;

use crate::baseline::SeasonalBlend;
use crate::{Fit, ForecastError, HORIZON, History, Predict, Scores, WEEK};

/// The outcome of one forecaster's backtest.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BacktestResult {
    /// The forecaster, e.g. `lstm/mimo`.
    pub name: String,
    /// Mean scores over the origins.
    pub scores: Scores,
    /// Forecasts scored.
    pub origins: usize,
    /// Origins where the forecaster could not forecast and the seasonal blend stood in.
    pub fallbacks: usize,
    /// Seconds to fit.
    pub fit_seconds: f64,
    /// Mean seconds per forecast.
    pub predict_seconds: f64,
    /// The forecast from each origin, in origin order (for combining forecasters).
    #[serde(skip)]
    pub forecasts: Vec<Vec<f64>>,
}

/// Scores `forecasts` (one per origin of [`origins`]) against `history`.
pub fn score(history: &History, weeks: usize, forecasts: &[Vec<f64>]) -> Scores {
    let all: Vec<Scores> = origins(history, weeks)
        .iter()
        .zip(forecasts)
        .filter_map(|(&o, fc)| Scores::of(&history.series.values[o..o + HORIZON], fc))
        .collect();
    Scores::mean(&all)
}

/// Indices of the daily origins of the last `weeks` weeks of `history` whose horizon ends
/// inside it.
pub fn origins(history: &History, weeks: usize) -> Vec<usize> {
    let n = history.series.values.len();
    let first = n.saturating_sub(weeks * WEEK);
    (first..=n.saturating_sub(HORIZON)).step_by(24).collect()
}

/// The first origin of a `weeks`-week backtest of `history`; an error when there is none.
pub fn first_origin(history: &History, weeks: usize) -> Result<usize, ForecastError> {
    origins(history, weeks)
        .first()
        .copied()
        .ok_or_else(|| ForecastError::TooShort {
            what: format!("a {weeks}-week backtest"),
            needed: weeks * WEEK,
            available: history.series.values.len(),
        })
}

/// Backtests `config` over the last `weeks` weeks of `history`, fitted once before them.
pub fn backtest<F: Fit>(
    config: &F,
    history: &History,
    weeks: usize,
) -> Result<BacktestResult, ForecastError> {
    backtest_refitted(config, history, weeks, None)
}

/// Backtests `config` over the last `weeks` weeks of `history`, fitted before them and, with
/// `refit_days`, fitted again on all the history before every `refit_days`-th origin (as a
/// device that retrains on schedule). `fit_seconds` is then the mean of the fits.
pub fn backtest_refitted<F: Fit>(
    config: &F,
    history: &History,
    weeks: usize,
    refit_days: Option<usize>,
) -> Result<BacktestResult, ForecastError> {
    let all = origins(history, weeks);
    let first = first_origin(history, weeks)?;
    let every = refit_days.map_or(all.len(), |d| d.max(1));
    let mut parts = Vec::new();
    let mut fit_seconds = 0.0;
    for group in all.chunks(every) {
        let started = Instant::now();
        let fitted = config.fit(&history.until(group[0]))?;
        fit_seconds += started.elapsed().as_secs_f64();
        parts.push(evaluate_at(&fitted, history, first, group)?);
    }
    let fits = parts.len() as f64;
    let mut result = parts.remove(0);
    for p in parts {
        result.origins += p.origins;
        result.fallbacks += p.fallbacks;
        result.predict_seconds += p.predict_seconds;
        result.forecasts.extend(p.forecasts);
    }
    result.scores = score(history, weeks, &result.forecasts);
    result.fit_seconds = fit_seconds / fits;
    result.predict_seconds /= fits;
    Ok(result)
}

/// Scores an already fitted forecaster over the daily origins of the last `weeks` weeks of
/// `history` (the weekly retraining compares the model in use with a new one this way: neither
/// has seen those weeks).
pub fn evaluate<P: Predict>(
    fitted: &P,
    history: &History,
    weeks: usize,
) -> Result<BacktestResult, ForecastError> {
    let first = first_origin(history, weeks)?;
    evaluate_at(fitted, history, first, &origins(history, weeks))
}

/// Forecasts from each of `origins` and scores them; the seasonal blend fitted before `first`
/// stands in where the forecaster cannot forecast.
fn evaluate_at<P: Predict>(
    fitted: &P,
    history: &History,
    first: usize,
    origins: &[usize],
) -> Result<BacktestResult, ForecastError> {
    let started = Instant::now();
    let mut scores = Vec::with_capacity(origins.len());
    let mut forecasts = Vec::with_capacity(origins.len());
    let mut fallbacks = 0;
    let mut stand_in = None;
    for &o in origins {
        let past = history.until(o);
        let points = match fitted.predict(&past) {
            Ok(fc) => fc.points,
            Err(ForecastError::Input(_) | ForecastError::TooShort { .. }) => {
                fallbacks += 1;
                let stand_in = match &stand_in {
                    Some(n) => n,
                    None => stand_in.insert(SeasonalBlend.fit(&history.until(first))?),
                };
                stand_in.predict(&past)?.points
            }
            Err(e) => return Err(e),
        };
        scores.extend(Scores::of(&history.series.values[o..o + HORIZON], &points));
        forecasts.push(points);
    }
    Ok(BacktestResult {
        name: fitted.name(),
        scores: Scores::mean(&scores),
        origins: scores.len(),
        fallbacks,
        fit_seconds: 0.0,
        predict_seconds: started.elapsed().as_secs_f64() / origins.len().max(1) as f64,
        forecasts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::SeasonalNaive;

    #[test]
    fn a_repeating_week_is_forecast_perfectly_by_seasonal_naive() {
        let values: Vec<f64> = (0..12 * WEEK).map(|i| ((i % WEEK) as f64).sqrt()).collect();
        let history = History::hourly(0, values, chrono_tz::UTC);
        let r = backtest(&SeasonalNaive, &history, 8).unwrap();
        assert_eq!(r.origins, 7 * 7 + 1);
        assert!(r.scores.pi1 < 1e-12 && r.scores.pi3 < 1e-12, "{r:?}");
        assert_eq!(score(&history, 8, &r.forecasts), r.scores);
        assert!(backtest(&SeasonalNaive, &history.until(100), 8).is_err());
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
        let values: Vec<f64> = (0..12 * WEEK).map(|i| ((i % WEEK) as f64).sqrt()).collect();
        let history = History::hourly(0, values, chrono_tz::UTC);
        let counted = Counted(AtomicUsize::new(0));
        let r = backtest_refitted(&counted, &history, 8, Some(7)).unwrap();
        assert_eq!(r.origins, 50);
        assert_eq!(
            counted.0.load(Ordering::Relaxed),
            8,
            "origins 0, 7, ..., 49"
        );
        assert_eq!(r.forecasts.len(), 50);
        assert_eq!(
            r.scores,
            backtest(&SeasonalNaive, &history, 8).unwrap().scores
        );
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
        let r = backtest(&Broken, &history, 2).unwrap();
        assert_eq!(r.fallbacks, r.origins);
        assert!(r.scores.pi1 < 1e-12, "the stand-in forecast is scored");
    }
}
