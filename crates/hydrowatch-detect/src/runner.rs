//! The detector in time: a [`Runner`] keeps the recent readings each series' criteria are fitted
//! on, refits them when due (daily at a local time, or once on an initial span), and ticks the
//! detector before each minute's readings. `hydrowatch detect` and the daemon drive the same
//! runner, so a backfill and live operation judge alike. Pure: time is what the caller says.

use hydrowatch_core::time::DAY;
use std::collections::VecDeque;

use chrono::{NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::local_date;

use crate::clock::LocalClock;
use crate::criteria::{Placed, minute_of_week};
use crate::{Alert, Criteria, Detector, Judgement, Verdict};

/// When criteria are (re)fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refit {
    /// Daily at this local time, from the trailing days before it.
    Daily(NaiveTime),
    /// Once, on every reading before this instant, never again.
    Once(Timestamp),
}

/// A detector with its criteria's history and refit schedule.
#[derive(Debug)]
pub struct Runner {
    /// The detector.
    pub detector: Detector,
    tz: Tz,
    /// Per series, the readings the criteria are fitted on, each with its local minute of the
    /// week (converted once, not at every refit).
    buffers: Vec<VecDeque<Placed>>,
    clock: LocalClock,
    refit: Refit,
    /// Daily: the next refit; once: whether it happened.
    next: Option<Timestamp>,
    done: bool,
    /// Series whose criteria were fitted since [`Runner::take_fitted`].
    fitted: Vec<usize>,
}

/// The first instant at local time `t` on `date` (the next existing minute inside a
/// daylight-saving gap).
fn at_local(date: NaiveDate, t: NaiveTime, tz: Tz) -> Timestamp {
    let start = date.and_time(t);
    (0..=120)
        .find_map(|m| {
            tz.from_local_datetime(&(start + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map_or(start.and_utc().timestamp(), |t| t.timestamp())
}

impl Runner {
    /// A runner for `detector` in zone `tz`.
    pub fn new(detector: Detector, tz: Tz, refit: Refit) -> Runner {
        let n = detector.settings().len();
        Runner {
            detector,
            tz,
            buffers: vec![VecDeque::new(); n],
            clock: LocalClock::new(tz),
            refit,
            next: None,
            done: false,
            fitted: Vec::new(),
        }
    }

    /// Remembers a reading from before the span to be judged, for the criteria only.
    pub fn remember(&mut self, series: usize, ts: Timestamp, value: f64) {
        let minute = minute_of_week(self.clock.local(ts));
        self.buffers[series].push_back((ts, value, minute));
    }

    /// Fits criteria now, at `at`, for the series that have none (a first run on stored data).
    pub fn fit_missing(&mut self, at: Timestamp) {
        if matches!(self.refit, Refit::Once(_)) {
            return;
        }
        for i in 0..self.buffers.len() {
            if self.detector.criteria(i).is_none() {
                let span: Vec<Placed> = self.buffers[i].iter().copied().collect();
                let fitted = Criteria::fit_placed(&span, at);
                if fitted.is_some() {
                    self.fitted.push(i);
                }
                self.detector.set_criteria(i, fitted);
            }
        }
    }

    /// Series whose criteria were fitted since the last call.
    pub fn take_fitted(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.fitted)
    }

    fn fit(&mut self, before: Timestamp, trailing: bool) {
        for (i, buffer) in self.buffers.iter_mut().enumerate() {
            let days = i64::from(self.detector.settings()[i].trailing_days);
            let from = if trailing {
                before - days * DAY
            } else {
                Timestamp::MIN
            };
            while buffer.front().is_some_and(|(t, _, _)| *t < from) {
                buffer.pop_front();
            }
            let span: Vec<Placed> = buffer
                .iter()
                .copied()
                .filter(|(t, _, _)| *t < before)
                .collect();
            let fitted = Criteria::fit_placed(&span, before);
            if fitted.is_some() {
                self.fitted.push(i);
            }
            if fitted.is_some() || trailing {
                self.detector.set_criteria(i, fitted);
            }
        }
    }

    /// Advances to `ts` (the time of the next readings): refits the criteria when due and
    /// ticks the detector, first at the moment each silence before `ts` passed its stale
    /// window (a file or a backlog with a gap raises its stale alarm when the live device
    /// would have, not when the next reading arrives). Returns the alarm transitions of the
    /// ticks (stale sensors, nights).
    pub fn advance(&mut self, ts: Timestamp) -> Vec<Alert> {
        match self.refit {
            Refit::Daily(at) => {
                let tz = self.tz;
                let following = |ts: Timestamp| {
                    let date = local_date(ts, tz);
                    let today = at_local(date, at, tz);
                    if today > ts {
                        today
                    } else {
                        at_local(date.succ_opt().unwrap_or(date), at, tz)
                    }
                };
                let due = *self.next.get_or_insert_with(|| following(ts));
                if ts >= due {
                    self.next = Some(following(ts));
                    self.fit(due, true);
                }
            }
            Refit::Once(until) => {
                if !self.done && ts >= until {
                    self.done = true;
                    self.fit(until, false);
                    self.buffers.iter_mut().for_each(VecDeque::clear);
                }
            }
        }
        let mut alerts = Vec::new();
        // Each earlier tick opens one series' stale alarm, so as many as there are series.
        for _ in 0..self.buffers.len() {
            match self.detector.stale_before(ts) {
                Some(due) => alerts.extend(self.detector.tick(due)),
                None => break,
            }
        }
        alerts.extend(self.detector.tick(ts));
        alerts
    }

    /// Judges one reading of series `series` (call [`Runner::advance`] to its time first).
    pub fn observe(&mut self, series: usize, ts: Timestamp, value: f64) -> (Judgement, Vec<Alert>) {
        let (judgement, alerts) = self.detector.observe(series, ts, value);
        if !self.done && judgement.verdict == Verdict::Judged {
            let minute = self.detector.last_minute();
            self.buffers[series].push_back((ts, value, minute));
        }
        (judgement, alerts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeriesSettings;

    #[test]
    fn criteria_are_refitted_daily_at_the_local_time_across_daylight_saving() {
        let tz = chrono_tz::Europe::Rome;
        let settings = vec![SeriesSettings::new("x", "", false)];
        let at = NaiveTime::from_hms_opt(0, 10, 0).unwrap();
        let mut r = Runner::new(Detector::new(tz, settings).unwrap(), tz, Refit::Daily(at));
        // Hourly readings over the spring change (2024-03-31).
        let start = at_local(
            NaiveDate::from_ymd_opt(2024, 3, 27).unwrap(),
            NaiveTime::MIN,
            tz,
        );
        let mut fits = Vec::new();
        for h in 0..24 * 8 {
            let ts = start + h * 3600;
            r.advance(ts);
            if !r.take_fitted().is_empty() {
                fits.push(hydrowatch_core::time::format_local(ts, tz));
            }
            r.observe(0, ts, 50.0 + (h % 24) as f64);
        }
        // The first refit with 30 readings or more, then one a day at the first reading after
        // 00:10 local (01:00 here), also on the day the clocks go forward.
        assert_eq!(fits.first().map(String::as_str), Some("2024-03-29 01:00"));
        assert_eq!(fits.len(), 6, "{fits:?}");
        assert!(fits.iter().all(|t| t.ends_with("01:00")), "{fits:?}");
    }

    #[test]
    fn once_fits_on_the_initial_span_and_never_again() {
        let tz = chrono_tz::UTC;
        let settings = vec![SeriesSettings::new("x", "", false)];
        let mut r = Runner::new(
            Detector::new(tz, settings).unwrap(),
            tz,
            Refit::Once(48 * 3600),
        );
        let mut fitted_at = Vec::new();
        for h in 0..24 * 5 {
            let ts = h * 3600;
            r.advance(ts);
            fitted_at.extend(r.take_fitted().into_iter().map(|_| ts));
            r.observe(0, ts, (h % 24) as f64);
        }
        assert_eq!(fitted_at, vec![48 * 3600]);
        assert_eq!(r.detector.criteria(0).unwrap().fitted_at, 48 * 3600);
    }

    #[test]
    fn a_gap_in_a_file_is_stale_when_a_live_device_would_have_said_so() {
        // Two series read every minute, then no row for 40 minutes: the stale alarms open 15
        // minutes into the silence (stamped then), not when the next row arrives.
        let tz = chrono_tz::UTC;
        let settings = vec![
            SeriesSettings::new("a", "", false),
            SeriesSettings::new("b", "", false),
        ];
        let mut r = Runner::new(
            Detector::new(tz, settings).unwrap(),
            tz,
            Refit::Once(i64::MAX),
        );
        let mut alerts = Vec::new();
        let minutes = (0..60).chain(100..110);
        for m in minutes {
            let ts = m * 60;
            alerts.extend(r.advance(ts));
            for series in 0..2 {
                alerts.extend(r.observe(series, ts, 40.0 + (m % 5) as f64).1);
            }
        }
        let opened: Vec<(String, Timestamp)> = alerts
            .iter()
            .filter(|a| a.kind == crate::AlarmKind::Stale && a.state == crate::Transition::Opened)
            .map(|a| (a.series.clone(), a.time))
            .collect();
        assert_eq!(opened, vec![("a".into(), 74 * 60), ("b".into(), 74 * 60)]);
        assert!(
            alerts
                .iter()
                .filter(|a| a.kind == crate::AlarmKind::Stale)
                .any(|a| a.state == crate::Transition::Cleared && a.time == 100 * 60)
        );
    }
}
