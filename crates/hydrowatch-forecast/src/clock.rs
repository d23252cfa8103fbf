//! The wall clock: every forecaster sees its history laid out in local clock hours, 24 to every
//! local day, so that "the same hour a week earlier" is the same local clock hour 7 local days
//! earlier across both daylight-saving changes; its forecast goes back to real hours at the end.
//! One transform, applied on the way in and inverted on the way out, for every forecaster.
//!
//! Invariants:
//! - slot `i` of [`WallClock::local`] is the local hour `start + i` hours, and its value is the
//!   mean of the real hours that start inside it: the repeated autumn hour is the mean of its
//!   two real hours; the skipped spring hour, which no real hour holds, is interpolated from the
//!   slots beside it (the one beside it where the other is unknown), never left as a gap;
//! - a real hour without a reading leaves its slot `NaN`, a gap for the gap rules as before;
//! - the local history ends before the slot of the first forecast hour, so it never holds part
//!   of a slot that is forecast (a history that ends between the two repeated autumn hours
//!   leaves the first of them out);
//! - each of the [`HORIZON`] real hours after the history falls in slot `0..=HORIZON` after the
//!   local history; slot `HORIZON` (reached only when the week ahead skips a spring hour) is the
//!   same hour of the week as slot 0 one week later, and takes slot 0's forecast;
//! - the local history's holidays are those its series observes ([`crate::calendar`]), judged
//!   on its last year whatever `tail` is: a fit and a forecast from the same history see the
//!   same days off.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::local_date;

use crate::calendar::{OBSERVED_DAYS, observed};
use crate::{Band, Forecast, ForecastError, HORIZON, History, Series, WEEK};

const HOUR: i64 = 3600;

/// A history re-laid on the local wall clock, and how its forecast goes back to real hours.
#[derive(Debug, Clone)]
pub struct WallClock {
    /// The history in local clock hours. Its zone is UTC and its times are the local clock's
    /// times written as if they were UTC: a forecaster's calendar arithmetic on it is the local
    /// clock's, with 24 hours to every day.
    pub local: History,
    /// For each real hour after the history, the local slot after `local`'s end it falls in.
    ahead: Vec<usize>,
    /// End of the real history: the first real forecast hour.
    end: Timestamp,
    /// The real zone.
    zone: Tz,
}

/// The local clock time (whole hour) of the real instant `ts` in `zone`.
fn local_hour(ts: Timestamp, zone: Tz) -> NaiveDateTime {
    let local = DateTime::from_timestamp(ts, 0)
        .map(|t| t.with_timezone(&zone).naive_local())
        .unwrap_or_default();
    local
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .unwrap_or(local)
}

/// `t` as the timestamp it would be in UTC: how the local history writes local clock times.
fn as_utc(t: NaiveDateTime) -> Timestamp {
    t.and_utc().timestamp()
}

impl WallClock {
    /// Lays the last `tail` hours of `history` (all of it with `None`) on its local clock.
    /// Only hourly histories can be: another interval is an error.
    pub fn of(history: &History, tail: Option<usize>) -> Result<WallClock, ForecastError> {
        let s = &history.series;
        if s.step != HOUR {
            return Err(ForecastError::Input(format!(
                "forecasting works on hourly means, the series has intervals of {} s",
                s.step
            )));
        }
        let zone = history.timezone;
        let n = s.values.len();
        // Converted: the tail, and at least the year the holidays are judged on.
        let learn = OBSERVED_DAYS * 24 + 48;
        let from = tail.map_or(0, |t| n.saturating_sub(t.max(learn)));
        // The slot of every real hour from `from` to the end of the horizon, never decreasing
        // (a zone that once turned its clock back by more than an hour folds those hours into
        // one slot).
        let first = local_hour(s.time(from), zone);
        let mut slots = Vec::with_capacity(n - from + HORIZON);
        let mut last = 0i64;
        for i in from..n + HORIZON {
            let slot = ((as_utc(local_hour(s.time(i), zone)) - as_utc(first)) / HOUR).max(last);
            slots.push(slot);
            last = slot;
        }
        let first_forecast = slots[n - from];
        let len = first_forecast as usize;
        let mut sum = vec![0.0; len];
        let mut count = vec![0u32; len];
        let mut held = vec![false; len];
        for (k, &slot) in slots[..n - from].iter().enumerate() {
            let slot = slot as usize;
            if slot >= len {
                continue;
            }
            held[slot] = true;
            let v = s.values[from + k];
            if v.is_finite() {
                sum[slot] += v;
                count[slot] += 1;
            }
        }
        let mut values: Vec<f64> = sum
            .iter()
            .zip(&count)
            .map(|(s, &c)| if c == 0 { f64::NAN } else { s / f64::from(c) })
            .collect();
        // Slots that no real hour holds (the skipped spring hour): from the slots beside them.
        for i in (0..len).filter(|&i| !held[i]) {
            let before = (0..i).rev().find(|&j| held[j]).map(|j| values[j]);
            let after = (i + 1..len).find(|&j| held[j]).map(|j| values[j]);
            values[i] = match (before, after) {
                (Some(b), Some(a)) if b.is_finite() && a.is_finite() => (a + b) / 2.0,
                (Some(b), _) if b.is_finite() => b,
                (_, Some(a)) => a,
                _ => f64::NAN,
            };
        }
        let ahead = slots[n - from..]
            .iter()
            .map(|&slot| (slot - first_forecast) as usize)
            .collect();
        let mut local = History {
            series: Series {
                start: as_utc(first),
                step: HOUR,
                values,
            },
            timezone: chrono_tz::UTC,
            holidays: history.holidays.clone(),
        };
        local.holidays = observed(&local.tail(learn));
        if let Some(t) = tail {
            local = local.tail(t);
        }
        Ok(WallClock {
            local,
            ahead,
            end: s.end(),
            zone,
        })
    }

    /// The forecast in real hours from `local_points`, the [`HORIZON`] slots after the local
    /// history, with `band` applied per hour ahead.
    pub fn forecast(&self, local_points: &[f64], band: &Band, model: String) -> Forecast {
        let points = self.to_real(local_points);
        let (lower, upper) = band.apply(&points);
        Forecast {
            start: self.end,
            step: HOUR,
            points,
            lower,
            upper,
            model,
        }
    }

    /// The real hours' values from the [`HORIZON`] local slots after the local history.
    pub fn to_real(&self, local_points: &[f64]) -> Vec<f64> {
        let n = local_points.len().max(1);
        self.ahead
            .iter()
            .map(|&slot| local_points.get(slot % n).copied().unwrap_or(f64::NAN))
            .collect()
    }

    /// The first real instant of local slot `slot` (the local clock time, where it exists;
    /// inside a spring gap, the instant the clock jumped).
    pub fn real_time(&self, slot: usize) -> Timestamp {
        real_instant(self.local.series.time(slot), self.zone)
    }
}

/// The first real instant at the local clock time written as UTC `local` in `zone`.
fn real_instant(local: Timestamp, zone: Tz) -> Timestamp {
    let naive = DateTime::from_timestamp(local, 0)
        .unwrap_or_default()
        .naive_utc();
    (0..=4)
        .find_map(|q| {
            zone.from_local_datetime(&(naive + chrono::Duration::minutes(30 * q)))
                .earliest()
        })
        .map_or(local, |t| t.timestamp())
}

/// The local date of interval `i` of a real hourly history.
fn date_at(history: &History, i: usize) -> NaiveDate {
    local_date(history.series.time(i), history.timezone)
}

/// Indices `i` in `from..=to` of `history` whose hour starts a local day (local midnight, or
/// the first hour of a day whose clock skipped midnight): the origins of daily forecasts.
pub fn day_starts(history: &History, from: usize, to: usize) -> Vec<usize> {
    (from.max(1)..=to)
        .filter(|&i| date_at(history, i) != date_at(history, i - 1))
        .collect()
}

/// Indices `i` in `from..=to` of `history` whose hour starts a local Monday: the origins of
/// weekly forecasts.
pub fn week_starts(history: &History, from: usize, to: usize) -> Vec<usize> {
    day_starts(history, from, to)
        .into_iter()
        .filter(|&i| date_at(history, i).weekday() == Weekday::Mon)
        .collect()
}

/// The index of `history` where its last `weeks` local weeks start: the first hour at or after
/// the same local clock time `weeks` weeks before its end (whatever daylight saving did between).
pub fn weeks_before_end(history: &History, weeks: usize) -> usize {
    let s = &history.series;
    let n = s.values.len();
    let Ok(days) = i64::try_from(weeks * 7) else {
        return 0;
    };
    let cutoff = local_hour(s.end(), history.timezone) - chrono::Duration::days(days);
    let near = n.saturating_sub(weeks * WEEK + 2);
    (near..n)
        .find(|&i| local_hour(s.time(i), history.timezone) >= cutoff)
        .unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Rome;

    fn at(s: &str, zone: Tz) -> Timestamp {
        let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        zone.from_local_datetime(&t).earliest().unwrap().timestamp()
    }

    /// Real hours from `start`, each valued by its local clock hour (hour + 100 × day of month).
    fn clock_valued(start: &str, hours: usize, zone: Tz) -> History {
        let t0 = at(start, zone);
        let values = (0..hours)
            .map(|i| {
                let t = local_hour(t0 + i as i64 * HOUR, zone);
                f64::from(t.hour()) + 100.0 * f64::from(t.day())
            })
            .collect();
        History::hourly(t0, values, zone)
    }

    #[test]
    fn autumn_repeated_hour_is_averaged_and_spring_hour_interpolated() {
        // 2021-10-31 in Rome: 02:00 happens twice.
        let mut h = clock_valued("2021-10-30 00:00", 72, Rome);
        // The two real 02:00 hours of the 31st: 3102 and 3102 from the valuation; make them
        // differ to see the mean.
        let first_two = (at("2021-10-31 02:00", Rome) - h.series.start) / HOUR;
        h.series.values[first_two as usize] = 10.0;
        h.series.values[first_two as usize + 1] = 20.0;
        let wc = WallClock::of(&h, None).unwrap();
        assert_eq!(
            wc.local.series.values.len(),
            72 - 1,
            "one slot fewer than real hours"
        );
        assert_eq!(wc.local.series.values[24 + 2], 15.0);
        assert_eq!(wc.local.series.values[24 + 3], 3103.0);
        // 2022-03-27: 02:00 does not exist.
        let h = clock_valued("2022-03-26 00:00", 72, Rome);
        let wc = WallClock::of(&h, None).unwrap();
        let v = &wc.local.series.values;
        assert_eq!(v.len(), 72 + 1);
        assert_eq!(v[24 + 2], (2701.0 + 2703.0) / 2.0);
        assert_eq!((v[24 + 1], v[24 + 3]), (2701.0, 2703.0));
    }

    #[test]
    fn forecast_hours_map_to_their_local_slots() {
        // History ends at local midnight on Sunday 2022-03-27, which skips 02:00: 168 real
        // hours reach local slot 168.
        let h = clock_valued("2022-03-20 00:00", 168, Rome);
        let wc = WallClock::of(&h, Some(100)).unwrap();
        let local: Vec<f64> = (0..HORIZON).map(|i| i as f64).collect();
        let real = wc.to_real(&local);
        assert_eq!(&real[..3], &[0.0, 1.0, 3.0]);
        assert_eq!(real[HORIZON - 1], 0.0, "slot 168 is slot 0 a week later");
        assert_eq!(wc.real_time(0), at("2022-03-27 00:00", Rome) - 100 * HOUR);
        // Autumn: 168 real hours hold 167 local slots, the repeated hour twice.
        let h = clock_valued("2021-10-24 00:00", 168, Rome);
        let real = WallClock::of(&h, None).unwrap().to_real(&local);
        assert_eq!(&real[..5], &[0.0, 1.0, 2.0, 2.0, 3.0]);
        assert_eq!(real[HORIZON - 1], 166.0);
    }

    #[test]
    fn a_history_ending_inside_the_repeated_hour_leaves_it_to_the_forecast() {
        // Ends after the first 02:00 of 2021-10-31: that slot is incomplete and forecast.
        let h = clock_valued("2021-10-30 00:00", 24 + 3, Rome);
        let wc = WallClock::of(&h, None).unwrap();
        assert_eq!(wc.local.series.values.len(), 24 + 2);
        let local: Vec<f64> = (0..HORIZON).map(|i| i as f64).collect();
        assert_eq!(&wc.to_real(&local)[..2], &[0.0, 1.0]);
    }

    #[test]
    fn day_and_week_starts_follow_the_local_calendar() {
        let h = clock_valued("2021-10-25 00:00", 14 * 24, Rome);
        let days = day_starts(&h, 0, h.series.values.len() - 1);
        assert_eq!(days.len(), 13);
        // After the change on the 31st, a local day starts 25 real hours after the one before.
        assert_eq!(days[6] - days[5], 25);
        assert!(
            days.iter()
                .all(|&i| local_hour(h.series.time(i), Rome).hour() == 0)
        );
        let weeks = week_starts(&h, 0, h.series.values.len() - 1);
        assert_eq!(weeks, vec![days[6]]);
        assert_eq!(
            local_date(h.series.time(weeks[0]), Rome),
            NaiveDate::from_ymd_opt(2021, 11, 1).unwrap()
        );
        // Another interval than an hour is refused, not misread.
        let mut q = h.clone();
        q.series.step = 900;
        assert!(WallClock::of(&q, None).is_err());
    }
}
