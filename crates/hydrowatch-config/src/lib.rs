//! The device configuration, `hydrowatch.toml`: what a device is, which sensors it reads, where it
//! keeps its data and when its daily jobs run.
//!
//! Every field is documented in [`EXAMPLE`] (printed by `hydrowatch config example`), which a test
//! parses, so the example can never drift from the code. Unknown keys are errors (a misspelt key
//! silently ignored is a setting silently lost). A malformed file, an unknown key or a value of
//! the wrong form is reported with its line, the text and what is allowed (the TOML parser stops
//! at the first); values that parse but do not fit together are all reported at once, each with
//! its key.

use std::path::PathBuf;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

mod check;
mod daemon;
mod times;

pub use daemon::{
    DaemonConfig, ModbusSource, RegisterConfig, RegisterTable, RegisterType, ReplaySource,
    SerialSource, SimulatorSource, SourceConfig, StdinSource, TcpSource, WordOrder,
};
pub use times::{ForecastAt, TimeOfDay, WeeklyTime};

/// The documented example configuration, printed by `hydrowatch config example`.
pub const EXAMPLE: &str = include_str!("../hydrowatch.example.toml");

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The configuration file.
        file: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or a value has the wrong type or form.
    #[error("{file}: {message}")]
    Parse {
        /// The configuration file.
        file: String,
        /// The parser's message, with line, column and the offending text.
        message: String,
    },
    /// The values parse but do not make sense together (one line per problem).
    #[error("{file}: invalid configuration:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The configuration file.
        file: String,
        /// Each problem, naming its key.
        problems: Vec<String>,
    },
}

/// A whole device configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who the device is and what clock it lives by.
    pub device: DeviceConfig,
    /// The embedded database.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The sensors' series; at least one.
    #[serde(default = "default_series")]
    pub series: Vec<SeriesConfig>,
    /// When the daily and weekly jobs run (local time of `device.timezone`).
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// The central server; absent means the device keeps everything to itself.
    #[serde(default)]
    pub server: Option<ServerConfig>,
    /// How readings are judged and alarms raised.
    #[serde(default)]
    pub detection: DetectionConfig,
    /// What the forecasting models know beyond the readings.
    #[serde(default)]
    pub forecast: ForecastConfig,
    /// How `hydrowatch run` runs unattended.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Where `hydrowatch run` gets readings from (`[[source]]`, one or more).
    #[serde(default)]
    pub source: Vec<SourceConfig>,
}

/// `[forecast]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    /// ISO 3166 code of the country whose national public holidays are days off (default: the
    /// country of `device.timezone`; `"none"`: no national calendar).
    #[serde(default)]
    pub country: Option<String>,
    /// Subdivision of that country whose own public holidays are days off too (`RM` for Rome,
    /// `BY` for Bavaria, `CA` for California; default: none).
    #[serde(default)]
    pub region: Option<String>,
    /// Local dates the models treat as days off besides the national holidays (local ones).
    #[serde(default)]
    pub holidays: Vec<chrono::NaiveDate>,
}

/// `[device]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The device's name in the fleet, e.g. `dma-017`.
    pub id: String,
    /// IANA time zone of the device's local clock.
    #[serde(default = "default_tz", deserialize_with = "de_tz")]
    pub timezone: Tz,
    /// The device's number in alert messages (the prototype's `machine_number`).
    #[serde(default = "default_machine_number")]
    pub machine_number: u32,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Path of the SQLite database file (relative to the working directory).
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// Readings older than this many days are deleted by the daily retention job.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

/// One `[[series]]`: a sensor quantity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesConfig {
    /// Name used in files, messages and the database, e.g. `flow_rate`.
    pub name: String,
    /// Unit of the values, e.g. `m3/h` or `bar`.
    pub unit: String,
    /// Lowest value the sensor can physically report (default: learned from the series'
    /// history).
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest value the sensor can physically report (default: learned).
    #[serde(default)]
    pub max: Option<f64>,
    /// Percentiles where alarm stages 1-4 start (default [90, 95, 98, 99]).
    #[serde(default)]
    pub stages: Option<[f64; 4]>,
    /// Minutes without a reading before a `stale` alarm (default 15; never less than 3 of the
    /// series' intervals between readings).
    #[serde(default)]
    pub stale_minutes: Option<u32>,
    /// Minutes of identical readings before a `stuck` alarm (default 30; never less than 4 of
    /// the series' intervals).
    #[serde(default)]
    pub stuck_minutes: Option<u32>,
    /// Largest plausible change per minute (default: learned from the series' history, with
    /// the changes that recur every day or week counted as normal).
    #[serde(default)]
    pub max_rate: Option<f64>,
    /// Track the minimum night flow (default: when the unit is a rate such as m3/h or L/s).
    #[serde(default)]
    pub night_flow: Option<bool>,
}

/// `[schedule]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Forecast of every series: daily at `HH:MM`, or hourly at `*:MM`.
    #[serde(default = "default_forecast_at")]
    pub forecast_at: ForecastAt,
    /// Daily refit of the detection criteria.
    #[serde(default = "default_criteria_at")]
    pub criteria_at: TimeOfDay,
    /// Daily retention.
    #[serde(default = "default_retention_at")]
    pub retention_at: TimeOfDay,
    /// Weekly retraining of the forecasting models.
    #[serde(default = "default_retrain_at")]
    pub retrain_at: WeeklyTime,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How messages travel: HTTPS to the server (the default) or MQTT through a broker.
    #[serde(default)]
    pub transport: Transport,
    /// Base URL of the central server, e.g. `https://hydrowatch.example.org`; with MQTT the
    /// broker's, `mqtts://broker.example.org:8883`.
    pub url: String,
    /// Token issued for this device by `hydrowatch serve token create`: the bearer token over
    /// HTTPS, the password (the user name being the device id) over MQTT.
    pub token: String,
    /// MQTT only: the protocol version, "5" (default) or "3.1.1" for brokers without 5.
    #[serde(default = "default_mqtt_version")]
    pub mqtt_version: String,
    /// MQTT only: CA certificates (PEM) to check an `mqtts://` broker against (default: the
    /// system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// MQTT only: a client certificate (PEM) for brokers that authenticate by certificate; needs
    /// `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// MQTT only: the client certificate's private key (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Most messages kept for the server while it is unreachable.
    #[serde(default = "default_outbox_rows")]
    pub outbox_rows: u64,
    /// Most megabytes of messages kept for the server while it is unreachable.
    #[serde(default = "default_outbox_megabytes")]
    pub outbox_megabytes: u64,
    /// Most messages sent in one request (1-10,000).
    #[serde(default = "default_batch_messages")]
    pub batch_messages: usize,
    /// Time limit of one request, in seconds (1-600).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u32,
    /// Longest wait between attempts while the server is unreachable, in seconds (1-86,400);
    /// the waits start at 1 s and double, with jitter.
    #[serde(default = "default_retry_max_seconds")]
    pub retry_max_seconds: u32,
    /// Hours a message of each kind may wait in the outbox before it is removed (and counted):
    /// a kind not named never expires. Default: heartbeats 24 h; alerts and forecasts (which
    /// carry the actuals the server scores forecasts with) never.
    #[serde(default = "default_ttl_hours")]
    pub ttl_hours: std::collections::BTreeMap<String, u32>,
    /// Most kilobits per second of messages sent on average (bursts of a minute's worth), for
    /// links paid by the byte; 0 (default): no cap.
    #[serde(default)]
    pub bandwidth_kbps: u32,
}

impl ServerConfig {
    /// The server at `url` with this device's `token`, every other setting its default.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> ServerConfig {
        ServerConfig {
            transport: Transport::Https,
            url: url.into(),
            token: token.into(),
            mqtt_version: default_mqtt_version(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            outbox_rows: default_outbox_rows(),
            outbox_megabytes: default_outbox_megabytes(),
            batch_messages: default_batch_messages(),
            timeout_seconds: default_timeout_seconds(),
            retry_max_seconds: default_retry_max_seconds(),
            ttl_hours: default_ttl_hours(),
            bandwidth_kbps: 0,
        }
    }
}

/// How a device's messages travel to the central server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `POST /api/v1/ingest`, acknowledged by the server.
    #[default]
    Https,
    /// Published at QoS 1 on `hydrowatch/v1/{device}/{kind}`, acknowledged by the broker.
    Mqtt,
}

fn default_ttl_hours() -> std::collections::BTreeMap<String, u32> {
    [("heartbeat".to_string(), 24)].into()
}
fn default_mqtt_version() -> String {
    "5".into()
}
fn default_outbox_rows() -> u64 {
    100_000
}
fn default_outbox_megabytes() -> u64 {
    64
}
fn default_batch_messages() -> usize {
    200
}
fn default_timeout_seconds() -> u32 {
    15
}
fn default_retry_max_seconds() -> u32 {
    300
}

/// `[detection]`: defaults of every series' detection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    /// Days of history the criteria are fitted on.
    #[serde(default = "default_trailing_days")]
    pub trailing_days: u32,
    /// Lowest stage (1-4) that opens an outlier alarm.
    #[serde(default = "default_open_stage")]
    pub open_stage: u8,
    /// Readings in a row at that stage or above before the alarm opens.
    #[serde(default = "default_open_after")]
    pub open_after: u32,
    /// ... each also at this percentile or above.
    #[serde(default = "default_open_percentile")]
    pub open_percentile: f64,
    /// Readings in a row below an alarm's stage before it de-escalates.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: u32,
    /// Normal readings in a row before an alarm clears.
    #[serde(default = "default_clear_after")]
    pub clear_after: u32,
    /// Local start of the night window of the minimum night flow.
    #[serde(default = "default_night_start")]
    pub night_start: TimeOfDay,
    /// Local end of the night window.
    #[serde(default = "default_night_end")]
    pub night_end: TimeOfDay,
    /// Rise of the night minimum over the median of recent nights that raises an alarm.
    #[serde(default = "default_night_rise")]
    pub night_rise: f64,
    /// Recent normal nights in that median.
    #[serde(default = "default_night_baseline")]
    pub night_baseline: usize,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            trailing_days: default_trailing_days(),
            open_stage: default_open_stage(),
            open_after: default_open_after(),
            open_percentile: default_open_percentile(),
            hysteresis: default_hysteresis(),
            clear_after: default_clear_after(),
            night_start: default_night_start(),
            night_end: default_night_end(),
            night_rise: default_night_rise(),
            night_baseline: default_night_baseline(),
        }
    }
}

fn default_machine_number() -> u32 {
    1
}
fn default_trailing_days() -> u32 {
    28
}
fn default_open_stage() -> u8 {
    4
}
fn default_open_after() -> u32 {
    2
}
fn default_open_percentile() -> f64 {
    99.9999
}
fn default_hysteresis() -> u32 {
    5
}
fn default_clear_after() -> u32 {
    10
}
fn default_night_start() -> TimeOfDay {
    TimeOfDay { hour: 1, minute: 0 }
}
fn default_night_end() -> TimeOfDay {
    TimeOfDay { hour: 5, minute: 0 }
}
fn default_night_rise() -> f64 {
    0.08
}
fn default_night_baseline() -> usize {
    14
}

/// Parses an IANA zone name, with an error that says what is expected.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("{name:?} is not an IANA time zone name: use names such as \"Asia/Seoul\", \"Europe/Rome\" or \"UTC\"")
    })
}

fn de_tz<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    parse_timezone(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn default_tz() -> Tz {
    chrono_tz::Asia::Seoul
}
fn default_database() -> PathBuf {
    PathBuf::from("hydrowatch.db")
}
fn default_retention_days() -> u32 {
    365
}
fn default_forecast_at() -> ForecastAt {
    ForecastAt::Daily(TimeOfDay {
        hour: 0,
        minute: 30,
    })
}
fn default_criteria_at() -> TimeOfDay {
    TimeOfDay {
        hour: 0,
        minute: 10,
    }
}
fn default_retention_at() -> TimeOfDay {
    TimeOfDay { hour: 3, minute: 0 }
}
fn default_retrain_at() -> WeeklyTime {
    WeeklyTime {
        weekday: chrono::Weekday::Sun,
        time: TimeOfDay { hour: 2, minute: 0 },
    }
}
fn default_series() -> Vec<SeriesConfig> {
    vec![
        SeriesConfig {
            name: "flow_rate".into(),
            unit: "m3/h".into(),
            min: None,
            max: None,
            stages: None,
            stale_minutes: None,
            stuck_minutes: None,
            max_rate: None,
            night_flow: None,
        },
        SeriesConfig {
            name: "pressure".into(),
            unit: "bar".into(),
            min: None,
            max: None,
            stages: None,
            stale_minutes: None,
            stuck_minutes: None,
            max_rate: None,
            night_flow: None,
        },
    ]
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database: default_database(),
            retention_days: default_retention_days(),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            forecast_at: default_forecast_at(),
            criteria_at: default_criteria_at(),
            retention_at: default_retention_at(),
            retrain_at: default_retrain_at(),
        }
    }
}

impl Default for Config {
    /// The configuration of a device run without a file: `device-1` in Asia/Seoul with a flow
    /// and a pressure series.
    fn default() -> Self {
        Config {
            device: DeviceConfig {
                id: "device-1".into(),
                timezone: default_tz(),
                machine_number: default_machine_number(),
            },
            storage: StorageConfig::default(),
            series: default_series(),
            schedule: ScheduleConfig::default(),
            server: None,
            detection: DetectionConfig::default(),
            forecast: ForecastConfig::default(),
            daemon: DaemonConfig::default(),
            source: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.into(),
            message: e.to_string(),
        })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                file: file.into(),
                problems,
            })
        }
    }

    /// The series named `name`, if configured.
    pub fn series(&self, name: &str) -> Option<&SeriesConfig> {
        self.series.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests;
