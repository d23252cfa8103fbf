//! The server's checks of a received envelope: it is deserialized into the typed bodies of
//! [`crate::message`] and every bound is checked. A problem is named with the message's position
//! in its batch, its id and the field's path (`messages[2] (m-17): body.points[5].value: invalid
//! type: string "NaN", expected f64`), never echoing more than a short prefix of a value.
//!
//! Invariants of a [`Checked`] message: every number is finite and within its range (an alarm id
//! fits the databases' 64-bit signed integers); every time lies in 1970-2199, `created_at` at
//! most a day ahead of the server's clock; a forecast is [`FORECAST_POINTS`] consecutive hours
//! starting between a week before and two days after its issue, which is within a day of its
//! creation; its actuals are at most [`MAX_ACTUALS`] hours of the month before it; every text is
//! bounded, and the envelope kept holds only the fields the server knows.

use hydrowatch_core::prefix;
use hydrowatch_core::time::{DAY, HOUR};
use serde::Deserialize;
use serde_json::Value;

use crate::message::{AlertBody, ForecastBody, HeartbeatBody, Kind, seconds};

/// Points a forecast carries: 7 days, hourly.
pub const FORECAST_POINTS: usize = 168;
/// Most hourly actuals a forecast message may carry (a month).
pub const MAX_ACTUALS: usize = 31 * 24;
/// Longest message id.
pub const MAX_MESSAGE_ID: usize = 100;
/// Longest text field of a body (series, unit, model...).
pub const MAX_TEXT: usize = 200;
/// Most smallest-leak statements in one heartbeat (one per flow series).
pub const MAX_DETECTABLE_LEAKS: usize = 64;

/// A message the server refuses: where it is, and what is wrong with which field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("messages[{index}]{}: {problem}", .message_id.as_deref().map(|id| format!(" ({id})")).unwrap_or_default())]
pub struct Invalid {
    /// Its position in the batch.
    pub index: usize,
    /// Its id, once that is known to be a valid one.
    pub message_id: Option<String>,
    /// The field's path and what is wrong (`body.alarm_id: ... is out of range`).
    pub problem: String,
}

/// A checked message, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Its idempotency key (unique per device).
    pub message_id: String,
    /// When the device made it (Unix seconds).
    pub created_at: i64,
    /// The typed body, with the times the server keys it by.
    pub body: CheckedBody,
    /// The envelope as the server keeps it: rebuilt from the typed fields, so fields this server
    /// does not know (which a sender could pad to any size) are dropped before anything stores
    /// or shows them.
    pub envelope: Value,
}

impl Checked {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self.body {
            CheckedBody::Alert(_) => Kind::Alert,
            CheckedBody::Forecast { .. } => Kind::Forecast,
            CheckedBody::Heartbeat(_) => Kind::Heartbeat,
        }
    }
}

/// A checked body.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedBody {
    /// An alarm transition.
    Alert(AlertBody),
    /// A forecast.
    Forecast {
        /// The body as sent.
        body: ForecastBody,
        /// `issued_at` in Unix seconds.
        issued_at: i64,
        /// The actual hours (start in Unix seconds, mean).
        actuals: Vec<(i64, f64)>,
    },
    /// A heartbeat.
    Heartbeat(HeartbeatBody),
}

/// The envelope but its body (read in place, by kind, so that errors name the body's fields).
#[derive(Debug, Deserialize)]
struct Head {
    device_id: String,
    message_id: String,
    kind: String,
    created_at: String,
}

/// `text` as a time in 1970-2199, or an error naming `field`.
fn time(text: &str, field: &str) -> Result<i64, String> {
    seconds(text).ok_or_else(|| {
        format!(
            "{field}: {:?} is not an RFC 3339 time in 1970-2199",
            prefix(text)
        )
    })
}

fn text(text: &str, field: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!(
            "{field}: must be a text of 1 to {MAX_TEXT} bytes (found 0 bytes)"
        ));
    }
    short(text, field)
}

/// A text of at most [`MAX_TEXT`] bytes that [`hydrowatch_core::unsafe_text`] allows.
fn short(text: &str, field: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT {
        return Err(format!(
            "{field}: must be at most {MAX_TEXT} bytes (found {} bytes)",
            text.len()
        ));
    }
    match hydrowatch_core::unsafe_text(text) {
        Some(why) => Err(format!("{field}: {:?} {why}", prefix(text))),
        None => Ok(()),
    }
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

/// Checks message `index` of a batch from `device`, received when the server's clock read `now`
/// (Unix seconds).
pub fn check(index: usize, m: &Value, device: &str, now: i64) -> Result<Checked, Invalid> {
    let invalid = |message_id: Option<&str>, problem: String| Invalid {
        index,
        message_id: message_id.map(str::to_string),
        problem,
    };
    let head: Head = typed(m, "envelope").map_err(|e| invalid(None, e))?;
    if head.message_id.is_empty() || head.message_id.len() > MAX_MESSAGE_ID {
        return Err(invalid(
            None,
            format!(
                "message_id: must be 1 to {MAX_MESSAGE_ID} bytes (found {})",
                head.message_id.len()
            ),
        ));
    }
    if let Some(why) = hydrowatch_core::unsafe_text(&head.message_id) {
        return Err(invalid(None, format!("message_id: {why}")));
    }
    let fail = |problem: String| invalid(Some(&head.message_id), problem);
    if head.device_id != device {
        return Err(fail(format!(
            "device_id: {:?}, but the token is {device:?}'s",
            prefix(&head.device_id)
        )));
    }
    let created_at = time(&head.created_at, "created_at").map_err(fail)?;
    if created_at > now + DAY {
        return Err(fail(format!(
            "created_at: {} is more than a day ahead of the server's clock (is the device's clock set?)",
            prefix(&head.created_at)
        )));
    }
    let body = m
        .get("body")
        .filter(|b| !b.is_null())
        .ok_or_else(|| fail("envelope: missing field `body`".into()))?;
    let kind = Kind::from_name(&head.kind).ok_or_else(|| {
        fail(format!(
            "kind: {:?}: expected alert, forecast or heartbeat",
            prefix(&head.kind)
        ))
    })?;
    let body = match kind {
        Kind::Alert => {
            let b: AlertBody = typed(body, "body").map_err(fail)?;
            check_alert(&b).map_err(fail)?;
            CheckedBody::Alert(b)
        }
        Kind::Forecast => {
            let b: ForecastBody = typed(body, "body").map_err(fail)?;
            let (issued_at, actuals) = check_forecast(&b, created_at).map_err(fail)?;
            CheckedBody::Forecast {
                body: b,
                issued_at,
                actuals,
            }
        }
        Kind::Heartbeat => {
            if !body.is_object() {
                return Err(fail("body: must be an object".into()));
            }
            let b: HeartbeatBody = typed(body, "body").map_err(fail)?;
            check_heartbeat(&b).map_err(fail)?;
            CheckedBody::Heartbeat(b)
        }
    };
    // The envelope's wire form (as `Envelope` writes it), from the typed body by reference.
    let typed_body = match &body {
        CheckedBody::Alert(b) => serde_json::to_value(b),
        CheckedBody::Forecast { body, .. } => serde_json::to_value(body),
        CheckedBody::Heartbeat(b) => serde_json::to_value(b),
    }
    .map_err(|e| fail(format!("envelope: {e}")))?;
    let envelope = serde_json::json!({
        "device_id": head.device_id,
        "message_id": head.message_id,
        "created_at": head.created_at,
        "kind": kind.name(),
        "body": typed_body,
    });
    Ok(Checked {
        message_id: head.message_id,
        created_at,
        body,
        envelope,
    })
}

/// A heartbeat's bounded parts: its texts, and at most [`MAX_DETECTABLE_LEAKS`] stated leaks,
/// each a series' name and two finite numbers.
fn check_heartbeat(b: &HeartbeatBody) -> Result<(), String> {
    for (text, field) in [
        (&b.version, "body.version"),
        (&b.last_reading, "body.last_reading"),
    ] {
        if let Some(t) = text {
            short(t, field)?;
        }
    }
    let Some(leaks) = &b.detectable_leaks else {
        return Ok(());
    };
    if leaks.len() > MAX_DETECTABLE_LEAKS {
        return Err(format!(
            "body.detectable_leaks: {} entries; at most {MAX_DETECTABLE_LEAKS}",
            leaks.len()
        ));
    }
    for (i, leak) in leaks.iter().enumerate() {
        text(&leak.series, &format!("body.detectable_leaks[{i}].series"))?;
        for (name, x) in [("rise", leak.rise), ("night_minimum", leak.night_minimum)] {
            if !x.is_finite() || x < 0.0 {
                return Err(format!(
                    "body.detectable_leaks[{i}].{name}: {x} must be a finite number, 0 or more"
                ));
            }
        }
    }
    Ok(())
}

fn check_alert(b: &AlertBody) -> Result<(), String> {
    if b.alarm_id >= crate::message::SERVER_ALARM_IDS {
        return Err(format!(
            "body.alarm_id: {} is out of range (0 to 2^62 - 1; the ids above are the server's own)",
            b.alarm_id
        ));
    }
    if b.kind == crate::message::AlarmKind::DeviceSilent {
        return Err("body.kind: device_silent is the server's own alarm, never a device's".into());
    }
    if b.outlier_stage > 4 {
        return Err(format!(
            "body.outlier_stage: {} is out of range (0 to 4)",
            b.outlier_stage
        ));
    }
    text(&b.series, "body.series")?;
    short(&b.unit, "body.unit")?;
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
    text(&b.series, "body.series")?;
    short(&b.unit, "body.unit")?;
    short(&b.model, "body.model")?;
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
        if let Some(local) = &p.local_time {
            short(local, &format!("{at}.local_time"))?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn heartbeat(body: Value) -> Result<Checked, Invalid> {
        let m = json!({
            "device_id": "dma-1",
            "message_id": "m1",
            "kind": "heartbeat",
            "created_at": "2024-07-01T00:00:00Z",
            "body": body,
        });
        check(0, &m, "dma-1", 1_719_792_000)
    }

    #[test]
    fn a_heartbeat_states_the_smallest_leaks_within_bounds() {
        let leak = json!({"series": "flow_rate", "rise": 3.8, "night_minimum": 47.5});
        let ok = heartbeat(json!({"detectable_leaks": [leak]})).unwrap();
        let CheckedBody::Heartbeat(b) = ok.body else {
            panic!("a heartbeat");
        };
        assert_eq!(b.detectable_leaks.unwrap()[0].rise, 3.8);
        let many: Vec<Value> = (0..=MAX_DETECTABLE_LEAKS).map(|_| leak.clone()).collect();
        let e = heartbeat(json!({ "detectable_leaks": many })).unwrap_err();
        assert!(
            e.problem.starts_with("body.detectable_leaks: 65 entries"),
            "{e:?}"
        );
        let e = heartbeat(
            json!({"detectable_leaks": [{"series": "", "rise": 1.0, "night_minimum": 2.0}]}),
        )
        .unwrap_err();
        assert!(
            e.problem.starts_with("body.detectable_leaks[0].series"),
            "{e:?}"
        );
        let e = heartbeat(
            json!({"detectable_leaks": [{"series": "f", "rise": -1.0, "night_minimum": 2.0}]}),
        )
        .unwrap_err();
        assert!(
            e.problem.starts_with("body.detectable_leaks[0].rise"),
            "{e:?}"
        );
        let e = heartbeat(json!({"detectable_leaks": [{"series": "f", "rise": 1.0, "night_minimum": 2.0, "x": 1}]}))
            .unwrap_err();
        assert!(e.problem.contains("unknown field"), "{e:?}");
    }
}
