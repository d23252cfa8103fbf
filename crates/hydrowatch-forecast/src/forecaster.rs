//! The forecasters by name, and the one rule that chooses among them: what `hydrowatch
//! backtest`, `hydrowatch forecast` and the daemon's jobs all use.
//!
//! Invariants:
//! - a forecaster's [`Forecaster::name`] is what reports print and the database records, and
//!   [`Forecaster::from_name`] reads it back;
//! - [`winner`] is the only selection rule: the lowest PI1 + PI3 (PI2 and RMSE are shown, not
//!   chosen on).

use crate::backtest::{BacktestResult, Schedule, backtest, origins};
use crate::baseline::{
    FittedMstlEts, FittedSeasonalBlend, FittedSeasonalMean, FittedSeasonalNaive, MstlEts,
    SeasonalBlend, SeasonalMean, SeasonalNaive,
};
use crate::combination::{Combination, FittedCombination};
use crate::neural::{EpochLog, FittedNeural, NeuralConfig};
use crate::{Fit, Forecast, ForecastError, History, Predict, WEEK};

/// A forecaster the device can run.
#[derive(Debug, Clone, PartialEq)]
pub enum Forecaster {
    /// The same hour one week earlier.
    SeasonalNaive,
    /// The same hour averaged over the last 4 weeks.
    SeasonalMean,
    /// The seasonal blend (the networks' starting point).
    SeasonalBlend,
    /// MSTL with an ETS trend (augurs).
    MstlEts,
    /// A neural network.
    Network(NeuralConfig),
    /// The weighted combination of the blend, MSTL+ETS and a network: the default.
    Combination(Combination),
}

impl Default for Forecaster {
    /// The combination with its default members.
    fn default() -> Self {
        Forecaster::Combination(Combination::default())
    }
}

impl Forecaster {
    /// The baselines, simplest first.
    pub fn baselines() -> Vec<Forecaster> {
        vec![
            Forecaster::SeasonalNaive,
            Forecaster::SeasonalMean,
            Forecaster::SeasonalBlend,
            Forecaster::MstlEts,
        ]
    }

    /// Its name: `seasonal-naive`, `seasonal-mean-4w`, `seasonal-blend`, `mstl-ets`, a network's
    /// `kind/strategy` (`lstm/mimo`) or `combination`.
    pub fn name(&self) -> String {
        match self {
            Forecaster::SeasonalNaive => "seasonal-naive".into(),
            Forecaster::SeasonalMean => format!("seasonal-mean-{}w", SeasonalMean::default().weeks),
            Forecaster::SeasonalBlend => SeasonalBlend::NAME.into(),
            Forecaster::MstlEts => MstlEts::NAME.into(),
            Forecaster::Network(c) => c.name(),
            Forecaster::Combination(c) => c.name(),
        }
    }

    /// The forecaster called `name` (see [`Forecaster::name`]), with default settings.
    pub fn from_name(name: &str) -> Option<Forecaster> {
        Forecaster::baselines()
            .into_iter()
            .chain([Forecaster::default()])
            .find(|f| f.name() == name)
            .or_else(|| {
                let (kind, strategy) = name.split_once('/')?;
                Some(Forecaster::Network(NeuralConfig::new(
                    kind.parse().ok()?,
                    strategy.parse().ok()?,
                )))
            })
    }

    /// Whether fitting it learns something worth keeping (a network, a combination): those are
    /// saved in a model folder and retrained weekly; baselines are fitted when they forecast.
    pub fn is_trained(&self) -> bool {
        matches!(self, Forecaster::Network(_) | Forecaster::Combination(_))
    }

    /// Fits it on `history`, calling `progress(network, epoch)` while a network trains.
    pub fn fit_with_progress(
        &self,
        history: &History,
        progress: impl FnMut(usize, &EpochLog),
    ) -> Result<Fitted, ForecastError> {
        Ok(match self {
            Forecaster::SeasonalNaive => Fitted::SeasonalNaive(SeasonalNaive.fit(history)?),
            Forecaster::SeasonalMean => Fitted::SeasonalMean(SeasonalMean::default().fit(history)?),
            Forecaster::SeasonalBlend => Fitted::SeasonalBlend(SeasonalBlend.fit(history)?),
            Forecaster::MstlEts => Fitted::MstlEts(MstlEts::default().fit(history)?),
            Forecaster::Network(c) => {
                Fitted::Network(Box::new(c.fit_with_progress(history, progress)?))
            }
            Forecaster::Combination(c) => {
                Fitted::Combination(Box::new(c.fit_with_progress(history, progress)?))
            }
        })
    }
}

impl Fit for Forecaster {
    type Fitted = Fitted;

    fn fit(&self, history: &History) -> Result<Fitted, ForecastError> {
        self.fit_with_progress(history, |_, _| {})
    }
}

/// A fitted [`Forecaster`].
pub enum Fitted {
    /// Seasonal naive.
    SeasonalNaive(FittedSeasonalNaive),
    /// Seasonal mean.
    SeasonalMean(FittedSeasonalMean),
    /// Seasonal blend.
    SeasonalBlend(FittedSeasonalBlend),
    /// MSTL+ETS.
    MstlEts(FittedMstlEts),
    /// A trained network.
    Network(Box<FittedNeural>),
    /// A fitted combination.
    Combination(Box<FittedCombination>),
}

impl Fitted {
    fn inner(&self) -> &dyn Predict {
        match self {
            Fitted::SeasonalNaive(m) => m,
            Fitted::SeasonalMean(m) => m,
            Fitted::SeasonalBlend(m) => m,
            Fitted::MstlEts(m) => m,
            Fitted::Network(m) => m.as_ref(),
            Fitted::Combination(m) => m.as_ref(),
        }
    }
}

impl Predict for Fitted {
    fn predict(&self, history: &History) -> Result<Forecast, ForecastError> {
        self.inner().predict(history)
    }

    fn name(&self) -> String {
        self.inner().name()
    }
}

/// The selection rule: the result with the lowest PI1 + PI3 (a result without scores never
/// wins).
pub fn winner(results: &[BacktestResult]) -> Option<&BacktestResult> {
    results
        .iter()
        .filter(|r| r.scores.selection().is_finite())
        .min_by(|a, b| a.scores.selection().total_cmp(&b.scores.selection()))
}

/// The forecast of the best baseline over the last weeks the history allows (up to 4; the
/// [`winner`] of their daily backtests), for a device whose model cannot forecast yet; seasonal
/// naive when no backtest is possible.
pub fn best_baseline(history: &History) -> Result<Forecast, ForecastError> {
    let weeks = (history.series.values.len() / WEEK)
        .saturating_sub(3)
        .clamp(1, 4);
    let days = origins(history, weeks, Schedule::Daily);
    let results: Vec<BacktestResult> = Forecaster::baselines()
        .iter()
        .filter_map(|f| backtest(f, history, &days, None).ok())
        .collect();
    let best = winner(&results)
        .and_then(|r| Forecaster::from_name(&r.name))
        .unwrap_or(Forecaster::SeasonalNaive);
    best.fit(history)?.predict(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neural::{ModelKind, Strategy};

    #[test]
    fn names_read_back() {
        let mut all = Forecaster::baselines();
        all.push(Forecaster::default());
        all.push(Forecaster::Network(NeuralConfig::new(
            ModelKind::Gru,
            Strategy::Direct,
        )));
        for f in &all {
            assert_eq!(Forecaster::from_name(&f.name()).as_ref(), Some(f));
        }
        assert_eq!(Forecaster::default().name(), "combination");
        assert!(Forecaster::from_name("lstm/sideways").is_none());
        assert!(Forecaster::from_name("prophet").is_none());
        assert!(Forecaster::default().is_trained() && !Forecaster::MstlEts.is_trained());
    }
}
