//! Criteria: what a series' value is expected to be at each local hour of the week, and how far
//! it normally strays. Robust statistics (median, and the median absolute deviation scaled by
//! 1.4826 so that it estimates a standard deviation under normal noise), so the events inside
//! the fitting span (a burst, a stuck sensor) barely move them.
//!
//! The spread is not that of the raw values around the expected ones: demand drifts for hours
//! (weather, a holiday, an event in town), so raw deviations are long-correlated and a threshold
//! on them is crossed for hours at a time, several times a week, with nothing wrong. The detector
//! therefore follows the current level of the deviation with an exponential average over
//! [`LEVEL_MINUTES`] and judges each reading's deviation from expected-plus-level; the spread
//! is fitted on exactly those residuals (the same recursion run over the fitting span), so the
//! percentiles stay calibrated. A sudden change (a burst, a spike, a failing sensor) stands out
//! at once; the level is not updated from readings judged abnormal, so it does not absorb them.
//!
//! The level is followed in the value's unit, or as a share of the expected value where that
//! leaves smaller residuals on the fitting span (demand that scales day by day, so that after an
//! hourly pattern step a warm day is still "10% above", not "5 m3/h above"). Between cell
//! centres the expectation is interpolated, except across a boundary where the history steps
//! (a pattern step, a pump on a schedule): there it changes at once. Each hour of the day's
//! spread is at least what its residuals reach on a fifth of the days (a pump switching at a
//! different time each day is normal there; a burst on a day or two in the history is not).
//!
//! A series that switches between states (a pump through its meter, see the switches module)
//! has its expectations fitted on its base, the readings less the switches taken before them,
//! and its residuals with each switch taken as the new level, as the detector takes them.
//!
//! Levels, chosen by the history available: hour of week (168 cells) from 21 days on, hour of
//! day (24) from 2 days, one global cell from 30 readings; with less, no criteria (readings are
//! not staged yet). Each cell's spread has a floor of a tenth of the global spread, so a cell of
//! near-identical values cannot turn ordinary noise into a critical stage.

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::DAY;
use serde::{Deserialize, Serialize};

use crate::Limits;
use crate::clock::LocalClock;
use crate::stats::{median_of, robust};
use crate::switches::{self, Recent, Switch};

/// How finely the criteria are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 168 cells: Monday 00:00 ... Sunday 23:00.
    HourOfWeek,
    /// 24 cells.
    HourOfDay,
    /// One cell.
    Global,
}

/// Fitted criteria of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// When they were fitted.
    pub fitted_at: Timestamp,
    /// Their resolution.
    pub level: Level,
    /// Minutes per cell of `expected` (15 for minute data, 60 for sparser readings).
    pub step: u32,
    /// Where in a cell of `expected`, and in an hourly cell of `spread`, its readings lie on
    /// average (minutes from the cell's start): the point its value belongs to.
    pub centres: (f64, f64),
    /// Expected value per cell of `step` minutes.
    pub expected: Vec<f64>,
    /// Per cell of `expected`: whether the series steps at its start (a pattern step, a pump
    /// or valve on a schedule), so the expectation changes there at once instead of linearly
    /// between the neighbouring cells' centres. Empty: no steps.
    #[serde(default)]
    pub steps: Vec<bool>,
    /// Spread (a robust standard deviation) per hourly cell.
    pub spread: Vec<f64>,
    /// Readings they were fitted on.
    pub samples: usize,
    /// Whether the level follows the deviation as a share of the expected value (demand that
    /// scales day by day: the weather, a holiday) rather than in the value's unit; chosen at
    /// each fit by which leaves the smaller residuals.
    #[serde(default)]
    pub relative: bool,
    /// Whole days of history they were fitted on.
    #[serde(default = "a_month")]
    pub days: u32,
    /// The plausible range, change and resting values learned from the same readings.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The steps of a change of state (a pump, a valve) that recur in the history: taken as
    /// the new state's level, not judged (see the switches module).
    #[serde(default)]
    pub switches: Vec<Switch>,
}

/// Criteria saved before `days` was recorded were fitted on the default 28 days.
fn a_month() -> u32 {
    28
}
/// Time constant of the level of the deviation, minutes.
pub(crate) const LEVEL_MINUTES: f64 = 60.0;
/// Readings further apart than this restart the level at zero.
const LEVEL_RESET_SECONDS: i64 = 3 * 3600;

/// The weight of a new residual in the level after `seconds` since the last one. Readings come
/// at a steady interval, so the last gap's weight is remembered (an `exp` per reading was a
/// tenth of a refit).
fn level_weight(seconds: i64) -> f64 {
    thread_local! {
        static LAST: std::cell::Cell<(i64, f64)> = const { std::cell::Cell::new((-1, 0.0)) };
    }
    LAST.with(|last| {
        let (gap, weight) = last.get();
        if gap == seconds {
            return weight;
        }
        let weight = 1.0 - (-(seconds.max(0) as f64) / (60.0 * LEVEL_MINUTES)).exp();
        last.set((seconds, weight));
        weight
    })
}

/// Follows the level of the deviations: returns the residual of `deviation` from the level
/// before it, and updates the level when `learn`.
pub(crate) fn follow_level(
    level: &mut Option<(Timestamp, f64)>,
    ts: Timestamp,
    deviation: f64,
    learn: bool,
) -> f64 {
    let current = match *level {
        Some((t, l)) if ts - t <= LEVEL_RESET_SECONDS => Some((t, l)),
        _ => None,
    };
    let before = current.map_or(0.0, |(_, l)| l);
    if learn {
        let updated = match current {
            Some((t, l)) => l + level_weight(ts - t) * (deviation - l),
            // The first reading after a gap starts the level where it is.
            None => deviation,
        };
        *level = Some((ts, updated));
    }
    deviation - before
}
/// Hour-of-week criteria from three weeks of history: with two, each cell is the mean of two
/// days, and the corpora's leak-free twins drew most of their false alarms in the third week.
const HOUR_OF_WEEK_DAYS: i64 = 21;
/// Tails are calibrated out of sample from this much history on (two weeks to fit on, the last
/// week judged).
const CALIBRATION_MIN_DAYS: i64 = 14 + CALIBRATION_DAYS;
const HOUR_OF_DAY_DAYS: i64 = 2;
const GLOBAL_MIN_READINGS: usize = 30;
/// Cells need this many readings each at their level, or the next coarser level is used.
const MIN_PER_CELL: usize = 2;

impl Criteria {
    /// Fits criteria on `readings` (any order; non-finite values ignored), or `None` when
    /// there are too few.
    pub fn fit(readings: &[(Timestamp, f64)], tz: Tz, fitted_at: Timestamp) -> Option<Criteria> {
        let mut clock = LocalClock::new(tz);
        let placed: Vec<Placed> = readings
            .iter()
            .map(|&(ts, v)| (ts, v, minute_of_week(clock.local(ts))))
            .collect();
        Criteria::fit_placed(&placed, fitted_at)
    }

    /// [`Criteria::fit`] on readings that carry their local minute of the week (a runner keeps
    /// them so, instead of converting every reading again at each daily refit).
    pub(crate) fn fit_placed(readings: &[Placed], fitted_at: Timestamp) -> Option<Criteria> {
        let mut placed: Vec<Placed> = readings
            .iter()
            .copied()
            .filter(|(_, v, _)| v.is_finite())
            .collect();
        if !placed.is_sorted_by_key(|r| r.0) {
            placed.sort_by_key(|r| r.0);
        }
        if placed.len() < GLOBAL_MIN_READINGS {
            return None;
        }
        let finite: Vec<(Timestamp, f64)> = placed.iter().map(|r| (r.0, r.1)).collect();
        let minutes: Vec<u32> = placed.iter().map(|r| r.2).collect();
        let first = finite[0].0;
        let last = finite[finite.len() - 1].0;
        let days = (last - first) / DAY;
        let values: Vec<f64> = finite.iter().map(|r| r.1).collect();
        // Quarter-hour expectations follow a steep morning rise; they need readings every few
        // minutes to fill.
        let mut gaps: Vec<i64> = finite
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .filter(|g| *g > 0)
            .collect();
        let spacing = if gaps.is_empty() {
            3600
        } else {
            let mid = gaps.len() / 2;
            *gaps.select_nth_unstable(mid).1
        };
        let step = if spacing <= 300 { 15 } else { 60 };
        let (global_expected, global_spread) = robust(&mut values.clone());
        let floor = (global_spread * 0.01).max(1e-9 * global_expected.abs().max(1.0));
        let global = Criteria {
            fitted_at,
            level: Level::Global,
            step: 60,
            centres: (0.0, 0.0),
            expected: vec![global_expected],
            steps: Vec::new(),
            relative: false,
            spread: vec![global_spread.max(floor)],
            samples: values.len(),
            days: u32::try_from(days).unwrap_or(u32::MAX),
            limits: Limits::learn(&finite, &minutes, spacing),
            switches: Vec::new(),
        };
        let by_cell = |level: Level| -> Option<Criteria> {
            let n = level.period() / 60;
            let mut buckets = vec![Vec::new(); level.period() / step as usize];
            for (m, v) in minutes.iter().zip(&values) {
                buckets[level.cell(*m, step)].push(*v);
            }
            if buckets.iter().any(|b| b.len() < MIN_PER_CELL) {
                return None;
            }
            let mut c = Criteria {
                expected: buckets.iter_mut().map(|b| median_of(b)).collect(),
                spread: vec![1.0; n],
                level,
                step,
                centres: (
                    minutes.iter().map(|m| f64::from(m % step)).sum::<f64>() / minutes.len() as f64,
                    minutes.iter().map(|m| f64::from(m % 60)).sum::<f64>() / minutes.len() as f64,
                ),
                ..global.clone()
            };
            let (steps, mut expected) = steps_of(&c, &minutes, &values);
            c.steps = steps;
            let cell = |m: u32| level.cell(m, step);
            let scheduled: Vec<bool> = (0..minutes.len())
                .map(|i| {
                    i > 0
                        && cell(minutes[i]) != cell(minutes[i - 1])
                        && c.steps.get(cell(minutes[i])).copied().unwrap_or(false)
                })
                .collect();
            let (learned, noise) = switches::learn(&finite, &scheduled, spacing);
            c.switches = learned;
            // A series that rests at one value most of the time (a pump's 0) has a spread of
            // nearly nothing there: its other state's noise is still ordinary.
            let floor = if c.switches.is_empty() {
                floor
            } else {
                floor.max(noise)
            };
            // A series that switches between states (a pump through its meter): the
            // expectations are of its base, without the states' offsets (each reading less the
            // sum of the switches taken before it), so that they never blend two states; the
            // detector takes each switch as the new level, here as on the device.
            let base = if c.switches.is_empty() {
                None
            } else {
                let base = switches::base(&c.switches, &finite, 3 * spacing);
                let mut buckets = vec![Vec::new(); c.expected.len()];
                for (m, v) in minutes.iter().zip(&base) {
                    buckets[cell(*m)].push(*v);
                }
                c.expected = buckets.iter_mut().map(|b| median_of(b)).collect();
                let (steps, on_base) = steps_of(&c, &minutes, &base);
                c.steps = steps;
                expected = on_base;
                Some(base)
            };
            let period = level.period() as u32;
            // The residuals the detector will judge: deviation from expected, less its level;
            // `expected`: each reading's expectation (computed once: the passes below share it).
            // A switch is taken as the new level here as the detector will take it.
            let residuals_of = |c: &Criteria, from: usize, expected: &[f64]| {
                let mut level_state = None;
                let mut recent = Recent::default();
                finite[from..]
                    .iter()
                    .zip(&minutes[from..])
                    .zip(expected)
                    .map(|((&(ts, v), m), e)| {
                        let d = c.deviation(v, *e);
                        if !c.switches.is_empty()
                            && recent
                                .switched(&c.switches, ts, (v, *e), 3 * spacing)
                                .is_some()
                        {
                            level_state = Some((ts, d));
                        }
                        (
                            *m,
                            c.in_units(follow_level(&mut level_state, ts, d, true), *e),
                        )
                    })
                    .collect::<Vec<(u32, f64)>>()
            };
            let mut all = residuals_of(&c, 0, &expected);
            // A relative level where it leaves smaller residuals (expectations well above 0).
            let lowest = c.expected.iter().copied().fold(f64::INFINITY, f64::min);
            let highest = c.expected.iter().copied().fold(0.0, f64::max);
            if lowest > RELATIVE_FLOOR * highest {
                let relative = Criteria {
                    relative: true,
                    ..c.clone()
                };
                let scaled = residuals_of(&relative, 0, &expected);
                let size = |r: &[(u32, f64)]| r.iter().map(|(_, x)| x.abs()).sum::<f64>();
                if size(&scaled) < size(&all) {
                    c = relative;
                    all = scaled;
                }
            }
            let mut per_cell = vec![Vec::new(); n];
            for (m, r) in &all {
                per_cell[level.cell(*m, 60)].push(*r);
            }
            // Each hour of the day's tail: where readings stray far in that hour on a fifth of
            // the days or more (a pump switching at a different time each day, a later
            // weekend), that is normal there. An event on a day or two (a burst in the
            // history) does not count.
            let first_day = first.div_euclid(DAY);
            let span_days = (last.div_euclid(DAY) - first_day + 1) as usize;
            let mut by_hour: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); span_days]; 24];
            for ((ts, _), (m, r)) in finite.iter().zip(&all) {
                by_hour[(*m as usize % 1440) / 60][(ts.div_euclid(DAY) - first_day) as usize]
                    .push(r.abs());
            }
            let tails: Vec<f64> = by_hour
                .iter_mut()
                .map(|days| {
                    let mut per_day: Vec<f64> = days
                        .iter_mut()
                        .filter(|r| !r.is_empty())
                        .map(|r| quantile(r, TAIL_IN_DAY))
                        .collect();
                    if per_day.len() < TAIL_MIN_DAYS {
                        0.0
                    } else {
                        quantile(&mut per_day, TAIL_ACROSS_DAYS) / Z_TAIL
                    }
                })
                .collect();
            c.spread = per_cell
                .iter_mut()
                .enumerate()
                .map(|(i, r)| robust(r).1.max(tails[i % 24]).max(floor))
                .collect();
            // The tails are calibrated out of sample where the span allows: the last week judged
            // with expectations fitted on the weeks before it, as the detector will be judging
            // tomorrow (in-sample residuals are smaller: the medians have seen them).
            let split = last - CALIBRATION_DAYS * DAY;
            let mut early = vec![Vec::new(); c.expected.len()];
            for (i, ((ts, v), m)) in finite.iter().zip(&minutes).enumerate() {
                if *ts < split {
                    early[level.cell(*m, step)].push(base.as_ref().map_or(*v, |b| b[i]));
                }
            }
            let held_out =
                if days >= CALIBRATION_MIN_DAYS && early.iter().all(|b| b.len() >= MIN_PER_CELL) {
                    let before = Criteria {
                        expected: early.iter_mut().map(|b| median_of(b)).collect(),
                        ..c.clone()
                    };
                    let from = finite.partition_point(|(ts, _)| *ts < split);
                    let expected: Vec<f64> = minutes[from..]
                        .iter()
                        .map(|m| before.expected_at(*m % period, &before.steps))
                        .collect();
                    residuals_of(&before, from, &expected)
                } else {
                    all
                };
            c.calibrate(&held_out);
            Some(c)
        };
        let fitted = if days >= HOUR_OF_WEEK_DAYS {
            by_cell(Level::HourOfWeek)
        } else {
            None
        }
        .or_else(|| {
            (days >= HOUR_OF_DAY_DAYS)
                .then(|| by_cell(Level::HourOfDay))
                .flatten()
        });
        Some(fitted.unwrap_or(global))
    }

    /// Widens the spreads so that, on the fitting span's own residuals, stage 4 (|z| at or
    /// above the 99th percentile) is as rare as under normal noise (2% of readings): real
    /// residuals have heavier tails than the MAD sees. Residuals beyond [`CALIBRATION_TRIM`]
    /// spreads are events in the span (a burst), not its tails, and are left out.
    fn calibrate(&mut self, residuals: &[(u32, f64)]) {
        let mut u: Vec<f64> = residuals
            .iter()
            .map(|(m, r)| r.abs() / self.at(*m).1)
            .filter(|u| *u < CALIBRATION_TRIM)
            .collect();
        if u.is_empty() {
            return;
        }
        let k = (0.98 * (u.len() - 1) as f64).round() as usize;
        let (_, q, _) = u.select_nth_unstable_by(k, f64::total_cmp);
        let factor = (*q / Z_STAGE_4).clamp(1.0, 10.0);
        self.spread.iter_mut().for_each(|s| *s *= factor);
    }

    /// The deviation of `value` from `expected` that the level follows.
    pub(crate) fn deviation(&self, value: f64, expected: f64) -> f64 {
        if self.relative {
            value / expected - 1.0
        } else {
            value - expected
        }
    }

    /// A residual in the value's unit at `expected`, as a deviation of these criteria (a share
    /// of `expected` for a relative level).
    pub(crate) fn deviation_of_units(&self, units: f64, expected: f64) -> f64 {
        if self.relative {
            units / expected
        } else {
            units
        }
    }

    /// A deviation (or a level) in the value's unit at `expected`.
    pub(crate) fn in_units(&self, deviation: f64, expected: f64) -> f64 {
        if self.relative {
            deviation * expected
        } else {
            deviation
        }
    }

    /// Expected value and spread at `minute` of the local week (0 = Monday 00:00), each
    /// interpolated linearly between the centres of its cells, so that a steep morning rise is
    /// followed between them, except across a step (see `steps`), where the expectation is its
    /// own cell's.
    pub fn at(&self, minute: u32) -> (f64, f64) {
        if self.level == Level::Global {
            return (self.expected[0], self.spread[0]);
        }
        let period = self.level.period() as u32;
        let minute = minute % period;
        (
            self.expected_at(minute, &self.steps),
            interpolate(&self.spread, minute, 60, self.centres.1),
        )
    }

    /// The expectation at `minute` (of the period) with step boundaries `steps`.
    fn expected_at(&self, minute: u32, steps: &[bool]) -> f64 {
        // `minute` is within the period and the centre within a cell, so the position is at
        // least -1 and below the number of cells: no remainders needed (this runs for every
        // reading of every refit).
        let cells = &self.expected;
        let n = cells.len();
        let position = (f64::from(minute) - self.centres.0) / f64::from(self.step);
        let (i0, f) = if position < 0.0 {
            (n - 1, position + 1.0)
        } else {
            let lower = position as usize;
            (lower.min(n - 1), position - lower as f64)
        };
        let i1 = if i0 + 1 == n { 0 } else { i0 + 1 };
        // The boundary between the two centres is the start of cell `i1`.
        if steps.get(i1).copied().unwrap_or(false) {
            return cells[(minute / self.step) as usize % n];
        }
        cells[i0] * (1.0 - f) + cells[i1] * f
    }
}

/// An hour of a day strays as far as this quantile of its residuals ...
const TAIL_IN_DAY: f64 = 0.95;
/// ... and as far as this quantile of the days' is normal in that hour ...
const TAIL_ACROSS_DAYS: f64 = 0.8;
/// ... at this |z|.
const Z_TAIL: f64 = 1.959_964;
/// Fewest days of an hour before its tail counts.
const TAIL_MIN_DAYS: usize = 3;

/// The `q` quantile (nearest rank) of `values`; reorders them.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    let k = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable_by(k, f64::total_cmp).1
}

/// A relative level is tried only where every expectation is above this share of the
/// highest (a series that drops to 0, a pump's, has no share to follow).
const RELATIVE_FLOOR: f64 = 0.05;

/// Residuals beyond this many (uncalibrated) spreads are left out of the calibration: on the
/// hydraulic corpus, whose events take 6% of its time, they widened every spread 2×, and 10%
/// bursts went unseen (docs/DETECTION.md).
const CALIBRATION_TRIM: f64 = 12.0;

/// Days at the end of a fitting span judged out of sample to calibrate the tails.
const CALIBRATION_DAYS: i64 = 7;

/// |z| where stage 4 starts at the default stages (the 99th percentile).
const Z_STAGE_4: f64 = 2.326_347_9;

/// A reading with its local minute of the week.
pub(crate) type Placed = (Timestamp, f64, u32);

/// Minute of the local week, 0 = Monday 00:00.
pub(crate) fn minute_of_week(local: chrono::NaiveDateTime) -> u32 {
    local.weekday().num_days_from_monday() * 1440 + local.hour() * 60 + local.minute()
}

/// The cell whose start lies between the centres `minute` is interpolated between.
fn crossed_boundary(minute: u32, step: u32, centre: f64, cells: usize) -> usize {
    let lower = ((f64::from(minute) - centre) / f64::from(step)).floor() as i64;
    (lower + 1).rem_euclid(cells as i64) as usize
}

/// Boundaries where the readings step: those whose readings (between the two cells' centres)
/// the two cells' own expectations fit with less than [`STEP_GAIN`] of the absolute error of
/// the linear interpolation. A smooth rise keeps the interpolation; an hourly pattern step, or
/// a pump started on a schedule, steps. Also returns each reading's expectation with them.
fn steps_of(c: &Criteria, minutes: &[u32], values: &[f64]) -> (Vec<bool>, Vec<f64>) {
    let n = c.expected.len();
    let period = c.level.period() as u32;
    let mut errors = vec![(0.0, 0.0); n];
    // Per reading: its boundary and both expectations, so that each reading's expectation
    // under the chosen steps needs no second pass.
    let mut both = Vec::with_capacity(values.len());
    for (m, v) in minutes.iter().zip(values) {
        let m = m % period;
        let b = crossed_boundary(m, c.step, c.centres.0, n);
        let linear = interpolate(&c.expected, m, c.step, c.centres.0);
        let stepped = c.expected[(m / c.step) as usize % n];
        errors[b].0 += (v - linear).abs();
        errors[b].1 += (v - stepped).abs();
        both.push((b, linear, stepped));
    }
    let steps: Vec<bool> = errors
        .iter()
        .map(|(linear, stepped)| *stepped < STEP_GAIN * linear)
        .collect();
    let expected = both
        .iter()
        .map(|&(b, linear, stepped)| if steps[b] { stepped } else { linear })
        .collect();
    (steps, expected)
}

/// A boundary steps when stepping there leaves less than this share of the interpolation's
/// error.
const STEP_GAIN: f64 = 0.8;

/// The value at `minute` of a cyclic series of cells of `step` minutes whose values belong to
/// `centre` minutes into each cell, linear between those points.
fn interpolate(cells: &[f64], minute: u32, step: u32, centre: f64) -> f64 {
    let n = cells.len();
    let position = (f64::from(minute) - centre) / f64::from(step);
    let lower = position.floor();
    let f = position - lower;
    // Integer remainder: a float one costs the fitting passes a tenth of their time.
    let i0 = (lower as i64).rem_euclid(n as i64) as usize;
    cells[i0] * (1.0 - f) + cells[(i0 + 1) % n] * f
}

impl Level {
    /// Minutes in one cycle.
    fn period(self) -> usize {
        match self {
            Level::HourOfWeek => 7 * 1440,
            Level::HourOfDay => 1440,
            Level::Global => 60,
        }
    }

    /// The cell of `step` minutes holding `minute_of_week`.
    fn cell(self, minute_of_week: u32, step: u32) -> usize {
        (minute_of_week as usize % self.period()) / step as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;

    #[test]
    fn the_level_follows_the_history_available() {
        let tz = chrono_tz::UTC;
        // A value per hour equal to the hour of day, with a little weekday variation.
        let series = |days: i64| -> Vec<(Timestamp, f64)> {
            (0..days * 24)
                .map(|h| (h * HOUR, (h % 24) as f64 + (h / 24 % 7) as f64 * 0.01))
                .collect()
        };
        assert!(Criteria::fit(&series(1)[..20], tz, 0).is_none());
        assert_eq!(
            Criteria::fit(&series(2)[..40], tz, 0).unwrap().level,
            Level::Global
        );
        let day = Criteria::fit(&series(3), tz, 0).unwrap();
        assert_eq!(day.level, Level::HourOfDay);
        assert!((day.at(7 * 60).0 - 7.0).abs() < 0.05);
        let week = Criteria::fit(&series(22), tz, 0).unwrap();
        assert_eq!(week.level, Level::HourOfWeek);
        // 1970-01-01 was a Thursday (weekday 3): its hour 5 carries 0.00 of weekday variation.
        assert!((week.at(3 * 1440 + 5 * 60).0 - 5.0).abs() < 1e-9);
        // Between two cell centres the expectation is interpolated.
        assert!((week.at(3 * 1440 + 5 * 60 + 30).0 - 5.5).abs() < 1e-9);
        assert!(week.spread.iter().all(|s| *s > 0.0));
    }
}
