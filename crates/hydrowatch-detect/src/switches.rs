//! Switches: the steps a series makes when something it depends on changes state (a pump
//! starting or stopping, a valve, a booster), learned from the series' own history as the sizes
//! of the steps between its readings that recur on several days. A step of a learned size is
//! a change of state, normal at any hour: the level jumps to the new state instead of judging
//! the step as an outlier. A pump switching when the tank says so, at a different time
//! each day, is then no alarm; a burst, whose step is of no recurring size, still is.
//!
//! Invariants: sizes are in the value's unit and signed (a pump starting and stopping are two
//! switches); only steps beyond [`STEP_SPREADS`] robust spreads of the series' ordinary
//! changes count, and a size only when steps of it were seen on [`MIN_DAYS`] different days,
//! at moments spread over the hour (steps that keep to one minute of the hour are a schedule or
//! a demand pattern's step, which the expectation is for); at most [`MAX_PER_SIGN`] sizes each
//! way; none from readings further apart than [`MAX_SPACING`]. Without such steps, no switch is
//! learned and nothing changes.

use hydrowatch_core::Timestamp;
use hydrowatch_core::time::DAY;
use serde::{Deserialize, Serialize};

use crate::stats::MAD_SCALE;

/// One recurring step: its range of sizes (value units, signed) and how often it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    /// Smallest size (for a fall, the one nearest 0).
    pub low: f64,
    /// Largest size.
    pub high: f64,
    /// Steps of this size in the fitting span.
    pub seen: u32,
}

/// A step counts when beyond this many robust spreads of the ordinary changes between readings.
const STEP_SPREADS: f64 = 8.0;
/// Steps within this factor of each other are one size.
const SIZE_FACTOR: f64 = 1.6;
/// A size must recur on this many different days.
const MIN_DAYS: usize = 5;
/// Sizes learned each way, at most.
const MAX_PER_SIGN: usize = 3;
/// A learned range is widened by this share each way when matching.
const MARGIN: f64 = 0.2;
/// Readings further apart than this do not see a switch as a step (an hourly mean of a pump that
/// ran for part of the hour is a blend of two states): no switches are learned from them.
const MAX_SPACING: i64 = 900;
/// Steps of one size of which more than this share of the way from an even spread over the
/// minutes of the hour the readings fall on to all on one minute are a schedule, not a change
/// of state.
const SAME_MINUTE: f64 = 0.5;

/// Learns the recurring steps of `readings` (time, value; sorted), and the ordinary noise of one
/// reading (the robust spread of the changes between readings that changed at all, over the
/// square root of 2; 0 where none is seen). Consecutive readings further apart than twice
/// `spacing` make no step, nor do those where `scheduled` is true for the later one (a boundary
/// where the expectation itself steps: a schedule, a demand pattern's hourly step).
pub(crate) fn learn(
    readings: &[(Timestamp, f64)],
    scheduled: &[bool],
    spacing: i64,
) -> (Vec<Switch>, f64) {
    if spacing > MAX_SPACING {
        return (Vec::new(), 0.0);
    }
    let steps: Vec<(f64, i64)> = (1..readings.len())
        .filter(|&i| readings[i].0 - readings[i - 1].0 <= 2 * spacing.max(1) && !scheduled[i])
        .map(|i| (readings[i].1 - readings[i - 1].1, readings[i].0))
        .filter(|(s, _)| s.is_finite())
        .collect();
    if steps.len() < 100 {
        return (Vec::new(), 0.0);
    }
    // The ordinary change: of the readings that changed at all (a pump's flow rests at 0 most
    // of the time, without a change).
    let mut sizes: Vec<f64> = steps
        .iter()
        .map(|(s, _)| s.abs())
        .filter(|s| *s > 0.0)
        .collect();
    if sizes.len() < 50 {
        return (Vec::new(), 0.0);
    }
    // The upper middle size (not the mean of the two middle ones).
    let k = sizes.len() / 2;
    let (_, median, _) = sizes.select_nth_unstable_by(k, f64::total_cmp);
    let noise = MAD_SCALE * *median;
    if noise <= 0.0 {
        return (Vec::new(), 0.0);
    }
    let mut learned = Vec::new();
    for sign in [1.0, -1.0] {
        let mut large: Vec<(f64, i64)> = steps
            .iter()
            .map(|&(s, day)| (s * sign, day))
            .filter(|(s, _)| *s > STEP_SPREADS * noise)
            .collect();
        large.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut attempts = 0;
        while learned
            .iter()
            .filter(|s: &&Switch| s.low.signum() == sign)
            .count()
            < MAX_PER_SIGN
            && attempts < 4 * MAX_PER_SIGN
            && !large.is_empty()
        {
            attempts += 1;
            // The densest window of sizes within SIZE_FACTOR of its smallest.
            let mut best = (0, 0);
            let mut end = 0;
            for start in 0..large.len() {
                end = end.max(start);
                while end < large.len() && large[end].0 <= large[start].0 * SIZE_FACTOR {
                    end += 1;
                }
                if end - start > best.1 - best.0 {
                    best = (start, end);
                }
            }
            let group = &large[best.0..best.1];
            let mut days: Vec<i64> = group.iter().map(|g| g.1.div_euclid(DAY)).collect();
            days.sort_unstable();
            days.dedup();
            if days.len() < MIN_DAYS {
                break;
            }
            let mut per_minute = [0usize; 60];
            for g in group {
                per_minute[(g.1.rem_euclid(3600) / 60) as usize] += 1;
            }
            let most = per_minute.iter().copied().max().unwrap_or(0);
            let slots = (3600 / spacing.clamp(60, 3600)) as f64;
            let even = 1.0 / slots;
            if most as f64 > (even + SAME_MINUTE * (1.0 - even)) * group.len() as f64 {
                large.drain(best.0..best.1);
                continue;
            }
            let (low, high) = (group[0].0, group[group.len() - 1].0);
            learned.push(if sign > 0.0 {
                Switch {
                    low,
                    high,
                    seen: group.len() as u32,
                }
            } else {
                Switch {
                    low: -low,
                    high: -high,
                    seen: group.len() as u32,
                }
            });
            large.drain(best.0..best.1);
        }
    }
    (learned, noise / std::f64::consts::SQRT_2)
}

/// Whether `step` (value units, signed) is of a learned switch's size.
pub(crate) fn matches(switches: &[Switch], step: f64) -> bool {
    switches.iter().any(|s| {
        let (a, b) = (s.low.abs(), s.high.abs());
        step.signum() == s.low.signum()
            && step.abs() >= a * (1.0 - MARGIN)
            && step.abs() <= b * (1.0 + MARGIN)
    })
}

/// The offset of a series' current state from its starting one: the sum of the switches taken
/// (at most the largest state's size either way, and back to exactly 0 when it comes within half
/// the smallest switch of it, so that neither a switch missed once nor the noise of each step
/// shifts every reading after it). The series less it is its base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Offset(f64);

impl Offset {
    /// Takes a switch's `step`.
    pub(crate) fn take(&mut self, switches: &[Switch], step: f64) {
        let sum = |sign: f64| {
            switches
                .iter()
                .filter(|s| s.high * sign > 0.0)
                .map(|s| s.high.abs())
                .sum::<f64>()
        };
        let largest = sum(1.0).max(sum(-1.0));
        let smallest = switches
            .iter()
            .map(|s| s.low.abs())
            .fold(f64::INFINITY, f64::min);
        self.0 = (self.0 + step).clamp(-largest, largest);
        if self.0.abs() < smallest / 2.0 {
            self.0 = 0.0;
        }
    }

    /// The offset.
    pub(crate) fn value(self) -> f64 {
        self.0
    }
}

/// The series without its states' offsets: each of `readings`' values less the [`Offset`] of the
/// switches taken up to it.
pub(crate) fn base(switches: &[Switch], readings: &[(Timestamp, f64)], gap: i64) -> Vec<f64> {
    let mut recent = Recent::default();
    let mut offset = Offset::default();
    readings
        .iter()
        .map(|&(ts, v)| {
            if let Some(step) = recent.switched(switches, ts, (v, 0.0), gap) {
                offset.take(switches, step);
            }
            v - offset.value()
        })
        .collect()
}

/// The last two readings of a series (time, value, expected value), to see a switch taken over
/// one reading or two (a pump's soft start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Recent(Vec<(Timestamp, f64, f64)>);

impl Recent {
    /// Whether `value` at `ts` stepped by a learned size since the reading before (or the one
    /// before that), readings at most `gap` apart, or its expectation `expected` did (the
    /// state most days are in changed, not the series): the value's step then; records them.
    pub(crate) fn switched(
        &mut self,
        switches: &[Switch],
        ts: Timestamp,
        (value, expected): (f64, f64),
        gap: i64,
    ) -> Option<f64> {
        let mut later = ts;
        let mut switched = None;
        for &(t, v, e) in self.0.iter().rev() {
            if later - t > gap {
                break;
            }
            if matches(switches, value - v) || matches(switches, expected - e) {
                switched = Some(value - v);
                break;
            }
            later = t;
        }
        self.0.push((ts, value, expected));
        if self.0.len() > 2 {
            self.0.remove(0);
        }
        // A switch taken is the new state: the steps before it are not compared again.
        if switched.is_some() {
            self.0.drain(..self.0.len() - 1);
        }
        switched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 28 days of minute readings of noise of about 1 around 0, with a pump adding 40 for 3
    /// hours at a different time each day.
    fn pumped() -> Vec<(Timestamp, f64)> {
        let mut readings = Vec::new();
        for m in 0..28 * 1440_i64 {
            let day = m / 1440;
            let on = 200 + (day * 37) % 600;
            let pump = if (on..on + 180).contains(&(m % 1440)) {
                40.0
            } else {
                0.0
            };
            let noise = ((m * 7919) % 13) as f64 / 6.0 - 1.0;
            readings.push((m * 60, pump + noise));
        }
        readings
    }

    #[test]
    fn a_pump_switching_at_moving_times_is_learned_as_two_switches() {
        let readings = pumped();
        let (s, noise) = learn(&readings, &vec![false; readings.len()], 60);
        assert!(noise > 0.1 && noise < 1.0, "{noise}");
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(matches(&s, 40.5) && matches(&s, -39.0));
        assert!(!matches(&s, 20.0) && !matches(&s, 80.0) && !matches(&s, 2.0));
    }

    #[test]
    fn a_step_seen_on_few_days_is_no_switch() {
        // The same noise without the pump.
        let mut readings = pumped();
        for (_, d) in &mut readings {
            if *d > 20.0 {
                *d -= 40.0;
            }
        }
        // A burst of 25 on two days.
        for (i, (_, d)) in readings.iter_mut().enumerate() {
            if (3 * 1440..3 * 1440 + 120).contains(&i) || (9 * 1440..9 * 1440 + 60).contains(&i) {
                *d += 25.0;
            }
        }
        assert!(
            learn(&readings, &vec![false; readings.len()], 60)
                .0
                .is_empty()
        );
    }

    #[test]
    fn steps_where_the_expectation_steps_are_no_switch() {
        let readings = pumped();
        // Every step of the pump falls on a scheduled boundary: nothing to learn.
        let scheduled: Vec<bool> = (0..readings.len())
            .map(|i| i > 0 && (readings[i].1 - readings[i - 1].1).abs() > 20.0)
            .collect();
        assert!(learn(&readings, &scheduled, 60).0.is_empty());
    }

    #[test]
    fn a_switch_over_two_readings_is_seen() {
        let s = vec![Switch {
            low: 38.0,
            high: 42.0,
            seen: 20,
        }];
        let mut r = Recent::default();
        assert_eq!(r.switched(&s, 0, (0.0, 0.0), 180), None);
        assert_eq!(r.switched(&s, 60, (20.0, 0.0), 180), None);
        assert_eq!(r.switched(&s, 120, (40.0, 0.0), 180), Some(40.0));
        // Too far apart: no step.
        assert_eq!(r.switched(&s, 1000, (0.0, 0.0), 180), None);
        // The expectation stepped by a switch (most days the pump starts now), the series not.
        assert_eq!(r.switched(&s, 1060, (0.0, 40.0), 180), Some(0.0));
    }

    #[test]
    fn the_base_is_the_series_without_its_states() {
        let readings = pumped();
        let (s, _) = learn(&readings, &vec![false; readings.len()], 60);
        let base = base(&s, &readings, 180);
        let worst = base.iter().map(|b| b.abs()).fold(0.0, f64::max);
        // At most the noise of the two readings each step is measured between, never adding up.
        assert!(worst <= 3.0, "the pump remains: {worst} {s:?}");
    }
}
