//! Anomaly detection for hydrowatch: every reading is judged against criteria fitted on the
//! series' own recent history, checked for sensor faults, and fed through one alarm lifecycle
//! per (series, kind, direction) that emits a message only when the alarm opens, escalates,
//! de-escalates or clears. Pure and synchronous: no I/O, no clock of its own (time is what the
//! caller says), so the daemon, `hydrowatch detect` and the tests run exactly the same code.
//!
//! Invariants:
//! - every reading given to [`Detector::observe`] gets exactly one [`Judgement`]; readings that
//!   cannot be judged (not finite, or not newer than the series' last one) are marked as such,
//!   never dropped silently, and change no state;
//! - a stage is a half-open percentile band: stage `k` is `stages[k-1] <= p < stages[k]`, so a
//!   percentile on a boundary belongs to the higher stage only;
//! - at most one open alarm per (series, kind, direction); a reading that keeps an alarm at its
//!   stage produces no message;
//! - the whole state (criteria, open alarms and their counters, night-flow history) serialises
//!   with serde, so a restart continues where it stopped.

mod checks;
mod criteria;
mod detector;
mod lifecycle;
mod limits;
mod nightflow;
mod residual;
mod runner;
pub mod score;
mod settings;

pub use criteria::{Criteria, Level};
pub use detector::{Detector, Judgement, Verdict};
pub use lifecycle::{Alert, AlertMessage, LifecycleSettings, Transition};
pub use limits::Limits;
pub use nightflow::{NightResult, NightSettings};
pub use residual::HourForecast;
pub use runner::{Refit, Runner};
pub use settings::SeriesSettings;

use serde::{Deserialize, Serialize};

/// What an alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The value is unusual for this hour of the week (the prototype's staged outlier).
    Outlier,
    /// No reading for too long.
    Stale,
    /// The same value for too long.
    Stuck,
    /// Outside the sensor's physical range (configured, or learned from its history).
    Range,
    /// Changed faster than plausible (the configured rate, or the learned largest change).
    Jump,
    /// The minimum night flow rose above its recent nights (a leak indicator).
    NightFlow,
    /// Hourly means outside the day-ahead forecast's band, hours in a row.
    Forecast,
}

impl AlarmKind {
    /// Its name in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            AlarmKind::Outlier => "outlier",
            AlarmKind::Stale => "stale",
            AlarmKind::Stuck => "stuck",
            AlarmKind::Range => "range",
            AlarmKind::Jump => "jump",
            AlarmKind::NightFlow => "night_flow",
            AlarmKind::Forecast => "forecast",
        }
    }
}

/// Which way a value is abnormal; `None` for checks without a direction (stale, stuck).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above what is expected.
    High,
    /// Below what is expected.
    Low,
    /// No direction.
    None,
}

impl Direction {
    /// Its name in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Direction::High => "high",
            Direction::Low => "low",
            Direction::None => "none",
        }
    }
}

/// Bad settings or state.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A setting that cannot work, naming it.
    #[error("detection setting {field} of series {series:?}: {message}")]
    Settings {
        /// The series.
        series: String,
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stored state that does not parse.
    #[error("stored detector state is corrupt: {0}")]
    State(#[from] serde_json::Error),
    /// A stored state for other series than configured.
    #[error("stored detector state is for series {stored:?}, the configuration has {configured:?}")]
    StateMismatch {
        /// Series in the stored state.
        stored: Vec<String>,
        /// Series configured now.
        configured: Vec<String>,
    },
}
