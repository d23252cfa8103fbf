//! Plausible values learned from a series' own history, for the system checks the
//! configuration leaves open: the physical range (`min`, `max`), the largest plausible change
//! between two readings (`max_rate`), and the values the series rests at (a pump's 0 while it
//! is off, a closed valve's reading) that are not a stuck sensor however long they last.
//!
//! Every limit is invariant to the unit: a series in metres of head and the same series in bar
//! learn limits that differ by the same factor, so they raise the same alarms.
//!
//! - Range: the 0.1th and 99.9th percentiles of the history, widened on each side by half their
//!   distance plus a quarter of the larger magnitude; not below 0 for a series never negative.
//! - Change: the largest change between consecutive readings (at the typical interval) of each
//!   day, whose 90th percentile over the days, times [`STEP_MARGIN`], is the limit. A change that
//!   recurs every day (a pump starting, a valve schedule, a tariff or pattern step) is inside it
//!   wherever in the day it happens. Changes that recur at the same hour of the week (a weekly
//!   flush) raise the limit at that hour: per hour of the week, the largest change within an
//!   hour of it in each week of the history, the second largest of those weeks (it happened at
//!   least twice), times the same margin. One larger than both is a jump.
//! - Rest: values held for at least [`REST_READINGS`] readings and [`REST_SECONDS`], in at least
//!   [`REST_SPELLS`] separate spells (a pump cycling; a stuck sensor is one spell).

use hydrowatch_core::time::DAY;
use std::collections::BTreeMap;

use hydrowatch_core::Timestamp;
use serde::{Deserialize, Serialize};

/// What the history says is plausible for a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Lowest plausible value.
    pub min: f64,
    /// Highest plausible value.
    pub max: f64,
    /// Largest plausible change between readings `interval` seconds apart (infinite: no limit
    /// learned yet).
    #[serde(with = "unbounded")]
    pub max_step: f64,
    /// Per local hour of the week (Monday 00:00 first): the largest plausible change between
    /// readings `interval` apart there, where weekly recurring changes make it larger than
    /// `max_step`. Empty before two weeks of history.
    #[serde(default, with = "unbounded_each")]
    pub weekly_step: Vec<f64>,
    /// The typical interval between readings, seconds.
    pub interval: i64,
    /// Values the series rests at for long spells (never `stuck` there).
    pub resting: Vec<f64>,
}

/// An infinite limit ("none learned yet") is written `null`: JSON has no infinity, and a state
/// saved with one must read back (a young series' first criteria have no largest change; before
/// this, such a state made the daemon refuse to start again).
mod unbounded {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// [`unbounded`] for each value of a list.
mod unbounded_each {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(xs: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(xs.iter().map(|x| x.is_finite().then_some(*x)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?
            .into_iter()
            .map(|x| x.unwrap_or(f64::INFINITY))
            .collect())
    }
}

/// The day-to-day largest change is multiplied by this to give the limit.
pub(crate) const STEP_MARGIN: f64 = 1.5;
/// Fewest readings of a resting spell.
const REST_READINGS: usize = 3;
/// Shortest resting spell, seconds.
const REST_SECONDS: i64 = 600;
/// Resting spells at the same value this many times make it a resting value.
const REST_SPELLS: usize = 2;
/// Most resting values kept (the most frequent).
const MAX_RESTING: usize = 16;
/// Days need this share of their expected readings to give their largest change.
const FULL_DAY: f64 = 0.5;

impl Limits {
    /// Learns the limits from `readings` (finite values, sorted by time, at least two days for
    /// the change limit) at local `minutes` of the week (one per reading), read every `interval`
    /// seconds (the median gap). `None` with fewer than 30 readings.
    pub fn learn(readings: &[(Timestamp, f64)], minutes: &[u32], interval: i64) -> Option<Limits> {
        if readings.len() < 30 {
            return None;
        }

        let mut values: Vec<f64> = readings.iter().map(|r| r.1).collect();
        let lo = quantile(&mut values, 0.001);
        let hi = quantile(&mut values, 0.999);
        let magnitude = lo.abs().max(hi.abs());
        let margin = 0.5 * (hi - lo) + 0.25 * magnitude;
        let never_negative = values.iter().all(|v| *v >= 0.0);
        let min = if never_negative {
            (lo - margin).max(0.0)
        } else {
            lo - margin
        };
        let max = hi + margin;

        // The largest change of each day, and of each hour of each week, between readings at
        // most 1.5 intervals apart; indexed from the first day and week (a map per reading
        // cost a tenth of a refit).
        let first_day = readings[0].0.div_euclid(DAY);
        let first_week = readings[0].0.div_euclid(7 * DAY);
        let last = readings[readings.len() - 1].0;
        let days = (last.div_euclid(DAY) - first_day + 1) as usize;
        let weeks = (last.div_euclid(7 * DAY) - first_week + 1) as usize;
        let mut daily: Vec<(f64, usize)> = vec![(0.0, 0); days];
        let mut weekly: Vec<Option<f64>> = vec![None; weeks * 168];
        for (i, w) in readings.windows(2).enumerate() {
            if w[1].0 - w[0].0 <= interval + interval / 2 {
                let change = (w[1].1 - w[0].1).abs();
                let day = &mut daily[(w[1].0.div_euclid(DAY) - first_day) as usize];
                day.0 = day.0.max(change);
                day.1 += 1;
                let hour = minutes[i + 1] as usize / 60 % 168;
                let week = (w[1].0.div_euclid(7 * DAY) - first_week) as usize;
                let cell = weekly[week * 168 + hour].get_or_insert(0.0);
                *cell = cell.max(change);
            }
        }
        let per_day = DAY as f64 / interval.max(1) as f64;
        let mut maxima: Vec<f64> = daily
            .iter()
            .filter(|(_, n)| *n as f64 >= FULL_DAY * per_day)
            .map(|(m, _)| *m)
            .collect();
        // Quantised or flat series change by nothing most days: a change of 2% of the
        // magnitude is never a jump.
        let floor = 0.02 * magnitude;
        let max_step = if maxima.is_empty() {
            f64::INFINITY
        } else {
            (STEP_MARGIN * quantile(&mut maxima, 0.9)).max(floor)
        };
        // A series that never changed (all zeros) has no limit to learn.
        let max_step = if max_step > 0.0 {
            max_step
        } else {
            f64::INFINITY
        };
        Some(Limits {
            min,
            max,
            max_step,
            weekly_step: weekly_steps(&weekly, max_step),
            interval,
            resting: resting_values(readings),
        })
    }

    /// The largest plausible change between readings `interval` apart at local `hour` of the
    /// week (0 = Monday 00:00-01:00).
    pub fn step_at(&self, hour: usize) -> f64 {
        self.weekly_step
            .get(hour)
            .copied()
            .unwrap_or(self.max_step)
            .max(self.max_step)
    }
}

/// Per hour of the week, the change that recurred there (within an hour) in at least two
/// weeks, times the margin, where above `max_step`; empty with fewer than two weeks. `weekly`:
/// the largest change per week and hour of the week, `None` where no reading was.
fn weekly_steps(weekly: &[Option<f64>], max_step: f64) -> Vec<f64> {
    let weeks: Vec<&[Option<f64>]> = weekly
        .chunks(168)
        .filter(|w| w.iter().any(Option::is_some))
        .collect();
    if weeks.len() < 2 {
        return Vec::new();
    }
    (0..168)
        .map(|hour| {
            let mut per_week: Vec<f64> = weeks
                .iter()
                .map(|w| {
                    [167, 0, 1]
                        .iter()
                        .filter_map(|d| w[(hour + d) % 168])
                        .fold(0.0, f64::max)
                })
                .collect();
            per_week.sort_by(|a, b| b.total_cmp(a));
            (STEP_MARGIN * per_week[1]).max(max_step)
        })
        .collect()
}

/// Values held for at least [`REST_SPELLS`] resting spells, most frequent first.
fn resting_values(readings: &[(Timestamp, f64)]) -> Vec<f64> {
    let mut spells: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    let mut start = 0;
    for end in 1..=readings.len() {
        if end < readings.len() && readings[end].1 == readings[start].1 {
            continue;
        }
        let (t0, v) = readings[start];
        let t1 = readings[end - 1].0;
        if end - start >= REST_READINGS && t1 - t0 >= REST_SECONDS {
            spells.entry(v.to_bits()).or_insert((v, 0)).1 += 1;
        }
        start = end;
    }
    let mut values: Vec<(usize, f64)> = spells
        .into_values()
        .filter(|(_, n)| *n >= REST_SPELLS)
        .map(|(v, n)| (n, v))
        .collect();
    values.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
    values.truncate(MAX_RESTING);
    values.into_iter().map(|(_, v)| v).collect()
}

/// The `q` quantile (nearest rank) of `values`; reorders them.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    let k = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable_by(k, f64::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_without_a_learned_change_read_back_from_json() {
        let l = Limits {
            min: 0.0,
            max: 222.82,
            max_step: f64::INFINITY,
            weekly_step: vec![3.0, f64::INFINITY],
            interval: 60,
            resting: vec![],
        };
        let text = serde_json::to_string(&l).unwrap();
        assert!(text.contains("\"max_step\":null"), "{text}");
        assert_eq!(serde_json::from_str::<Limits>(&text).unwrap(), l);
        // States saved before the weekly steps existed still read.
        let old = r#"{"min":0.0,"max":1.0,"max_step":2.0,"interval":60,"resting":[]}"#;
        assert!(
            serde_json::from_str::<Limits>(old)
                .unwrap()
                .weekly_step
                .is_empty()
        );
    }

    /// Minutes of the week of readings from Monday 00:00 UTC (1970-01-05).
    fn minutes(readings: &[(Timestamp, f64)]) -> Vec<u32> {
        readings
            .iter()
            .map(|(t, _)| ((t - 4 * 86_400).rem_euclid(7 * 86_400) / 60) as u32)
            .collect()
    }

    /// Two weeks of minute readings: a diurnal wave with a step of 30 at 06:00 every day, and a
    /// pump-off spell at 0 from 02:00 to 03:00.
    fn history(scale: f64) -> Vec<(Timestamp, f64)> {
        (0..14 * 1440)
            .map(|m: i64| {
                let minute_of_day = m % 1440;
                let wave =
                    50.0 + 10.0 * ((minute_of_day as f64) / 1440.0 * std::f64::consts::TAU).sin();
                let step = if minute_of_day >= 360 { 30.0 } else { 0.0 };
                let noise = ((m * 7919) % 13) as f64 * 0.05;
                let v = if (120..180).contains(&minute_of_day) {
                    0.0
                } else {
                    wave + step + noise
                };
                (m * 60, v * scale)
            })
            .collect()
    }

    #[test]
    fn a_daily_step_and_a_pump_off_spell_are_normal() {
        let h = history(1.0);
        let l = Limits::learn(&h, &minutes(&h), 60).unwrap();
        assert_eq!(l.interval, 60);
        assert_eq!(l.min, 0.0, "never negative");
        assert!(l.max > 90.0 && l.max < 200.0, "{l:?}");
        // The daily step is inside the limit, twice it is not.
        assert!(l.max_step > 80.0 && l.max_step < 160.0, "{l:?}");
        assert_eq!(l.resting, vec![0.0]);
    }

    #[test]
    fn limits_scale_with_the_unit() {
        let (m, b) = (history(10.2), history(1.0));
        let metres = Limits::learn(&m, &minutes(&m), 60).unwrap();
        let bar = Limits::learn(&b, &minutes(&b), 60).unwrap();
        for (m, b) in [
            (metres.min, bar.min),
            (metres.max, bar.max),
            (metres.max_step, bar.max_step),
        ] {
            assert!((m - 10.2 * b).abs() <= 1e-9 * m.abs().max(1.0), "{m} {b}");
        }
    }

    #[test]
    fn a_single_stuck_spell_is_not_a_resting_value() {
        let mut h: Vec<(Timestamp, f64)> = (0..3 * 1440)
            .map(|m: i64| (m * 60, 10.0 + (m % 7) as f64))
            .collect();
        for r in h.iter_mut().skip(1000).take(60) {
            r.1 = 12.5;
        }
        assert!(
            Limits::learn(&h, &minutes(&h), 60)
                .unwrap()
                .resting
                .is_empty()
        );
    }

    #[test]
    fn a_change_recurring_at_an_hour_of_the_week_is_normal_there_only() {
        // Four weeks of minute readings from a Monday; on the Tuesdays of two of the weeks a
        // flush adds 8 at 02:00 for ten minutes (too rare for the daily limit).
        let h: Vec<(Timestamp, f64)> = (0..28 * 1440)
            .map(|m: i64| {
                let week_minute = m % (7 * 1440);
                let flush =
                    m / (7 * 1440) % 2 == 0 && (1440 + 120..1440 + 130).contains(&week_minute);
                let v = 10.0 + (m % 5) as f64 * 0.05 + if flush { 8.0 } else { 0.0 };
                (4 * 86_400 + m * 60, v)
            })
            .collect();
        let l = Limits::learn(&h, &minutes(&h), 60).unwrap();
        assert!(l.max_step < 1.0, "{l:?}");
        assert!(l.step_at(24 + 2) > 8.0, "Tuesday 02:00: {l:?}");
        assert!(l.step_at(24 + 1) > 8.0, "an hour's leeway");
        assert!(l.step_at(2 * 24 + 2) < 1.0, "Wednesday 02:00");
    }
}
