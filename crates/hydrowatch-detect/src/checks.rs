//! System checks of one series (stuck, outside the plausible range, jump) and the local clock
//! the detector reads hours and nights from.
//!
//! Stale (no reading for N minutes) is judged in [`crate::Detector::tick`], since it is the
//! absence of readings.
//!
//! Windows are times, and never shorter than the series' own sampling allows: a series read
//! every hour cannot be stale after 15 minutes, nor stuck after two equal readings. The typical
//! interval is the median of [`GAPS`] recent intervals between readings; stale needs at least
//! [`STALE_INTERVALS`] of them without a reading, stuck at least [`STUCK_INTERVALS`] of them of
//! identical values (minute data: 3 and 4 minutes, under the defaults of 15 and 30).

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{AlarmKind, Direction, Limits, SeriesSettings};

/// Local time of instants, with the zone's offset cached for the quarter hour it holds in
/// (every zone's offset changes only on a quarter hour), so a reading costs an addition.
#[derive(Debug, Clone)]
pub(crate) struct LocalClock {
    tz: Tz,
    cached: Option<(Timestamp, i64)>,
}

impl LocalClock {
    pub(crate) fn new(tz: Tz) -> LocalClock {
        LocalClock { tz, cached: None }
    }

    pub(crate) fn local(&mut self, ts: Timestamp) -> NaiveDateTime {
        use chrono::Offset;
        let quarter = ts - ts.rem_euclid(900);
        let offset = match self.cached {
            Some((q, offset)) if q == quarter => offset,
            _ => {
                let offset = chrono::DateTime::from_timestamp(quarter, 0).map_or(0, |t| {
                    t.with_timezone(&self.tz).offset().fix().local_minus_utc() as i64
                });
                self.cached = Some((quarter, offset));
                offset
            }
        };
        chrono::DateTime::from_timestamp(ts + offset, 0)
            .map_or(NaiveDateTime::MIN, |t| t.naive_utc())
    }
}

/// Intervals between readings the typical interval is the median of.
pub(crate) const GAPS: usize = 9;
/// Typical intervals without a reading before a series can be stale.
pub(crate) const STALE_INTERVALS: i64 = 3;
/// Typical intervals of identical values before a series can be stuck.
pub(crate) const STUCK_INTERVALS: i64 = 4;

/// What the system checks remember of a series between readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckState {
    /// The last judged reading.
    pub last: Option<(Timestamp, f64)>,
    /// First reading of the current run of identical values.
    pub same_since: Option<Timestamp>,
    /// The last intervals between readings, seconds: a ring of at most [`GAPS`].
    #[serde(default)]
    gaps: Vec<i64>,
    /// Where the next interval goes in the full ring.
    #[serde(default)]
    next_gap: usize,
    /// The median of `gaps`, refreshed while the ring fills and each time it has turned round
    /// (a sort per reading would cost the detector a third of its time).
    #[serde(default)]
    interval: Option<i64>,
}

impl CheckState {
    /// The series' typical interval between readings (seconds), once one is known.
    pub(crate) fn interval(&self) -> Option<i64> {
        self.interval
    }

    /// Records the interval `gap` before a reading.
    fn add_gap(&mut self, gap: i64) {
        if self.gaps.len() < GAPS {
            self.gaps.push(gap);
        } else {
            self.gaps[self.next_gap % GAPS] = gap;
            self.next_gap = (self.next_gap + 1) % GAPS;
        }
        if self.gaps.len() < GAPS || self.next_gap == 0 {
            let mut sorted = [0i64; GAPS];
            let n = self.gaps.len().min(GAPS);
            sorted[..n].copy_from_slice(&self.gaps[..n]);
            sorted[..n].sort_unstable();
            self.interval = Some(sorted[n / 2]);
        }
    }

    /// Seconds without a reading after which the series is stale.
    pub(crate) fn stale_after(&self, settings: &SeriesSettings) -> i64 {
        let configured = i64::from(settings.stale_minutes) * 60;
        self.interval()
            .map_or(configured, |i| configured.max(STALE_INTERVALS * i))
    }

    /// Seconds of identical values after which the series is stuck.
    fn stuck_after(&self, settings: &SeriesSettings) -> i64 {
        let configured = i64::from(settings.stuck_minutes) * 60;
        self.interval()
            .map_or(configured, |i| configured.max(STUCK_INTERVALS * i))
    }
}

/// The stage each check gives one reading, `(kind, direction, stage)`; 0 where normal. Where
/// the settings leave the range or the largest change open, the `learned` limits (if any yet)
/// stand in (`hour`: the reading's local hour of the week, where learned changes differ).
pub(crate) fn judge(
    state: &mut CheckState,
    settings: &SeriesSettings,
    learned: Option<&Limits>,
    (ts, hour): (Timestamp, usize),
    value: f64,
) -> [(AlarmKind, Direction, u8); 5] {
    let min = settings.min.or(learned.map(|l| l.min));
    let max = settings.max.or(learned.map(|l| l.max));
    let range_high = max.is_some_and(|m| value > m);
    let range_low = min.is_some_and(|m| value < m);
    let (mut jump_high, mut jump_low) = (false, false);
    if let Some((last_ts, _)) = state.last
        && ts > last_ts
    {
        state.add_gap(ts - last_ts);
    }
    match state.last {
        Some((last_ts, last_value)) if last_value == value => {
            state.same_since.get_or_insert(last_ts);
        }
        Some((last_ts, last_value)) => {
            state.same_since = None;
            let gap = ts - last_ts;
            // The change allowed over `gap`: a configured rate per minute (a gap under a
            // minute allows a minute's change), or the learned step per typical interval.
            let allowed = match (settings.max_rate, learned) {
                (Some(rate), _) => Some(rate * gap.max(60) as f64 / 60.0),
                (None, Some(l)) => {
                    let interval = l.interval.max(1);
                    Some(l.step_at(hour) * gap.max(interval) as f64 / interval as f64)
                }
                (None, None) => None,
            };
            if let Some(allowed) = allowed {
                let change = value - last_value;
                jump_high = change > allowed;
                jump_low = -change > allowed;
            }
        }
        None => state.same_since = None,
    }
    // A value the series rests at (a pump off) is never stuck, nor is zero: a meter reads 0
    // when nothing flows (its low-flow cut-off), while a frozen sensor repeats its last value.
    let resting = value == 0.0 || learned.is_some_and(|l| l.resting.contains(&value));
    let stuck = !resting
        && state
            .same_since
            .is_some_and(|since| ts - since >= state.stuck_after(settings));
    state.last = Some((ts, value));
    let stage = |b: bool, s: u8| if b { s } else { 0 };
    [
        (AlarmKind::Range, Direction::High, stage(range_high, 4)),
        (AlarmKind::Range, Direction::Low, stage(range_low, 4)),
        (AlarmKind::Stuck, Direction::None, stage(stuck, 3)),
        (AlarmKind::Jump, Direction::High, stage(jump_high, 3)),
        (AlarmKind::Jump, Direction::Low, stage(jump_low, 3)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SeriesSettings {
        let mut s = SeriesSettings::new("flow_rate", "m3/h", true);
        (s.min, s.max, s.max_rate) = (Some(0.0), Some(100.0), Some(10.0));
        s
    }

    fn stage_of(checks: &[(AlarmKind, Direction, u8); 5], kind: AlarmKind, d: Direction) -> u8 {
        checks
            .iter()
            .find(|c| c.0 == kind && c.1 == d)
            .map_or(0, |c| c.2)
    }

    #[test]
    fn stuck_starts_after_the_configured_minutes_of_identical_values() {
        let (s, mut state) = (settings(), CheckState::default());
        for minute in 0..=30 {
            let checks = judge(&mut state, &s, None, (minute * 60, 0), 42.0);
            let expected = if minute >= 30 { 3 } else { 0 };
            assert_eq!(
                stage_of(&checks, AlarmKind::Stuck, Direction::None),
                expected,
                "minute {minute}"
            );
        }
        let checks = judge(&mut state, &s, None, (31 * 60, 0), 42.5);
        assert_eq!(stage_of(&checks, AlarmKind::Stuck, Direction::None), 0);
    }

    #[test]
    fn windows_are_never_shorter_than_the_series_sampling_allows() {
        let (s, mut state) = (settings(), CheckState::default());
        // Minute data: the configured windows hold (15 and 30 minutes).
        for minute in 0..20 {
            judge(&mut state, &s, None, (minute * 60, 0), minute as f64);
        }
        assert_eq!(state.interval(), Some(60));
        assert_eq!(state.stale_after(&s), 15 * 60);
        // Hourly data: stale after 3 hours, stuck after 4 hours of identical values (5
        // readings), not after 2 equal readings.
        let mut state = CheckState::default();
        for hour in 0..12 {
            judge(&mut state, &s, None, (hour * 3600, 0), hour as f64);
        }
        assert_eq!(state.stale_after(&s), 3 * 3600);
        for hour in 12..16 {
            let checks = judge(&mut state, &s, None, (hour * 3600, 0), 42.0);
            assert_eq!(
                stage_of(&checks, AlarmKind::Stuck, Direction::None),
                0,
                "{hour}"
            );
        }
        let checks = judge(&mut state, &s, None, (16 * 3600, 0), 42.0);
        assert_eq!(stage_of(&checks, AlarmKind::Stuck, Direction::None), 3);
    }

    #[test]
    fn range_and_jump_have_directions() {
        let (s, mut state) = (settings(), CheckState::default());
        judge(&mut state, &s, None, (0, 0), 50.0);
        let up = judge(&mut state, &s, None, (60, 0), 61.0);
        assert_eq!(stage_of(&up, AlarmKind::Jump, Direction::High), 3);
        let down = judge(&mut state, &s, None, (120, 0), 50.5);
        assert_eq!(stage_of(&down, AlarmKind::Jump, Direction::Low), 3);
        // 10 per minute is the limit (a tenth of the range); over 2 minutes 19 is fine.
        let slow = judge(&mut state, &s, None, (240, 0), 69.5);
        assert_eq!(stage_of(&slow, AlarmKind::Jump, Direction::High), 0);
        let high = judge(&mut state, &s, None, (300, 0), 100.5);
        assert_eq!(stage_of(&high, AlarmKind::Range, Direction::High), 4);
        let low = judge(&mut state, &s, None, (360, 0), -0.1);
        assert_eq!(stage_of(&low, AlarmKind::Range, Direction::Low), 4);
        // Exactly on the limits is inside the range.
        let edge = judge(&mut state, &s, None, (420, 0), 0.0);
        assert_eq!(stage_of(&edge, AlarmKind::Range, Direction::Low), 0);
    }

    #[test]
    fn the_clock_follows_daylight_saving() {
        let mut clock = LocalClock::new(chrono_tz::Europe::Rome);
        // 2024-03-31 00:59:00 UTC is 01:59 CET; a minute later it is 03:00 CEST.
        let before = 1_711_846_740;
        assert_eq!(clock.local(before).to_string(), "2024-03-31 01:59:00");
        assert_eq!(clock.local(before + 60).to_string(), "2024-03-31 03:00:00");
    }
}
