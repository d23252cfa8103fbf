//! What a device may send: envelopes `{"device_id", "message_id", "kind", "created_at", "body"}`
//! (design.md, Messages) and what each kind's body must hold. Every problem is named with the
//! message's position, its id and the field.

use serde_json::Value;

/// Points a forecast carries: 7 days, hourly.
pub const FORECAST_POINTS: usize = 168;

/// A checked message, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its idempotency key.
    pub message_id: String,
    /// `alert`, `forecast` or `heartbeat`.
    pub kind: String,
    /// When the device made it (Unix seconds).
    pub created_at: i64,
    /// The whole envelope, as received.
    pub envelope: Value,
}

fn field<'a>(v: &'a Value, name: &str, at: &str) -> Result<&'a Value, String> {
    v.get(name)
        .filter(|x| !x.is_null())
        .ok_or_else(|| format!("{at}: `{name}` is missing"))
}

fn text<'a>(v: &'a Value, name: &str, at: &str) -> Result<&'a str, String> {
    field(v, name, at)?
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{at}: `{name}` must be a non-empty string"))
}

/// The Unix seconds of an RFC 3339 time held in `v` (messages carry every time this way).
pub fn seconds(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp())
}

fn time(v: &Value, name: &str, at: &str) -> Result<i64, String> {
    let t = text(v, name, at)?;
    seconds(&v[name]).ok_or_else(|| format!("{at}: `{name}` = {t:?} is not an RFC 3339 time"))
}

fn number(v: &Value, name: &str, at: &str) -> Result<f64, String> {
    field(v, name, at)?
        .as_f64()
        .ok_or_else(|| format!("{at}: `{name}` must be a number"))
}

/// Checks message `index` of a batch from `device`.
pub fn check(index: usize, m: &Value, device: &str) -> Result<Message, String> {
    let mut at = format!("messages[{index}]");
    let message_id = text(m, "message_id", &at)?.to_string();
    if message_id.len() > 100 {
        return Err(format!("{at}: `message_id` is longer than 100 characters"));
    }
    at = format!("messages[{index}] ({message_id})");
    let sender = text(m, "device_id", &at)?;
    if sender != device {
        return Err(format!(
            "{at}: `device_id` = {sender:?}, but the token is {device:?}'s"
        ));
    }
    let created_at = time(m, "created_at", &at)?;
    let kind = text(m, "kind", &at)?.to_string();
    let body = field(m, "body", &at)?;
    let at = format!("{at}.body");
    match kind.as_str() {
        "alert" => {
            text(body, "series", &at)?;
            text(body, "kind", &at)?;
            text(body, "state", &at)?;
            text(body, "time", &at)?;
            field(body, "alarm_id", &at)?
                .as_u64()
                .ok_or_else(|| format!("{at}: `alarm_id` must be a whole number"))?;
            field(body, "outlier_stage", &at)?
                .as_u64()
                .filter(|s| *s <= 4)
                .ok_or_else(|| format!("{at}: `outlier_stage` must be 0 to 4"))?;
        }
        "forecast" => {
            text(body, "series", &at)?;
            time(body, "issued_at", &at)?;
            let points = field(body, "points", &at)?
                .as_array()
                .ok_or_else(|| format!("{at}: `points` must be a list"))?;
            if points.len() != FORECAST_POINTS {
                return Err(format!(
                    "{at}: `points` has {} entries; a forecast has {FORECAST_POINTS} (7 days, hourly)",
                    points.len()
                ));
            }
            for (i, p) in points.iter().enumerate() {
                let at = format!("{at}.points[{i}]");
                time(p, "time", &at)?;
                for name in ["value", "lower", "upper"] {
                    number(p, name, &at)?;
                }
            }
            // Optional: the hourly means before the forecast, for the day-ahead accuracy.
            if let Some(actuals) = body.get("actuals").filter(|a| !a.is_null()) {
                let actuals = actuals
                    .as_array()
                    .ok_or_else(|| format!("{at}: `actuals` must be a list"))?;
                for (i, p) in actuals.iter().enumerate() {
                    let at = format!("{at}.actuals[{i}]");
                    time(p, "time", &at)?;
                    number(p, "value", &at)?;
                }
            }
        }
        "heartbeat" => {
            if !body.is_object() {
                return Err(format!("{at}: must be an object"));
            }
        }
        other => {
            return Err(format!(
                "messages[{index}] ({message_id}): `kind` = {other:?}: expected alert, forecast or heartbeat"
            ));
        }
    }
    Ok(Message {
        message_id,
        kind,
        created_at,
        envelope: m.clone(),
    })
}
