//! The alarm load of the fleet in ISA-18.2's terms: alarms per device per day, time to
//! acknowledge, and the share of time in flood (more than [`FLOOD_ALARMS`] alarms in
//! [`FLOOD_WINDOW`] seconds), over a span of days.
//!
//! Invariants: an alarm counts once, on the day (UTC) it opened; flood is counted in fixed
//! 10-minute periods of the whole fleet, so the share is periods in flood over periods of the
//! span.

use std::collections::BTreeMap;

use hydrowatch_core::time::DAY;

use crate::db::Db;
use crate::sql::{Arg, DbError};

/// More alarms than this in one period is a flood.
pub const FLOOD_ALARMS: usize = 10;
/// The period (seconds).
pub const FLOOD_WINDOW: i64 = 600;

/// The load of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceLoad {
    /// The device.
    pub device_id: String,
    /// Alarms opened per day (UTC), oldest first, one per day of the span.
    pub per_day: Vec<usize>,
    /// Seconds from opening to acknowledgement of the alarms acknowledged in the span.
    pub to_acknowledge: Vec<i64>,
}

/// The load of the fleet over a span.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmLoad {
    /// The first day (Unix seconds, midnight UTC).
    pub from: i64,
    /// Days in the span.
    pub days: usize,
    /// Per device, by id.
    pub devices: Vec<DeviceLoad>,
    /// 10-minute periods of the span with more than [`FLOOD_ALARMS`] alarms opened fleet-wide.
    pub flood_periods: usize,
    /// 10-minute periods in the span.
    pub periods: usize,
}

impl AlarmLoad {
    /// The share of time in flood, 0-1.
    pub fn flood_share(&self) -> f64 {
        self.flood_periods as f64 / self.periods.max(1) as f64
    }
}

/// The median and the 90th percentile of `values` (sorted in place), None when empty.
pub fn median_p90(values: &mut [i64]) -> Option<(i64, i64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some((at(0.5), at(0.9)))
}

impl Db {
    /// The alarm load of the `days` days up to and including the day of `now` (UTC).
    pub fn alarm_load(&self, days: usize, now: i64) -> Result<AlarmLoad, DbError> {
        let days = days.clamp(1, 366);
        let from = now - now.rem_euclid(DAY) - (days as i64 - 1) * DAY;
        let (opened, acks) = self.read(|c| {
            let opened = c.rows(
                "SELECT device_id, created_at FROM alerts WHERE state = 'opened' AND created_at >= ?1 AND created_at <= ?2",
                &[Arg::Int(from), Arg::Int(now)],
            )?;
            let acks = c.rows(
                "SELECT x.device_id, x.at - (SELECT min(created_at) FROM alerts a
                   WHERE a.device_id = x.device_id AND a.alarm_id = x.alarm_id)
                 FROM alarm_actions x WHERE x.action = 'acknowledged' AND x.at >= ?1",
                &[Arg::Int(from)],
            )?;
            Ok((opened, acks))
        })?;
        let mut devices: BTreeMap<String, DeviceLoad> = BTreeMap::new();
        let mut periods: BTreeMap<i64, usize> = BTreeMap::new();
        for r in &opened {
            let t = r.int(1)?;
            let day = usize::try_from((t - from) / DAY).unwrap_or(0).min(days - 1);
            load_of(&mut devices, r.text(0)?, days).per_day[day] += 1;
            *periods.entry((t - from) / FLOOD_WINDOW).or_default() += 1;
        }
        for r in &acks {
            if let Some(seconds) = r.opt_int(1)? {
                load_of(&mut devices, r.text(0)?, days)
                    .to_acknowledge
                    .push(seconds.max(0));
            }
        }
        let elapsed = (now - from).max(1);
        Ok(AlarmLoad {
            from,
            days,
            devices: devices.into_values().collect(),
            flood_periods: periods.values().filter(|&&n| n > FLOOD_ALARMS).count(),
            periods: usize::try_from((elapsed + FLOOD_WINDOW - 1) / FLOOD_WINDOW).unwrap_or(1),
        })
    }
}

/// The load of device `id`, added when missing.
fn load_of(devices: &mut BTreeMap<String, DeviceLoad>, id: String, days: usize) -> &mut DeviceLoad {
    devices.entry(id.clone()).or_insert_with(|| DeviceLoad {
        device_id: id,
        per_day: vec![0; days],
        to_acknowledge: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_and_p90_of_a_few_values() {
        assert_eq!(super::median_p90(&mut []), None);
        let mut v = vec![50, 10, 30, 20, 40, 60, 70, 80, 90, 100, 110];
        assert_eq!(super::median_p90(&mut v), Some((60, 100)));
    }
}
