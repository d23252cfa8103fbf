//! What a device may send: envelopes `{"device_id", "message_id", "kind", "created_at", "body"}`
//! (design.md, Messages), deserialized into typed bodies. Every problem is named with the
//! message's position, its id and the field's path (`messages[2] (m-17): body.points[5].value:
//! invalid type: string "NaN", expected f64`), never echoing more than a short prefix of a value.
//!
//! Invariants of a checked [`Message`]: every number is finite and within its range (an alarm id
//! fits the databases' 64-bit signed integers); every time lies in 1970-2199, `created_at` at
//! most a day ahead of the server's clock; a forecast is [`FORECAST_POINTS`] consecutive hours
//! starting between a week before and two days after its issue, which is within a day of its creation; its actuals are
//! at most [`MAX_ACTUALS`] hours of the month before it. Fields this server does not know are
//! kept in the stored envelope and otherwise ignored (newer devices may send more).

use hydrowatch_core::prefix;
use hydrowatch_core::time::in_span;
use serde::Deserialize;
use serde_json::Value;

/// Points a forecast carries: 7 days, hourly.
pub const FORECAST_POINTS: usize = 168;
/// Most hourly actuals a forecast message may carry (a month).
pub const MAX_ACTUALS: usize = 31 * 24;
/// Longest message id.
pub const MAX_MESSAGE_ID: usize = 100;
/// Longest text field of a body (series, unit, kind, state, model...).
const MAX_TEXT: usize = 200;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// An envelope as sent, but its body (read in place, by kind, without a copy).
#[derive(Debug, Deserialize)]
struct Envelope {
    device_id: String,
    message_id: String,
    kind: String,
    created_at: String,
}

/// The body of an `alert`: one alarm transition (hydrowatch-detect's `AlertMessage`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AlertBody {
    /// The alarm's number on its device (at most 2^63 - 1).
    pub alarm_id: u64,
    /// The series.
    pub series: String,
    /// `outlier`, `stale`, `range`, ...
    pub kind: String,
    /// `opened`, `escalated`, `de-escalated`, `cleared`.
    pub state: String,
    /// Stage 0-4.
    pub outlier_stage: u8,
    /// The device's local time of the transition, RFC 3339.
    pub time: String,
    /// The value read.
    #[serde(default)]
    pub value: Option<f64>,
    /// The value expected.
    #[serde(default)]
    pub expected: Option<f64>,
    /// The value's percentile.
    #[serde(default)]
    pub percentile: Option<f64>,
}

/// One hour of a forecast.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ForecastPoint {
    /// The hour's start, RFC 3339.
    pub time: String,
    /// The forecast value.
    pub value: f64,
    /// The 10% quantile.
    pub lower: f64,
    /// The 90% quantile.
    pub upper: f64,
}

/// One actual hourly mean before a forecast.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Actual {
    /// The hour's start, RFC 3339.
    pub time: String,
    /// Its mean.
    pub value: f64,
}

/// The body of a `forecast`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ForecastBody {
    /// The series.
    pub series: String,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// The hours ahead.
    pub points: Vec<ForecastPoint>,
    /// The hourly means before it (optional), for the day-ahead accuracy.
    #[serde(default)]
    pub actuals: Option<Vec<Actual>>,
}

/// A checked body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// An alarm transition.
    Alert(AlertBody),
    /// A forecast, issued at (Unix seconds), with its actual hours (hour start, mean).
    Forecast {
        /// The body as sent.
        body: ForecastBody,
        /// `issued_at` in Unix seconds.
        issued_at: i64,
        /// The actual hours, in Unix seconds.
        actuals: Vec<(i64, f64)>,
    },
    /// A heartbeat (its body is kept as sent).
    Heartbeat,
}

/// A checked message, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its idempotency key (unique per device).
    pub message_id: String,
    /// `alert`, `forecast` or `heartbeat`.
    pub kind: String,
    /// When the device made it (Unix seconds).
    pub created_at: i64,
    /// The typed body.
    pub body: Body,
    /// The whole envelope, as received.
    pub envelope: Value,
}

/// The Unix seconds of an RFC 3339 time held in `v` (messages carry every time this way).
pub fn seconds(v: &Value) -> Option<i64> {
    parse_time(v.as_str()?)
}

fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
        .filter(|&t| in_span(t))
}

/// `text` as a time in 1970-2199, or an error naming `field`.
fn time(text: &str, field: &str) -> Result<i64, String> {
    parse_time(text).ok_or_else(|| {
        format!(
            "{field}: {:?} is not an RFC 3339 time in 1970-2199",
            prefix(text)
        )
    })
}

fn nonempty(text: &str, field: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(format!(
            "{field}: must be a text of 1 to {MAX_TEXT} bytes (found {} bytes)",
            text.len()
        ));
    }
    Ok(())
}

fn finite(v: f64, field: &str) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("{field}: must be a finite number"))
    }
}

/// `v` as `T`, the error naming the path of the field that failed.
fn typed<T: serde::de::DeserializeOwned>(v: &Value, root: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            root.to_string()
        } else {
            format!("{root}.{path}")
        };
        format!("{path}: {}", prefix_error(&e.into_inner().to_string()))
    })
}

/// A parser's message, cut to 160 bytes (it may quote the value it failed on).
pub fn prefix_error(message: &str) -> String {
    if message.len() <= 160 {
        message.to_string()
    } else {
        format!("{}...", &message[..message.floor_char_boundary(160)])
    }
}

/// Checks message `index` of a batch from `device`, received when the server's clock read `now`.
pub fn check(index: usize, m: &Value, device: &str, now: i64) -> Result<Message, String> {
    let mut at = format!("messages[{index}]");
    let e: Envelope = typed(m, "envelope").map_err(|e| format!("{at}: {e}"))?;
    if e.message_id.is_empty() || e.message_id.len() > MAX_MESSAGE_ID {
        return Err(format!(
            "{at}: message_id: must be 1 to {MAX_MESSAGE_ID} bytes (found {})",
            e.message_id.len()
        ));
    }
    at = format!("messages[{index}] ({})", e.message_id);
    let fail = |e: String| format!("{at}: {e}");
    if e.device_id != device {
        return Err(fail(format!(
            "device_id: {:?}, but the token is {device:?}'s",
            prefix(&e.device_id)
        )));
    }
    let created_at = time(&e.created_at, "created_at").map_err(fail)?;
    if created_at > now + DAY {
        return Err(fail(format!(
            "created_at: {} is more than a day ahead of the server's clock (is the device's clock set?)",
            prefix(&e.created_at)
        )));
    }
    let body = m
        .get("body")
        .filter(|b| !b.is_null())
        .ok_or_else(|| fail("envelope: missing field `body`".into()))?;
    let body = match e.kind.as_str() {
        "alert" => {
            let b: AlertBody = typed(body, "body").map_err(fail)?;
            check_alert(&b).map_err(fail)?;
            Body::Alert(b)
        }
        "forecast" => {
            let b: ForecastBody = typed(body, "body").map_err(fail)?;
            let (issued_at, actuals) = check_forecast(&b, created_at).map_err(fail)?;
            Body::Forecast {
                body: b,
                issued_at,
                actuals,
            }
        }
        "heartbeat" => {
            if !body.is_object() {
                return Err(fail("body: must be an object".into()));
            }
            Body::Heartbeat
        }
        other => {
            return Err(fail(format!(
                "kind: {:?}: expected alert, forecast or heartbeat",
                prefix(other)
            )));
        }
    };
    Ok(Message {
        message_id: e.message_id,
        kind: e.kind,
        created_at,
        body,
        envelope: m.clone(),
    })
}

fn check_alert(b: &AlertBody) -> Result<(), String> {
    if b.alarm_id > i64::MAX as u64 {
        return Err(format!(
            "body.alarm_id: {} is out of range (0 to 2^63 - 1)",
            b.alarm_id
        ));
    }
    if b.outlier_stage > 4 {
        return Err(format!(
            "body.outlier_stage: {} is out of range (0 to 4)",
            b.outlier_stage
        ));
    }
    for (text, field) in [
        (&b.series, "body.series"),
        (&b.kind, "body.kind"),
        (&b.state, "body.state"),
    ] {
        nonempty(text, field)?;
    }
    // The device's local time with its offset; a bare local time from older devices too.
    hydrowatch_core::time::parse_time(&b.time)
        .map_err(|e| format!("body.time: {:?}: {e}", prefix(&b.time)))?;
    for (v, field) in [
        (b.value, "body.value"),
        (b.expected, "body.expected"),
        (b.percentile, "body.percentile"),
    ] {
        if let Some(v) = v {
            finite(v, field)?;
        }
    }
    Ok(())
}

/// The forecast's issue time and its actual hours.
fn check_forecast(b: &ForecastBody, created_at: i64) -> Result<(i64, Vec<(i64, f64)>), String> {
    nonempty(&b.series, "body.series")?;
    let issued_at = time(&b.issued_at, "body.issued_at")?;
    if (issued_at - created_at).abs() > DAY {
        return Err(format!(
            "body.issued_at: {} is more than a day from the message's created_at",
            prefix(&b.issued_at)
        ));
    }
    if b.points.len() != FORECAST_POINTS {
        return Err(format!(
            "body.points: {} entries; a forecast has {FORECAST_POINTS} (7 days, hourly)",
            b.points.len()
        ));
    }
    let mut first = 0;
    for (i, p) in b.points.iter().enumerate() {
        let at = format!("body.points[{i}]");
        let t = time(&p.time, &format!("{at}.time"))?;
        if i == 0 {
            // After a sensor's silence a forecast starts where its history ends.
            if t < issued_at - 7 * DAY || t > issued_at + 2 * DAY {
                return Err(format!(
                    "{at}.time: {} is not within the week before or two days after the forecast's issued_at",
                    prefix(&p.time)
                ));
            }
            first = t;
        } else if t != first + i as i64 * HOUR {
            return Err(format!(
                "{at}.time: {} is not the hour after the point before (points are consecutive hours)",
                prefix(&p.time)
            ));
        }
        finite(p.value, &format!("{at}.value"))?;
        finite(p.lower, &format!("{at}.lower"))?;
        finite(p.upper, &format!("{at}.upper"))?;
    }
    let mut actuals = Vec::new();
    if let Some(list) = &b.actuals {
        if list.len() > MAX_ACTUALS {
            return Err(format!(
                "body.actuals: {} entries; at most {MAX_ACTUALS} (a month of hours)",
                list.len()
            ));
        }
        for (i, a) in list.iter().enumerate() {
            let at = format!("body.actuals[{i}]");
            let t = time(&a.time, &format!("{at}.time"))?;
            if t < issued_at - 31 * DAY || t > issued_at + DAY {
                return Err(format!(
                    "{at}.time: {} is not within the month before the forecast's issued_at",
                    prefix(&a.time)
                ));
            }
            finite(a.value, &format!("{at}.value"))?;
            actuals.push((t, a.value));
        }
    }
    Ok((issued_at, actuals))
}
