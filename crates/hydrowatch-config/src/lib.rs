//! The device configuration, `hydrowatch.toml`: what a device is, which sensors it reads, where it
//! keeps its data and when its daily jobs run.
//!
//! Every field is documented in [`EXAMPLE`] (printed by `hydrowatch config example`), which a test
//! parses, so the example can never drift from the code. Unknown keys are errors (a misspelt key
//! silently ignored is a setting silently lost). A malformed file, an unknown key or a value of
//! the wrong form is reported with its line, the text and what is allowed (the TOML parser stops
//! at the first); values that parse but do not fit together are all reported at once, each with
//! its key.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

mod daemon;

pub use daemon::{
    DaemonConfig, ModbusSource, RegisterConfig, RegisterTable, RegisterType, ReplaySource,
    SerialSource, SimulatorSource, SourceConfig, StdinSource, TcpSource, WordOrder,
};

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
    /// Base URL of the central server, e.g. `https://hydrowatch.example.org`.
    pub url: String,
    /// Bearer token issued for this device by `hydrowatch serve token create`.
    pub token: String,
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

/// A local wall-clock time of day, written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
}

/// A weekday and a time of day, written like `sun 02:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyTime {
    /// The day of the week.
    pub weekday: chrono::Weekday,
    /// The local time on that day.
    pub time: TimeOfDay,
}

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("{s:?} is not a time of day: write HH:MM, 00:00 to 23:59");
        let (h, m) = s.split_once(':').ok_or_else(err)?;
        let (hour, minute): (u8, u8) =
            (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
        if hour > 23 || minute > 59 || m.len() != 2 {
            return Err(err());
        }
        Ok(TimeOfDay { hour, minute })
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl FromStr for WeeklyTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err =
            || format!("{s:?} is not a weekly time: write a weekday and HH:MM, e.g. \"sun 02:00\"");
        let (day, time) = s.trim().split_once(' ').ok_or_else(err)?;
        let weekday = day.parse::<chrono::Weekday>().map_err(|_| err())?;
        Ok(WeeklyTime {
            weekday,
            time: time.trim().parse()?,
        })
    }
}

/// When forecasts are made: once a day (the prototype) or every hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForecastAt {
    /// Daily at this local time (`HH:MM`).
    Daily(TimeOfDay),
    /// Every hour at this minute (`*:MM`).
    Hourly(u8),
}

impl FromStr for ForecastAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "{s:?} is not a forecast time: write HH:MM for daily (e.g. \"00:30\") or *:MM for every hour (e.g. \"*:05\")"
            )
        };
        match s.strip_prefix("*:") {
            Some(m) => match m.parse::<u8>() {
                Ok(minute) if minute < 60 && m.len() == 2 => Ok(ForecastAt::Hourly(minute)),
                _ => Err(err()),
            },
            None => s.parse().map(ForecastAt::Daily).map_err(|_| err()),
        }
    }
}

impl fmt::Display for ForecastAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForecastAt::Daily(t) => write!(f, "{t}"),
            ForecastAt::Hourly(m) => write!(f, "*:{m:02}"),
        }
    }
}

impl<'de> Deserialize<'de> for ForecastAt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for WeeklyTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
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

    /// Every cross-field problem, each naming its key.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let id = &self.device.id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            p.push(format!(
                "device.id = {id:?}: use 1 to 64 letters, digits, '_', '-' or '.' (it names the device in the fleet)"
            ));
        }
        if self.storage.database.as_os_str().is_empty() {
            p.push("storage.database is empty: give a file path such as \"hydrowatch.db\"".into());
        }
        if !(1..=36_500).contains(&self.storage.retention_days) {
            p.push(format!(
                "storage.retention_days = {}: allowed 1 to 36500 (default 365)",
                self.storage.retention_days
            ));
        }
        if self.series.is_empty() {
            p.push("series: configure at least one [[series]]".into());
        }
        for (i, s) in self.series.iter().enumerate() {
            let key = format!("series[{i}] ({:?})", s.name);
            if let Err(e) = hydrowatch_core::check_series_name(&s.name) {
                p.push(format!("{key}.name: {e}"));
            }
            if self.series[..i].iter().any(|o| o.name == s.name) {
                p.push(format!(
                    "{key}.name: the name is used twice; each series needs its own"
                ));
            }
            if s.unit.trim().is_empty() {
                p.push(format!(
                    "{key}.unit is empty: give the unit, e.g. \"m3/h\" or \"bar\""
                ));
            }
            for (field, value) in [("min", s.min), ("max", s.max)] {
                if let Some(v) = value
                    && !v.is_finite()
                {
                    p.push(format!("{key}.{field} = {v}: a finite number"));
                }
            }
            if let (Some(min), Some(max)) = (s.min, s.max)
                && min >= max
            {
                p.push(format!(
                    "{key}: min = {min} and max = {max} must have min < max"
                ));
            }
            if let Some(st) = s.stages
                && !(st.iter().all(|x| (50.0..100.0).contains(x))
                    && st.windows(2).all(|w| w[0] < w[1]))
            {
                p.push(format!(
                    "{key}.stages = {st:?}: four increasing percentiles from 50 to below 100, e.g. [90.0, 95.0, 98.0, 99.0]"
                ));
            }
            for (field, minutes) in [
                ("stale_minutes", s.stale_minutes),
                ("stuck_minutes", s.stuck_minutes),
            ] {
                if minutes == Some(0) {
                    p.push(format!("{key}.{field} = 0: at least 1 minute"));
                }
            }
            if let Some(rate) = s.max_rate
                && !(rate.is_finite() && rate > 0.0)
            {
                p.push(format!(
                    "{key}.max_rate = {rate}: a positive change per minute"
                ));
            }
        }
        let d = &self.detection;
        if d.trailing_days == 0 {
            p.push("detection.trailing_days = 0: at least 1 (default 28)".into());
        }
        if !(1..=4).contains(&d.open_stage) {
            p.push(format!(
                "detection.open_stage = {}: a stage from 1 to 4 (default 4)",
                d.open_stage
            ));
        }
        for (field, n) in [
            ("open_after", d.open_after),
            ("hysteresis", d.hysteresis),
            ("clear_after", d.clear_after),
        ] {
            if n == 0 {
                p.push(format!("detection.{field} = 0: at least 1 reading"));
            }
        }
        if !(0.0..100.0).contains(&d.open_percentile) {
            p.push(format!(
                "detection.open_percentile = {}: from 0 to below 100 (default 99.9999)",
                d.open_percentile
            ));
        }
        if !(d.night_rise.is_finite() && d.night_rise > 0.0) {
            p.push(format!(
                "detection.night_rise = {}: a positive share, e.g. 0.08 for 8%",
                d.night_rise
            ));
        }
        if d.night_baseline == 0 {
            p.push("detection.night_baseline = 0: at least 1 night (default 14)".into());
        }
        if d.night_start == d.night_end {
            p.push(format!(
                "detection.night_start = night_end = {}: the night window is empty",
                d.night_start
            ));
        }
        if let Some(server) = &self.server {
            if !(server.url.starts_with("http://") || server.url.starts_with("https://")) {
                p.push(format!(
                    "server.url = {:?}: must start with https:// (or http:// on a trusted network)",
                    server.url
                ));
            }
            if server.token.trim().is_empty() {
                p.push("server.token is empty: issue one with `hydrowatch serve token create DEVICE_ID`".into());
            }
            for (value, key, max) in [
                (server.batch_messages as u64, "batch_messages", 10_000),
                (u64::from(server.timeout_seconds), "timeout_seconds", 600),
                (
                    u64::from(server.retry_max_seconds),
                    "retry_max_seconds",
                    86_400,
                ),
            ] {
                if !(1..=max).contains(&value) {
                    p.push(format!("server.{key} = {value}: must be 1 to {max}"));
                }
            }
            if server.outbox_rows == 0 || server.outbox_megabytes == 0 {
                p.push(format!(
                    "server.outbox_rows = {} and server.outbox_megabytes = {}: both at least 1 (an outbox that holds nothing would drop every message)",
                    server.outbox_rows, server.outbox_megabytes
                ));
            }
        }
        if let Some(c) = &self.forecast.country
            && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) || c == "none")
        {
            p.push(format!(
                "forecast.country = {c:?}: give a two-letter ISO 3166 code such as \"IT\" or \"US\", or \"none\""
            ));
        }
        if let Some(r) = &self.forecast.region
            && !(1..=8).contains(&r.len())
        {
            p.push(format!(
                "forecast.region = {:?}: give the region's code, such as \"RM\" (Rome) or \"CA\" (California)",
                hydrowatch_core::cut(r, 20)
            ));
        }
        let names: Vec<String> = self.series.iter().map(|s| s.name.clone()).collect();
        p.extend(daemon::problems(&self.daemon, &self.source, &names));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_valid_and_documents_every_section() {
        let c = Config::parse(EXAMPLE, "example").unwrap();
        assert_eq!(c.device.timezone, chrono_tz::Asia::Seoul);
        assert_eq!(c.series.len(), 2);
        assert!(c.server.is_some());
        for key in [
            "[device]",
            "[storage]",
            "[[series]]",
            "[schedule]",
            "[server]",
            "retrain_at",
        ] {
            assert!(EXAMPLE.contains(key), "{key}");
        }
    }

    #[test]
    fn detection_settings_that_cannot_work_are_all_named() {
        let text = "[device]\nid = \"a\"\n[[series]]\nname = \"flow\"\nunit = \"L/s\"\nmin = 0.0\nmax = 10.0\nstages = [90.0, 95.0, 95.0, 99.0]\nstale_minutes = 0\n[detection]\nopen_stage = 5\nopen_percentile = 100.0\nnight_rise = -0.1\n";
        let e = Config::parse(text, "t.toml").unwrap_err().to_string();
        for needle in [
            "series[0] (\"flow\").stages",
            "stale_minutes = 0",
            "detection.open_stage = 5",
            "detection.open_percentile = 100",
            "detection.night_rise = -0.1",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn minimal_file_takes_defaults() {
        let c = Config::parse("[device]\nid = \"dma-1\"\n", "t.toml").unwrap();
        assert_eq!(c.storage.retention_days, 365);
        assert_eq!(c.schedule.forecast_at.to_string(), "00:30");
        assert_eq!(c.series[0].name, "flow_rate");
        assert!(c.server.is_none());
        assert!(c.source.is_empty());
        assert_eq!(c.daemon.heartbeat_minutes, 15);
    }

    #[test]
    fn forecasts_daily_or_hourly() {
        let at = |t: &str| {
            Config::parse(
                &format!("[device]\nid = \"a\"\n[schedule]\nforecast_at = \"{t}\"\n"),
                "t.toml",
            )
            .map(|c| c.schedule.forecast_at)
            .map_err(|e| e.to_string())
        };
        assert_eq!(at("*:05").unwrap(), ForecastAt::Hourly(5));
        assert_eq!(at("06:15").unwrap().to_string(), "06:15");
        for bad in ["*:5", "*:60", "25:00", "0030"] {
            let e = at(bad).unwrap_err();
            assert!(e.contains("HH:MM") && e.contains("*:MM"), "{bad}: {e}");
        }
    }

    #[test]
    fn sources_are_checked_each_with_its_key() {
        let text = "[device]\nid = \"a\"\n\
            [daemon]\nhealth_listen = \"nowhere\"\n\
            [[source]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:7010\"\n\
            [[source]]\nkind = \"serial\"\nport = \"/dev/ttyUSB0\"\ndelimiter = \"\"\nfields = [\"time\", \"flow\"]\n\
            [[source]]\nkind = \"modbus\"\nregisters = [{ series = \"pressure\", address = 3, scale = 0.0 }]\n\
            [[source]]\nkind = \"simulator\"\nspeed = -1.0\n";
        let e = Config::parse(text, "t.toml").unwrap_err().to_string();
        for needle in [
            "daemon.health_listen = \"nowhere\"",
            "source[1] (serial).delimiter is empty",
            "source[1] (serial).fields: \"flow\" is not a configured series",
            "source[2] (modbus): give either address",
            "source[2] (modbus).registers[0]: scale = 0",
            "source[3] (simulator).speed = -1",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // What the hardening review found accepted (issue #15).
        let text = "[device]\nid = \"a\"\n\
            [[series]]\nname = \"flow\"\nunit = \"m3/h\"\n\
            [server]\nurl = \"https://x\"\ntoken = \"t\"\noutbox_rows = 0\n\
            [daemon]\nhealth_listen = \"127.0.0.1:7010\"\n\
            [[source]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:7010\"\n\
            [[source]]\nkind = \"tcp\"\nlisten = \"nowhere:port\"\n\
            [[source]]\nkind = \"serial\"\nport = \"/dev/ttyUSB0\"\nbaud = 0\nfields = [\"time\", \"flow\", \"flow\"]\n\
            [[source]]\nkind = \"modbus\"\nport = \"/dev/ttyUSB0\"\nregisters = [{ series = \"flow\", address = 3 }]\n\
            [[source]]\nkind = \"simulator\"\nspeed = 1e308\n";
        let e = Config::parse(text, "t.toml").unwrap_err().to_string();
        for needle in [
            "server.outbox_rows = 0",
            "source[0] (tcp).listen: 127.0.0.1:7010 is already used by daemon.health_listen",
            "source[1] (tcp).listen = \"nowhere:port\"",
            "source[2] (serial).baud = 0",
            "source[2] (serial).fields: \"flow\" is given twice",
            "source[3] (modbus).port: /dev/ttyUSB0 is already used by source[2] (serial).port",
            "source[4] (simulator).speed = 1e308",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // A key of another kind is refused, naming it.
        let e = Config::parse(
            "[device]\nid = \"a\"\n[[source]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:1\"\nbaud = 9600\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("baud"), "{e}");
        let e = Config::parse(
            "[device]\nid = \"a\"\n[[source]]\nkind = \"ftp\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ftp") && e.contains("csv_replay"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[device]\nid = \"a\"\ntimezon = \"UTC\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml") && e.contains("timezon") && e.contains("timezone"),
            "{e}"
        );
        let e = Config::parse("[device]\nid = \"a\"\n[storag]\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("storag"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_allowed() {
        let e = Config::parse("[device]\nid = \"a\"\ntimezone = \"Asia/Seul\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Asia/Seul") && e.contains("IANA") && e.contains("line 3"),
            "{e}"
        );
        let e = Config::parse(
            "[device]\nid = \"a\"\n[schedule]\nforecast_at = \"24:00\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("24:00") && e.contains("HH:MM"), "{e}");
        let e = Config::parse(
            "[device]\nid = \"a\"\n[schedule]\nretrain_at = \"someday 02:00\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sun 02:00"), "{e}");
        let text = r#"
[device]
id = "bad id"
[storage]
retention_days = 0
[[series]]
name = "flow"
unit = ""
min = 5
max = 1
[[series]]
name = "flow"
unit = "bar"
min = 0
max = 1
[server]
url = "ftp://x"
token = ""
"#;
        let e = Config::parse(text, "t").unwrap_err().to_string();
        for needle in [
            "device.id",
            "storage.retention_days = 0",
            "series[0] (\"flow\").unit",
            "min = 5 and max = 1",
            "series[1] (\"flow\").name: the name is used twice",
            "server.url",
            "server.token",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in {e}");
        }
    }
}
