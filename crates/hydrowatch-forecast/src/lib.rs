//! Forecasting for hydrowatch: the next 168 hours of a series, from its own history.
//!
//! The shape follows augurs: a model *configuration* implements [`Fit`]; fitting it on a
//! [`History`] returns a fitted model, which alone can [`Predict`]. Every forecaster, neural or
//! baseline, returns the same [`Forecast`]: one value per hour with a 10-90% band.
//!
//! Invariants:
//! - inputs are plain slices and [`Series`] (hourly means, `NaN` = no reading); nothing here
//!   touches a database or a file except the model artefacts of [`artifact`];
//! - burn (the neural-network library) is used in this crate only, and only inside [`neural`];
//! - a forecast starts at the end of the history it was given (the hour after its last
//!   interval) and has exactly [`HORIZON`] points, each with `lower <= upper`;
//! - no forecaster ever reads a value at or after the end of the history it was given: the
//!   backtests depend on it;
//! - every forecaster works on the local wall clock ([`clock::WallClock`]): its seasonal lags,
//!   calendar features and daily origins are local clock hours, 24 to a local day, and its
//!   forecast is mapped back to the real hours after the history.

pub mod artifact;
pub mod backtest;
pub mod band;
pub mod baseline;
pub mod bench;
pub mod calendar;
pub mod clock;
pub mod combination;
pub mod forecaster;
pub mod metrics;
pub mod neural;
pub mod scale;
pub mod series;

use chrono_tz::Tz;
use hydrowatch_core::Timestamp;

pub use band::Band;
pub use calendar::Holidays;
pub use forecaster::{Fitted, Forecaster};
pub use metrics::Scores;
pub use series::{Filled, GapRules, Series, fill_gaps};

/// Hours forecast: 7 days.
pub const HORIZON: usize = 168;
/// One week of hourly intervals: the longest seasonality modelled.
pub const WEEK: usize = 168;

/// Everything that can go wrong while forecasting.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// A value that is not a number reached the forecaster.
    #[error(
        "value at {ts} is {value}: forecasting needs finite numbers (NaN marks a missing hour internally, never in the input)"
    )]
    NonFinite {
        /// Unix seconds of the value.
        ts: Timestamp,
        /// The value.
        value: f64,
    },
    /// Not enough usable history for what was asked.
    #[error("too little history: {what} needs {needed} usable hours, the series has {available}")]
    TooShort {
        /// What needed it.
        what: String,
        /// Hours needed.
        needed: usize,
        /// Usable hours available.
        available: usize,
    },
    /// Anything else about the input.
    #[error("{0}")]
    Input(String),
    /// A model file or folder that cannot be used.
    #[error("model {path}: {reason}")]
    Artifact {
        /// The model folder or file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The MSTL or ETS baseline failed.
    #[error("MSTL+ETS baseline: {0}")]
    Baseline(String),
}

/// The history a forecaster learns from or forecasts after.
#[derive(Debug, Clone)]
pub struct History {
    /// Hourly means; the forecast starts at `series.end()`.
    pub series: Series,
    /// The local zone of the calendar features.
    pub timezone: Tz,
    /// Local days off besides weekends.
    pub holidays: Holidays,
}

impl History {
    /// An hourly history starting at `start`, without holidays.
    pub fn hourly(start: Timestamp, values: Vec<f64>, timezone: Tz) -> History {
        History {
            series: Series {
                start,
                step: 3600,
                values,
            },
            timezone,
            holidays: Holidays::default(),
        }
    }

    /// The last `len` intervals of the history (all of it when shorter).
    pub fn tail(&self, len: usize) -> History {
        let n = self.series.values.len();
        History {
            series: self.series.slice(n.saturating_sub(len), n),
            timezone: self.timezone,
            holidays: self.holidays.clone(),
        }
    }

    /// The last `n` intervals of the history (all of it when it is shorter).
    pub fn last(&self, n: usize) -> History {
        let len = self.series.values.len();
        History {
            series: self.series.slice(len.saturating_sub(n), len),
            timezone: self.timezone,
            holidays: self.holidays.clone(),
        }
    }

    /// The history up to (not including) interval `end`.
    pub fn until(&self, end: usize) -> History {
        History {
            series: self.series.slice(0, end),
            timezone: self.timezone,
            holidays: self.holidays.clone(),
        }
    }
}

/// A forecast: [`HORIZON`] hourly values after the end of a history, with a 10-90% band.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Forecast {
    /// Start of the first forecast hour.
    pub start: Timestamp,
    /// Interval length, seconds.
    pub step: i64,
    /// Forecast means.
    pub points: Vec<f64>,
    /// 10th percentile.
    pub lower: Vec<f64>,
    /// 90th percentile.
    pub upper: Vec<f64>,
    /// What produced it, e.g. `lstm/mimo` or `seasonal-naive`.
    pub model: String,
}

impl Forecast {
    /// Start of point `i`.
    pub fn time(&self, i: usize) -> Timestamp {
        self.start + self.step * i as i64
    }
}

/// A forecaster configuration that can be fitted.
pub trait Fit {
    /// The fitted model.
    type Fitted: Predict;
    /// Learns from `history`.
    fn fit(&self, history: &History) -> Result<Self::Fitted, ForecastError>;
}

/// A fitted forecaster.
pub trait Predict {
    /// Forecasts the [`HORIZON`] hours after the end of `history`.
    fn predict(&self, history: &History) -> Result<Forecast, ForecastError>;
    /// Its name in reports, e.g. `lstm/mimo`.
    fn name(&self) -> String;
}
