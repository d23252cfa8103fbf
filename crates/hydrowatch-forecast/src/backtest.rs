//! Rolling-origin backtests: fit once on the history before the last `weeks` weeks, then
//! forecast from every day's midnight origin in those weeks (as the device does daily) with
//! only the history before that origin, and score each forecast against what happened.

use std::time::Instant;

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
    /// Seconds to fit.
    pub fit_seconds: f64,
    /// Mean seconds per forecast.
    pub predict_seconds: f64,
}

/// Indices of the daily origins of the last `weeks` weeks of `history` whose horizon ends
/// inside it.
pub fn origins(history: &History, weeks: usize) -> Vec<usize> {
    let n = history.series.values.len();
    let first = n.saturating_sub(weeks * WEEK);
    (first..=n.saturating_sub(HORIZON)).step_by(24).collect()
}

/// Backtests `config` over the last `weeks` weeks of `history`.
pub fn backtest<F: Fit>(
    config: &F,
    history: &History,
    weeks: usize,
) -> Result<BacktestResult, ForecastError> {
    let origins = origins(history, weeks);
    let Some(&first) = origins.first() else {
        return Err(ForecastError::TooShort {
            what: format!("a {weeks}-week backtest"),
            needed: weeks * WEEK,
            available: history.series.values.len(),
        });
    };
    let started = Instant::now();
    let fitted = config.fit(&history.until(first))?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut scores = Vec::with_capacity(origins.len());
    for &o in &origins {
        let fc = fitted.predict(&history.until(o))?;
        scores.extend(Scores::of(
            &history.series.values[o..o + HORIZON],
            &fc.points,
        ));
    }
    Ok(BacktestResult {
        name: fitted.name(),
        scores: Scores::mean(&scores),
        origins: scores.len(),
        fit_seconds,
        predict_seconds: started.elapsed().as_secs_f64() / origins.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::SeasonalNaive;
    use crate::{Holidays, Series};

    #[test]
    fn a_repeating_week_is_forecast_perfectly_by_seasonal_naive() {
        let values: Vec<f64> = (0..12 * WEEK).map(|i| ((i % WEEK) as f64).sqrt()).collect();
        let history = History {
            series: Series {
                start: 0,
                step: 3600,
                values,
            },
            timezone: chrono_tz::UTC,
            holidays: Holidays::default(),
        };
        let r = backtest(&SeasonalNaive, &history, 8).unwrap();
        assert_eq!(r.origins, 7 * 7 + 1);
        assert!(r.scores.pi1 < 1e-12 && r.scores.pi3 < 1e-12, "{r:?}");
        assert!(backtest(&SeasonalNaive, &history.until(100), 8).is_err());
    }
}
