//! `hydrowatch bench ...`: measurements of this machine, printed with the command that made
//! them (docs/BENCHMARKS.md records them). Each bench calls the same library functions as the
//! commands it measures.

mod csv_store;
pub mod daemon;
pub mod detect;
pub mod fleet;
pub mod lstm;
pub mod storage;

use std::fmt::Display;

/// Why a bench could not measure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// What it was doing, and why that failed.
    #[error("{what}: {why}")]
    Step {
        /// What it was doing.
        what: String,
        /// Why that failed.
        why: String,
    },
    /// A measurement could not go on: a child process failed, an output was not understood.
    #[error("{0}")]
    Failed(String),
    /// Reading or writing a file, starting a process.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A readings file.
    #[error(transparent)]
    Csv(#[from] hydrowatch_csv::CsvError),
    /// A time that does not parse.
    #[error(transparent)]
    Time(#[from] hydrowatch_core::TimeError),
    /// A device database.
    #[error(transparent)]
    Store(#[from] hydrowatch_store::StoreError),
    /// An import.
    #[error(transparent)]
    Import(#[from] hydrowatch_ops::import::ImportError),
    /// The detector's settings.
    #[error(transparent)]
    Detect(#[from] hydrowatch_detect::DetectError),
    /// The server's database.
    #[error(transparent)]
    Server(#[from] hydrowatch_server::DbError),
    /// The server did not start.
    #[error(transparent)]
    ServerStart(#[from] hydrowatch_server::ServerError),
    /// An MQTT setting or connection.
    #[error(transparent)]
    Mqtt(#[from] hydrowatch_mqtt::MqttError),
    /// The broker.
    #[error("the broker: {0}")]
    Broker(#[from] hydrowatch_mosquitto::BrokerError),
    /// An HTTP client.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// A JSON text.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// A bench's result.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Says what a bench was doing when a result failed or a value was missing.
pub(crate) trait Context<T> {
    /// The error as [`BenchError::Step`] `what`.
    fn context(self, what: impl Display) -> Result<T, BenchError>;
    /// The error as [`BenchError::Step`] `what()`, made only on failure.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, BenchError>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Result<T, BenchError> {
        self.with_context(|| what)
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, BenchError> {
        self.map_err(|e| BenchError::Step {
            what: what().to_string(),
            why: e.to_string(),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T, BenchError> {
        self.ok_or_else(|| BenchError::Failed(what.to_string()))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, BenchError> {
        self.ok_or_else(|| BenchError::Failed(what().to_string()))
    }
}

/// Fails with [`BenchError::Failed`] unless `condition` holds.
pub(crate) fn ensure(condition: bool, why: impl FnOnce() -> String) -> Result<(), BenchError> {
    if condition {
        Ok(())
    } else {
        Err(BenchError::Failed(why()))
    }
}

/// The mean and the sample standard deviation (n - 1; 0 for one value) of `xs`: the one
/// statistic every bench prints as `mean ± sd`.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spread_is_the_sample_standard_deviation() {
        let (mean, sd) = super::mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(mean, 2.5);
        assert!((sd - 1.290_994).abs() < 1e-6, "{sd}");
        assert_eq!(super::mean_sd(&[7.0]), (7.0, 0.0));
    }
}
