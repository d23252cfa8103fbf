//! The command line: every command, option and its help text. Spellings marked "contract" in
//! the issues are relied on by scripts outside the project: never rename them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Water-network monitoring on a small computer beside the meter: stores a year of minute
/// readings, raises staged alarms, forecasts the next 7 days and reports to a central server.
#[derive(Debug, Parser)]
#[command(
    name = "hydrowatch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Device configuration (TOML). Without it: device-1 in Asia/Seoul with flow_rate and
    /// pressure. See `hydrowatch config example`.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The device database (SQLite). Overrides storage.database of the configuration.
    /// Default: hydrowatch.db in the working directory. With `serve`: the server's database
    /// (default hydrowatch-server.db).
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole system on embedded defaults: a central server and simulated devices in one
    /// process, weeks replayed in a minute, the dashboard to watch.
    Demo(crate::demo::DemoArgs),
    /// Write realistic minute data of one DMA (flow, pressure) with labelled events.
    Simulate(SimulateArgs),
    /// Load readings from CSV files into the database (all files, or nothing).
    Import(ImportArgs),
    /// Write readings, with the day-ahead forecast beside them, as CSV.
    Export(ExportArgs),
    /// Train a forecasting model on a CSV file and write its folder.
    Train(crate::forecasting::TrainArgs),
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
    Serve(crate::serve::ServeArgs),
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
    BenchStorageStep(crate::bench_storage::StepArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file; every problem is reported with its key.
    Check {
        /// The file to check (default: the --config file).
        file: Option<PathBuf>,
    },
    /// Print a complete, documented example configuration.
    Example,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// CSV files against SQLite for the device's workload: append, bulk load, newest readings,
    /// one day, one year, hourly roll-up; time and peak memory, mean and standard deviation.
    Storage(crate::bench_storage::BenchArgs),
    /// One LSTM training step (1 layer, input seq x 2, dense 168 outputs, MSE, AdamW) with burn,
    /// and with Keras side by side when --python is given.
    LstmStep(LstmStepArgs),
    /// Detection speed: one reading judged, and a year of minute data for two series
    /// backfilled (criteria refitted daily), on simulated data held in memory.
    Detect(crate::detect::BenchArgs),
    /// The daemon: a week of minute data replayed through `hydrowatch run` (ingest, detection,
    /// daily jobs, upload to a local test server); readings per second and memory.
    Daemon(crate::bench_daemon::BenchArgs),
}

/// `hydrowatch bench lstm-step`
#[derive(Debug, Args)]
#[command(
    after_help = "Side by side with Keras (TensorFlow CPU) in one run:\n  \
python3 -m venv .venv-peers && .venv-peers/bin/pip install tensorflow-cpu\n  \
hydrowatch bench lstm-step --python .venv-peers/bin/python --keras-script ../shared/peers/keras_lstm_step.py"
)]
pub struct LstmStepArgs {
    /// Sequence length.
    #[arg(long, default_value_t = 168)]
    pub seq: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Python with TensorFlow, to time the Keras reference in the same run.
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<PathBuf>,
    /// The Keras reference script.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "../shared/peers/keras_lstm_step.py"
    )]
    pub keras_script: PathBuf,
}

/// `hydrowatch simulate --days N --seed S --out FILE [--labels FILE] [--start YYYY-MM-DD]`
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  hydrowatch simulate --days 365 --seed 1 --out year.csv --labels events.csv\n\n\
The data file is `time,flow_rate,pressure`, one row a minute, in the device's local time \
(`YYYY-MM-DD HH:MM`); a silent sensor leaves its cell empty. The events file has rows \
`start,end,kind,series` with kind one of burst, leak, stuck, silent, spike."
)]
pub struct SimulateArgs {
    /// Number of days to simulate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Seed: the same seed gives the same data and events.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Where to write the minute data (CSV).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where to write the labelled events (CSV).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Local date of the first minute.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2024-01-01")]
    pub start: chrono::NaiveDate,
    /// Time zone of the output (default: the device's, Asia/Seoul without a configuration).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Mean flow of the DMA over a year, m3/h.
    #[arg(long, value_name = "M3H", default_value_t = 120.0)]
    pub mean_flow: f64,
    /// Simulate a clean network: no events.
    #[arg(long)]
    pub no_events: bool,
}

/// `hydrowatch import [--db FILE] [--series NAME] [--timezone TZ] [--skip-bad] FILE...`
#[derive(Debug, Args)]
#[command(
    after_help = "Layouts:\n  time,value                 one series, named with --series NAME (the prototype's files)\n  \
time,flow_rate,pressure    one series per column, named by the header\n\n\
Times: `2024-07-09 0:01`, `2024-07-09 00:01:00`, `2024-07-09T00:01`, optionally with an offset \
(`+09:00`, `Z`). Without an offset they are local times in --timezone: a time inside the \
spring-forward gap is an error; a repeated autumn hour is read in file order (first summer \
time, then winter time).\n\n\
Empty cells (or NaN, NA, null) are missing values, not zeros. A bad row stops the import and \
nothing is written; with --skip-bad every bad row is reported and the rest imported. \
Importing the same file again adds nothing."
)]
pub struct ImportArgs {
    /// The series of a `time,value` file; with a wide file, import only this column.
    #[arg(long, value_name = "NAME")]
    pub series: Option<String>,
    /// Time zone of times written without an offset (default: the device's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Skip bad rows (each is reported) instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// CSV files to import, in one transaction.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `hydrowatch export [--db FILE] [--from T] [--to T] [--out FILE]`
#[derive(Debug, Args)]
#[command(
    after_help = "The table is the prototype's: `time,flow_rate,pressure,flow_rate_predict,pressure_predict` \
(one value column per series, then one forecast column per series). A `*_predict` cell holds the \
day-ahead forecast of that hour: the latest one issued on the previous local day; it is empty \
where none was issued. Times are local (`YYYY-MM-DD HH:MM`)."
)]
pub struct ExportArgs {
    /// First time to export (inclusive), e.g. `2024-07-01` or `2024-07-01 06:00`.
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Time to stop before (exclusive).
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Output file (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Export only these series (repeat for several; default: all).
    #[arg(long, value_name = "NAME")]
    pub series: Vec<String>,
    /// One row per hour (hourly means) instead of one per reading.
    #[arg(long)]
    pub hourly: bool,
    /// Time zone of --from/--to and of the output (default: the database's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
}
