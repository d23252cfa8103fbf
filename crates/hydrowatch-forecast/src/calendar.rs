//! Calendar features of an hour, in the device's local time: hour of day and day of week as
//! points on a circle (so 23:00 is next to 00:00), and a day-off flag (weekend or holiday).

use chrono::{Datelike, NaiveDate, Timelike, Weekday};
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;

use crate::History;

/// Number of calendar features per hour.
pub const CALENDAR_FEATURES: usize = 5;

/// The local days off besides weekends (public holidays), from the configuration.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Holidays(pub Vec<NaiveDate>);

/// What a local day is to the seasonal lags (see [`crate::baseline::seasonal_lags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DayKind {
    /// A day that is neither a Sunday nor a listed holiday.
    Other,
    /// A Sunday that is not a listed holiday.
    Sunday,
    /// A listed holiday.
    Holiday,
}

/// The [`DayKind`] of each interval of `history` from `from` on, extended `extra` intervals
/// past its end (index 0 is interval `from`).
pub(crate) fn day_kinds(history: &History, from: usize, extra: usize) -> Vec<DayKind> {
    let holidays: std::collections::HashSet<&NaiveDate> = history.holidays.0.iter().collect();
    (from..history.series.values.len() + extra)
        .map(|i| {
            let date = local(history.series.time(i), history.timezone).date();
            if holidays.contains(&date) {
                DayKind::Holiday
            } else if date.weekday() == Weekday::Sun {
                DayKind::Sunday
            } else {
                DayKind::Other
            }
        })
        .collect()
}

/// The local date and time of `ts` in `tz`.
fn local(ts: Timestamp, tz: Tz) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.with_timezone(&tz).naive_local())
        .unwrap_or_default()
}

/// `[sin hour, cos hour, sin weekday, cos weekday, day off]` of the hour starting at `ts`.
pub fn features(ts: Timestamp, tz: Tz, holidays: &Holidays) -> [f32; CALENDAR_FEATURES] {
    let local = local(ts, tz);
    let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
    let day = f64::from(local.weekday().num_days_from_monday());
    let tau = std::f64::consts::TAU;
    let off = matches!(local.weekday(), Weekday::Sat | Weekday::Sun)
        || holidays.0.contains(&local.date());
    [
        (tau * hour / 24.0).sin() as f32,
        (tau * hour / 24.0).cos() as f32,
        (tau * day / 7.0).sin() as f32,
        (tau * day / 7.0).cos() as f32,
        f32::from(u8::from(off)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hour_weekday_and_days_off() {
        let seoul = chrono_tz::Asia::Seoul;
        // 2024-07-08T15:00Z is Tuesday 00:00 in Seoul.
        let f = features(1_720_450_800, seoul, &Holidays::default());
        assert!(
            (f[0] - 0.0).abs() < 1e-6 && (f[1] - 1.0).abs() < 1e-6,
            "midnight: {f:?}"
        );
        assert_eq!(f[4], 0.0);
        let sat = features(1_720_450_800 + 4 * 86_400, seoul, &Holidays::default());
        assert_eq!(sat[4], 1.0);
        let hol = Holidays(vec![NaiveDate::from_ymd_opt(2024, 7, 9).unwrap()]);
        assert_eq!(features(1_720_450_800, seoul, &hol)[4], 1.0);
    }
}
