//! Why an operation on the device database failed, for every module of this crate.

use std::path::PathBuf;

use hydrowatch_forecast::ForecastError;
use hydrowatch_store::StoreError;

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
    /// The training process failed (killed, or it could not train).
    #[error("{0}")]
    Worker(String),
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

/// What an operation over several series did for each: its name and its result.
pub type PerSeries<T> = Vec<(String, Result<T, JobError>)>;
