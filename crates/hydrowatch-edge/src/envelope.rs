//! The envelopes of messages to the central server (design.md, Messages):
//! `{"device_id", "message_id", "kind", "created_at", "body"}`, the message id a fresh UUID that
//! the server stores once.

use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_local;
use hydrowatch_forecast::Forecast;
use hydrowatch_store::OutboxMessage;

/// The envelope of `body` of `kind` created at `time`.
pub fn envelope(
    device_id: &str,
    kind: &str,
    time: Timestamp,
    body: serde_json::Value,
) -> OutboxMessage {
    let message_id = uuid::Uuid::new_v4().to_string();
    let text = serde_json::json!({
        "device_id": device_id,
        "message_id": message_id,
        "kind": kind,
        "created_at": rfc3339(time),
        "body": body,
    });
    OutboxMessage {
        message_id,
        kind: kind.into(),
        created_at: time,
        body: text.to_string(),
    }
}

/// An instant as RFC 3339 UTC (`2024-07-01T03:00:00Z`).
pub fn rfc3339(ts: Timestamp) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The alert message of an alarm transition.
pub fn alert(
    device_id: &str,
    alert: &hydrowatch_detect::AlertMessage,
    time: Timestamp,
) -> OutboxMessage {
    envelope(
        device_id,
        "alert",
        time,
        serde_json::to_value(alert).expect("alert messages serialise"),
    )
}

/// The forecast message of series `series` (`unit`), issued at `issued_at` (local times in `tz`
/// beside the UTC ones, for people reading it), with the hourly means of the days before it
/// (`actuals`: hour start, mean) so that the server can show and score the forecasts.
pub fn forecast(
    device_id: &str,
    series: &str,
    unit: &str,
    fc: &Forecast,
    issued_at: Timestamp,
    tz: chrono_tz::Tz,
    actuals: &[(Timestamp, f64)],
) -> OutboxMessage {
    let points: Vec<serde_json::Value> = (0..fc.points.len())
        .map(|i| {
            serde_json::json!({
                "time": rfc3339(fc.time(i)),
                "local_time": format_local(fc.time(i), tz),
                "value": fc.points[i],
                "lower": fc.lower[i],
                "upper": fc.upper[i],
            })
        })
        .collect();
    envelope(
        device_id,
        "forecast",
        issued_at,
        serde_json::json!({
            "series": series,
            "unit": unit,
            "issued_at": rfc3339(issued_at),
            "model": fc.model,
            "points": points,
            "actuals": actuals
                .iter()
                .map(|&(t, v)| serde_json::json!({"time": rfc3339(t), "value": v}))
                .collect::<Vec<_>>(),
        }),
    )
}
