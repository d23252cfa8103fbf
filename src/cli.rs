//! The command line: every command, option and its help text. Spellings marked "contract" in
//! the issues are relied on by scripts outside the project: never rename them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Water-network monitoring on a small computer beside the meter: stores a year of minute
/// readings, raises staged alarms, forecasts the next 7 days and reports to a central server.
#[derive(Debug, Parser)]
#[command(
    name = "hydrowatch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: crate::global::Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The whole system on embedded defaults: a central server and simulated devices in one
    /// process, weeks replayed in a minute, the dashboard to watch.
    Demo(hydrowatch_demo::DemoArgs),
    /// Write realistic minute data of one DMA (flow, pressure) with labelled events.
    Simulate(crate::simulate::SimulateArgs),
    /// Load readings from CSV files into the database (all files, or nothing).
    Import(crate::import::ImportArgs),
    /// Write readings, with the day-ahead forecast beside them, as CSV.
    Export(crate::export::ExportArgs),
    /// Train a forecasting model on a CSV file and write its folder.
    Train(crate::train::TrainArgs),
    /// Forecast the next 168 hours after a CSV file's history.
    Forecast(crate::forecasting::ForecastArgs),
    /// Score the forecasters (and other programs' forecasts) from rolling origins of CSV files.
    Backtest(crate::backtest::BacktestArgs),
    /// Judge readings: staged alarms, sensor checks, night flow; score against labelled events.
    Detect(crate::detect::DetectArgs),
    /// What the device holds and how it is doing: series, open alarms, outbox, forecasts, jobs.
    Status,
    /// Send the outbox (alarm messages waiting) to the central server now.
    Upload,
    /// Run the device daemon: sources, detection, daily forecasts, retraining, uplink.
    Run(crate::run::RunArgs),
    /// Run the central server (ingest from devices, read API), or issue a device token.
    Serve(Box<crate::serve::ServeArgs>),
    /// Check or print the device configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Measure this machine: `hydrowatch bench storage`.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Internal: one measured step of `bench storage`, in a fresh process.
    #[command(hide = true)]
    BenchStorageStep(hydrowatch_bench::storage::StepArgs),
    /// Internal: one training order of the daemon, in a child process.
    #[command(hide = true, name = hydrowatch_edge::daemon::WORKER_COMMAND)]
    TrainWorker,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a configuration file; every problem is reported with its key.
    Check {
        /// The file to check (default: the --config file).
        file: Option<PathBuf>,
    },
    /// Print a complete, documented example configuration.
    Example,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// CSV files against SQLite for the device's workload: append, bulk load, newest readings,
    /// one day, one year, hourly roll-up; time and peak memory, mean and standard deviation.
    Storage(hydrowatch_bench::storage::BenchArgs),
    /// One LSTM training step (1 layer, input seq x 2, dense 168 outputs, MSE, AdamW) with burn,
    /// and with Keras side by side when --python is given.
    LstmStep(hydrowatch_bench::lstm::LstmStepArgs),
    /// Detection speed: one reading judged, and a year of minute data for two series
    /// backfilled (criteria refitted daily), on simulated data held in memory.
    Detect(hydrowatch_bench::detect::BenchArgs),
    /// The daemon: a week of minute data replayed through `hydrowatch run` (ingest, detection,
    /// daily jobs, upload to a local test server); readings per second and memory.
    Daemon(hydrowatch_bench::daemon::BenchArgs),
    /// A fleet: N simulated devices, each with its own outbox, delivering over HTTPS or MQTT to
    /// `hydrowatch serve` processes (started here, or given); delivered, lost and duplicated
    /// messages, latency, the servers', broker's and database's CPU and memory.
    Fleet(hydrowatch_bench::fleet::FleetArgs),
}
