//! Silent devices: a device that has died cannot report it, so the server raises its own
//! `device_silent` alarm on a device whose last message (heartbeats included) is older than a
//! span, and clears it when the device is heard again. The alarm is an ordinary alarm from then
//! on: listed, acknowledged, shelved and notified like a device's.
//!
//! Invariants: a device has at most one open `device_silent` alarm; the server numbers its own
//! alarms from [`SERVER_ALARM_IDS`], where no device's reach; a device never heard from (a token
//! issued, nothing received) is not called silent.

use std::collections::HashMap;

use hydrowatch_protocol::{AlarmKind, AlertBody, Direction, SERVER_ALARM_IDS, Transition};

use crate::alarm_latest::NewTransitions;
use crate::db::{Db, LAST_SEEN};
use crate::sql::{Arg, DbError, Sql};

/// The series name of the server's own alarms.
pub const SERIES: &str = "device";

fn record(
    c: &mut dyn Sql,
    device: &str,
    alarm: i64,
    state: Transition,
    silent_seconds: i64,
    now: i64,
) -> Result<(), DbError> {
    let stage: u8 = if state == Transition::Cleared { 0 } else { 3 };
    let body = AlertBody {
        machine_number: 0,
        time: hydrowatch_protocol::rfc3339(now),
        outlier_stage: stage,
        value: Some(silent_seconds as f64 / 60.0),
        series: SERIES.into(),
        unit: "min".into(),
        kind: AlarmKind::DeviceSilent,
        direction: Direction::Low,
        expected: None,
        percentile: None,
        alarm_id: u64::try_from(alarm).unwrap_or(SERVER_ALARM_IDS),
        state,
    };
    let text = serde_json::to_string(&body).unwrap_or_default();
    let message_id = format!("server-{alarm}-{}", state.name());
    let mut transitions = NewTransitions::of(device);
    transitions.record(c, &message_id, &body, now, &text)?;
    transitions.finish(c, now)
}

impl Db {
    /// Opens a `device_silent` alarm on each device heard from last more than `span` seconds
    /// before `now`, and clears the open ones of devices heard from since. Returns (opened,
    /// cleared).
    pub fn watch_silence(&self, now: i64, span: i64) -> Result<(usize, usize), DbError> {
        self.write_alone(|c| {
            let devices = c.rows(LAST_SEEN, &[])?;
            let mut open: HashMap<String, (i64, i64)> = HashMap::new();
            for r in c.rows(
                "SELECT device_id, alarm_id, changed_at FROM alarm_latest
                 WHERE to_handle = 1 AND kind = 'device_silent' AND state <> 'cleared'",
                &[],
            )? {
                open.insert(r.text(0)?, (r.int(1)?, r.int(2)?));
            }
            let (mut opened, mut cleared) = (0, 0);
            let base = i64::try_from(SERVER_ALARM_IDS).unwrap_or(i64::MAX);
            for r in &devices {
                let device = r.text(0)?;
                let Some(last) = r.opt_int(1)? else {
                    continue;
                };
                match open.get(&device) {
                    None if now - last > span => {
                        let next = c.rows(
                            "SELECT coalesce(max(alarm_id) + 1, ?2) FROM alerts WHERE device_id = ?1 AND alarm_id >= ?2",
                            &[Arg::Text(Some(&device)), Arg::Int(base)],
                        )?[0]
                            .int(0)?;
                        record(c, &device, next, Transition::Opened, now - last, now)?;
                        tracing::warn!(device, minutes = (now - last) / 60, "device silent: alarm opened");
                        opened += 1;
                    }
                    Some(&(alarm, opened_at)) if last >= opened_at => {
                        record(c, &device, alarm, Transition::Cleared, 0, now)?;
                        tracing::info!(device, "device heard again: silence alarm cleared");
                        cleared += 1;
                    }
                    _ => {}
                }
            }
            Ok((opened, cleared))
        })
    }
}
