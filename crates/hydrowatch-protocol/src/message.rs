//! The messages a device sends: an [`Envelope`] around one typed [`Body`]. On the wire
//! (design.md, Messages) an envelope is `{"device_id", "message_id", "created_at", "kind",
//! "body"}`, every time an RFC 3339 text, every number a JSON number.
//!
//! Fields marked optional here may be missing from messages of older devices; a newer device's
//! fields that these types do not know are ignored when reading (the server keeps the envelope as
//! received). Alarm kinds, directions and transitions are closed sets: a server is upgraded
//! before the devices that send new ones.

use serde::{Deserialize, Serialize};

/// What a message carries.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Kind {
    /// An alarm transition.
    Alert,
    /// A 7-day forecast of one series.
    Forecast,
    /// The device's periodic sign of life.
    Heartbeat,
}

impl Kind {
    /// Every kind, in the order of the wire documentation.
    pub const ALL: &'static [Kind] = <Kind as strum::VariantArray>::VARIANTS;

    /// Its name on the wire (`alert`, `forecast`, `heartbeat`), serde's.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The kind named `name` on the wire.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// The first alarm id of the server's own alarms on a device ([`AlarmKind::DeviceSilent`]);
/// a device numbers its alarms below it.
pub const SERVER_ALARM_IDS: u64 = 1 << 62;

/// What an alarm is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
    /// The server has heard nothing from the device for too long: the server's own alarm (a
    /// device that has died cannot report it); a device never sends it.
    DeviceSilent,
}

impl AlarmKind {
    /// Every kind.
    pub const ALL: &'static [AlarmKind] = <AlarmKind as strum::VariantArray>::VARIANTS;

    /// Its name in files and messages, serde's.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Which way a value is abnormal; `None` for checks without a direction (stale, stuck).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Direction {
    /// Above what is expected.
    High,
    /// Below what is expected.
    Low,
    /// No direction.
    #[default]
    None,
}

impl Direction {
    /// Every direction.
    pub const ALL: &'static [Direction] = <Direction as strum::VariantArray>::VARIANTS;

    /// Its name in files and messages, serde's.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A change of an alarm's state.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Transition {
    /// The alarm opened.
    Opened,
    /// Its stage rose.
    Escalated,
    /// Its stage fell.
    DeEscalated,
    /// It closed.
    Cleared,
}

impl Transition {
    /// Every transition.
    pub const ALL: &'static [Transition] = <Transition as strum::VariantArray>::VARIANTS;

    /// Its name in messages, serde's.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// The body of an `alert`: one alarm transition, with the prototype's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBody {
    /// The device's number (the prototype's field; 0 when missing).
    #[serde(default)]
    pub machine_number: u32,
    /// The device's local time of the reading (or tick), RFC 3339 with the zone's offset.
    pub time: String,
    /// Stage 0-4.
    pub outlier_stage: u8,
    /// The value read.
    #[serde(default)]
    pub value: Option<f64>,
    /// The series.
    pub series: String,
    /// The series' unit (empty when missing).
    #[serde(default)]
    pub unit: String,
    /// What the alarm is about.
    pub kind: AlarmKind,
    /// Which way the value is abnormal.
    #[serde(default)]
    pub direction: Direction,
    /// The value expected.
    #[serde(default)]
    pub expected: Option<f64>,
    /// The value's percentile.
    #[serde(default)]
    pub percentile: Option<f64>,
    /// The alarm's number on its device (the same from opening to clearing; a device's below
    /// [`SERVER_ALARM_IDS`], the server's own from there).
    pub alarm_id: u64,
    /// The transition.
    pub state: Transition,
}

/// One hour of a forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// The hour's start, RFC 3339 UTC.
    pub time: String,
    /// The same hour in the device's zone, for people reading the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_time: Option<String>,
    /// The forecast value.
    pub value: f64,
    /// The 10% quantile.
    pub lower: f64,
    /// The 90% quantile.
    pub upper: f64,
}

/// One actual hourly mean before a forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actual {
    /// The hour's start, RFC 3339.
    pub time: String,
    /// Its mean.
    pub value: f64,
}

/// The body of a `forecast`: the next [`crate::FORECAST_POINTS`] hours of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastBody {
    /// The series.
    pub series: String,
    /// Its unit (empty when missing).
    #[serde(default)]
    pub unit: String,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// The model that made it (empty when missing).
    #[serde(default)]
    pub model: String,
    /// The hours ahead, consecutive.
    pub points: Vec<ForecastPoint>,
    /// The hourly means before it, for the day-ahead accuracy (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actuals: Option<Vec<Actual>>,
}

/// The body of a `heartbeat`: the device's counters (each optional: any object is a heartbeat).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartbeatBody {
    /// The device's program version.
    pub version: Option<String>,
    /// Seconds since the daemon started.
    pub uptime_seconds: Option<i64>,
    /// Readings stored since it started.
    pub readings_ingested: Option<u64>,
    /// Alarms open now.
    pub alarms_open: Option<u64>,
    /// Messages waiting in its outbox.
    pub outbox_depth: Option<u64>,
    /// Messages its outbox dropped (full).
    pub outbox_dropped: Option<u64>,
    /// Its newest reading, RFC 3339.
    pub last_reading: Option<String>,
    /// Per flow series with nights judged, the smallest leak its night test finds within 3
    /// nights (refreshed each night).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detectable_leaks: Option<Vec<DetectableLeak>>,
}

/// The smallest leak a series' night test finds within 3 nights, as the device states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectableLeak {
    /// The series.
    pub series: String,
    /// The persistent rise of its night minimum found within 3 nights, in its unit.
    pub rise: f64,
    /// The night minimum it is a rise over (the median of the recent normal nights).
    pub night_minimum: f64,
}

/// A message's body, tagged on the wire by its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "lowercase")]
pub enum Body {
    /// An alarm transition.
    Alert(AlertBody),
    /// A forecast.
    Forecast(ForecastBody),
    /// A heartbeat.
    Heartbeat(HeartbeatBody),
}

impl Body {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Alert(_) => Kind::Alert,
            Body::Forecast(_) => Kind::Forecast,
            Body::Heartbeat(_) => Kind::Heartbeat,
        }
    }
}

/// One message as sent: who, its idempotency key, when, and the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending device.
    pub device_id: String,
    /// The idempotency key (a UUID), unique per device.
    pub message_id: String,
    /// When the device made it, RFC 3339 UTC.
    pub created_at: String,
    /// `kind` and `body` on the wire.
    #[serde(flatten)]
    pub body: Body,
}

/// An instant (Unix seconds) as RFC 3339 UTC to the second (`2024-07-01T03:00:00Z`); instants
/// outside chrono's range (never produced by a checked time) print as the epoch.
pub fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Unix seconds of an RFC 3339 time in 1970-2199.
pub fn seconds(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
        .filter(|&t| hydrowatch_core::time::in_span(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_is_flat_on_the_wire_and_reads_back() {
        let e = Envelope {
            device_id: "dma-1".into(),
            message_id: "m1".into(),
            created_at: rfc3339(1_719_792_000),
            body: Body::Heartbeat(HeartbeatBody {
                outbox_depth: Some(3),
                ..HeartbeatBody::default()
            }),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "heartbeat");
        assert_eq!(v["created_at"], "2024-07-01T00:00:00Z");
        assert_eq!(v["body"]["outbox_depth"], 3);
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["body", "created_at", "device_id", "kind", "message_id"]
        );
        assert_eq!(serde_json::from_value::<Envelope>(v).unwrap(), e);
    }

    #[test]
    fn names_on_the_wire_are_the_serde_names() {
        for &k in Kind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        for &t in Transition::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
        for &k in AlarmKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        for &d in Direction::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        assert_eq!(seconds("2024-07-01T02:00:00+02:00"), Some(1_719_792_000));
        assert_eq!(seconds("2200-01-01T00:00:00Z"), None);
    }
}
