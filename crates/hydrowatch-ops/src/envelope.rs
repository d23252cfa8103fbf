//! The device's side of the wire protocol (hydrowatch-protocol): each message to the central
//! server is an [`Envelope`] with a fresh UUID as its message id (the server stores each id
//! once), written to the outbox as JSON.

use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_local;
use hydrowatch_forecast::Forecast;
use hydrowatch_protocol::{
    Actual, AlertBody, Body, Envelope, ForecastBody, ForecastPoint, HeartbeatBody, rfc3339,
};
use hydrowatch_store::OutboxMessage;

/// The outbox row of `body`, created at `time` by `device_id`.
pub fn envelope(device_id: &str, time: Timestamp, body: Body) -> OutboxMessage {
    let kind = body.kind();
    let envelope = Envelope {
        device_id: device_id.to_string(),
        message_id: uuid::Uuid::new_v4().to_string(),
        created_at: rfc3339(time),
        body,
    };
    OutboxMessage {
        body: serde_json::to_string(&envelope).expect("envelopes serialise"),
        message_id: envelope.message_id,
        kind: kind.name().into(),
        created_at: time,
    }
}

/// The alert message of an alarm transition.
pub fn alert(device_id: &str, alert: AlertBody, time: Timestamp) -> OutboxMessage {
    envelope(device_id, time, Body::Alert(alert))
}

/// The heartbeat message made at `time`.
pub fn heartbeat(device_id: &str, body: HeartbeatBody, time: Timestamp) -> OutboxMessage {
    envelope(device_id, time, Body::Heartbeat(body))
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
    let points = (0..fc.points.len())
        .map(|i| ForecastPoint {
            time: rfc3339(fc.time(i)),
            local_time: Some(format_local(fc.time(i), tz)),
            value: fc.points[i],
            lower: fc.lower[i],
            upper: fc.upper[i],
        })
        .collect();
    let body = ForecastBody {
        series: series.into(),
        unit: unit.into(),
        issued_at: rfc3339(issued_at),
        model: fc.model.clone(),
        points,
        actuals: Some(
            actuals
                .iter()
                .map(|&(t, value)| Actual {
                    time: rfc3339(t),
                    value,
                })
                .collect(),
        ),
    };
    envelope(device_id, issued_at, Body::Forecast(body))
}
