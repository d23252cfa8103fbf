//! `[daemon]` and `[[source]]`: how `hydrowatch run` receives readings and runs unattended.
//!
//! Each source kind is one variant of [`SourceConfig`], tagged by `kind`, with its own fields
//! and no others (a key of another kind is an error, not silently ignored).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[daemon]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Address of the local health and Prometheus endpoint; empty turns it off.
    #[serde(default = "default_health_listen")]
    pub health_listen: String,
    /// Minutes between heartbeats to the central server.
    #[serde(default = "default_heartbeat_minutes")]
    pub heartbeat_minutes: u32,
    /// Folder for a CSV copy of every forecast (`<series>_<issued>.csv`); absent: none.
    #[serde(default)]
    pub forecast_csv_dir: Option<PathBuf>,
    /// Folder of the forecasting models, one sub-folder per series.
    #[serde(default = "default_models_dir")]
    pub models_dir: PathBuf,
    /// Readings stamped more than this many seconds after the wall clock are refused.
    #[serde(default = "default_future_seconds")]
    pub future_seconds: u32,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            health_listen: default_health_listen(),
            heartbeat_minutes: default_heartbeat_minutes(),
            forecast_csv_dir: None,
            models_dir: default_models_dir(),
            future_seconds: default_future_seconds(),
        }
    }
}

fn default_health_listen() -> String {
    "127.0.0.1:9187".into()
}
fn default_heartbeat_minutes() -> u32 {
    15
}
fn default_models_dir() -> PathBuf {
    PathBuf::from("models")
}
fn default_future_seconds() -> u32 {
    300
}
fn default_speed() -> f64 {
    1.0
}
fn default_seed() -> u64 {
    1
}
fn default_baud() -> u32 {
    9600
}
fn default_delimiter() -> String {
    ",".into()
}
fn default_unit_id() -> u8 {
    1
}
fn default_interval() -> u32 {
    60
}
fn default_timeout_ms() -> u32 {
    2000
}
fn default_scale() -> f64 {
    1.0
}

/// One `[[source]]`: where readings come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// The built-in simulator, live: a flow and a pressure reading per simulated minute.
    Simulator(SimulatorSource),
    /// A readings file (as `hydrowatch import` reads), replayed in time order.
    CsvReplay(ReplaySource),
    /// Lines `time,series,value` on standard input.
    Stdin(StdinSource),
    /// Lines `time,series,value` over TCP; each line is answered once committed.
    Tcp(TcpSource),
    /// ASCII lines from a serial port (RS-485 through a USB adapter).
    Serial(SerialSource),
    /// Modbus TCP or RTU registers polled on an interval.
    Modbus(ModbusSource),
}

impl SourceConfig {
    /// The kind, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Simulator(_) => "simulator",
            SourceConfig::CsvReplay(_) => "csv_replay",
            SourceConfig::Stdin(_) => "stdin",
            SourceConfig::Tcp(_) => "tcp",
            SourceConfig::Serial(_) => "serial",
            SourceConfig::Modbus(_) => "modbus",
        }
    }

    /// How many times faster than real time it delivers (1 for live sources).
    pub fn speed(&self) -> f64 {
        match self {
            SourceConfig::Simulator(s) => s.speed,
            SourceConfig::CsvReplay(s) => s.speed,
            _ => 1.0,
        }
    }
}

/// `kind = "simulator"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSource {
    /// Simulated minutes per real minute (1: live; 0: as fast as the daemon takes them).
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// Seed of the random numbers (the same seed, the same data).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// First simulated day (local date); default today.
    #[serde(default)]
    pub start: Option<chrono::NaiveDate>,
    /// Days to simulate; default: without end.
    #[serde(default)]
    pub days: Option<u32>,
    /// Mean flow of the simulated DMA, m3/h (default 120).
    #[serde(default)]
    pub mean_flow: Option<f64>,
}

/// `kind = "csv_replay"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySource {
    /// The readings file: `time,<series>,...` or `time,value` (with `series`).
    pub path: PathBuf,
    /// File minutes per real minute (1: real pace; 0: as fast as the daemon takes them).
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// Zone of the file's times; default the device's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// For a `time,value` file: the series its values belong to.
    #[serde(default)]
    pub series: Option<String>,
}

/// `kind = "stdin"`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSource {}

/// `kind = "tcp"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSource {
    /// Address to listen on, e.g. `127.0.0.1:7010` (checked by `Config::parse`, naming the key).
    pub listen: String,
}

/// `kind = "serial"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSource {
    /// The port, e.g. `/dev/ttyUSB0`.
    pub port: PathBuf,
    /// Baud rate (8 data bits, no parity, 1 stop bit).
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Field delimiter of a line.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// What each field is: `time`, a series name, or `_` to ignore it. Without a `time` field a
    /// reading is stamped with the minute it arrived in.
    pub fields: Vec<String>,
}

/// `kind = "modbus"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusSource {
    /// Modbus TCP: the device's address, e.g. `192.168.1.50:502` (checked by `Config::parse`,
    /// naming the key).
    #[serde(default)]
    pub address: Option<String>,
    /// Modbus RTU: the serial port.
    #[serde(default)]
    pub port: Option<PathBuf>,
    /// RTU baud rate.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Unit (slave) id.
    #[serde(default = "default_unit_id")]
    pub unit: u8,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// Milliseconds to wait for an answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// The registers read, one per series.
    pub registers: Vec<RegisterConfig>,
}

/// One register of a Modbus source: value = raw · scale + offset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// The series it feeds.
    pub series: String,
    /// Register address (0-based).
    pub address: u16,
    /// `holding` (function 3) or `input` (function 4).
    #[serde(default)]
    pub table: RegisterTable,
    /// How the words encode the number.
    #[serde(default, rename = "type")]
    pub value_type: RegisterType,
    /// For 32-bit types: whether the first register holds the high word (`big`) or low (`little`).
    #[serde(default)]
    pub word_order: WordOrder,
    /// Multiplier of the raw value.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
}

/// Which Modbus table a register is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterTable {
    /// Holding registers (function 3).
    #[default]
    Holding,
    /// Input registers (function 4).
    Input,
}

/// How register words encode a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterType {
    /// One register, unsigned.
    #[default]
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single precision.
    F32,
}

impl RegisterType {
    /// Registers it occupies.
    pub fn words(self) -> u16 {
        match self {
            RegisterType::U16 | RegisterType::I16 => 1,
            _ => 2,
        }
    }
}

/// Word order of 32-bit values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// High word first (the Modbus convention).
    #[default]
    Big,
    /// Low word first.
    Little,
}

/// The fastest replay: a million times real time (a year in half a minute).
pub(crate) const MAX_SPEED: f64 = 1e6;

/// Problems of the daemon's settings, each naming its key.
pub(crate) fn problems(
    daemon: &DaemonConfig,
    sources: &[SourceConfig],
    series: &[String],
) -> Vec<String> {
    let mut p = Vec::new();
    if !daemon.health_listen.is_empty() && daemon.health_listen.parse::<SocketAddr>().is_err() {
        p.push(format!(
            "daemon.health_listen = {:?}: an address such as \"127.0.0.1:9187\", or \"\" for none",
            daemon.health_listen
        ));
    }
    if daemon.heartbeat_minutes == 0 {
        p.push("daemon.heartbeat_minutes = 0: at least 1 (default 15)".into());
    }
    let known = |name: &str| series.iter().any(|s| s == name);
    // Who listens on or opens what: two sources on one port, or one port given twice.
    let mut taken: Vec<(String, String)> = Vec::new();
    if let Ok(addr) = daemon.health_listen.parse::<SocketAddr>() {
        taken.push((addr.to_string(), "daemon.health_listen".into()));
    }
    let mut claim = |p: &mut Vec<String>, what: String, key: String| match taken
        .iter()
        .find(|(w, _)| *w == what)
    {
        Some((_, first)) => p.push(format!("{key}: {what} is already used by {first}")),
        None => taken.push((what, key)),
    };
    let check_baud = |p: &mut Vec<String>, key: &str, baud: u32| {
        if !(50..=4_000_000).contains(&baud) {
            p.push(format!(
                "{key}.baud = {baud}: a serial line's rate, 50 to 4000000 (e.g. 9600, 19200, 115200)"
            ));
        }
    };
    for (i, s) in sources.iter().enumerate() {
        let key = format!("source[{i}] ({})", s.kind());
        let speed = s.speed();
        if !(speed.is_finite() && (0.0..=MAX_SPEED).contains(&speed)) {
            p.push(format!(
                "{key}.speed = {speed:?}: 1 for real time, more to go faster (at most {MAX_SPEED}), 0 for as fast as possible"
            ));
        }
        match s {
            SourceConfig::Tcp(c) => match c.listen.parse::<SocketAddr>() {
                Ok(addr) => claim(&mut p, addr.to_string(), format!("{key}.listen")),
                Err(_) => p.push(format!(
                    "{key}.listen = {:?}: an address and port such as \"127.0.0.1:7010\"",
                    hydrowatch_core::cut(&c.listen, 60)
                )),
            },
            SourceConfig::Serial(c) => {
                check_baud(&mut p, &key, c.baud);
                claim(&mut p, c.port.display().to_string(), format!("{key}.port"));
                let mut seen: Vec<&String> = Vec::new();
                for f in c.fields.iter().filter(|f| *f != "_") {
                    if seen.contains(&f) {
                        p.push(format!("{key}.fields: {f:?} is given twice"));
                    } else {
                        seen.push(f);
                    }
                }
                if c.delimiter.is_empty() {
                    p.push(format!(
                        "{key}.delimiter is empty: give e.g. \",\" or \";\""
                    ));
                }
                let values = c.fields.iter().filter(|f| *f != "time" && *f != "_");
                if values.clone().count() == 0 {
                    p.push(format!(
                        "{key}.fields = {:?}: name at least one series, e.g. [\"time\", \"flow_rate\", \"pressure\"]",
                        c.fields
                    ));
                }
                for f in values.filter(|f| !known(f)) {
                    p.push(format!("{key}.fields: {f:?} is not a configured series"));
                }
            }
            SourceConfig::Modbus(c) => {
                if let Some(a) = &c.address
                    && a.parse::<SocketAddr>().is_err()
                {
                    p.push(format!(
                        "{key}.address = {:?}: an address and port such as \"192.168.1.50:502\"",
                        hydrowatch_core::cut(a, 60)
                    ));
                }
                if let Some(port) = &c.port {
                    check_baud(&mut p, &key, c.baud);
                    claim(&mut p, port.display().to_string(), format!("{key}.port"));
                }
                if c.address.is_some() == c.port.is_some() {
                    p.push(format!(
                        "{key}: give either address (Modbus TCP, e.g. \"192.168.1.50:502\") or port (Modbus RTU, e.g. \"/dev/ttyUSB1\")"
                    ));
                }
                if c.interval_seconds == 0 || c.timeout_ms == 0 {
                    p.push(format!(
                        "{key}: interval_seconds and timeout_ms must be at least 1"
                    ));
                }
                if c.registers.is_empty() {
                    p.push(format!(
                        "{key}.registers: map at least one register to a series"
                    ));
                }
                for (j, r) in c.registers.iter().enumerate() {
                    if !known(&r.series) {
                        p.push(format!(
                            "{key}.registers[{j}].series = {:?}: not a configured series",
                            r.series
                        ));
                    }
                    if !(r.scale.is_finite() && r.scale != 0.0 && r.offset.is_finite()) {
                        p.push(format!(
                            "{key}.registers[{j}]: scale = {} and offset = {} must be finite, scale not 0",
                            r.scale, r.offset
                        ));
                    }
                }
            }
            SourceConfig::CsvReplay(c) => {
                if let Some(series) = &c.series
                    && !known(series)
                {
                    p.push(format!(
                        "{key}.series = {series:?}: not a configured series"
                    ));
                }
            }
            _ => {}
        }
    }
    p
}
