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
mod clock;
mod criteria;
mod detector;
mod judgement;
mod lifecycle;
mod limits;
mod nightflow;
mod residual;
mod runner;
mod sampling;
pub mod score;
mod settings;
mod stats;
mod switches;

pub use criteria::{Criteria, Level};
pub use detector::Detector;
pub use hydrowatch_protocol::{AlarmKind, Direction, Transition};
pub use judgement::{Judgement, Verdict};
pub use lifecycle::{Alert, LifecycleSettings};
pub use limits::Limits;
pub use nightflow::{NightResult, NightSettings};
pub use residual::HourForecast;
pub use runner::{Refit, Runner};
pub use settings::SeriesSettings;
pub use switches::Switch;

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
