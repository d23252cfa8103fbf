//! When the daemon's jobs are due, on the device's local wall clock (design.md, Scheduling).
//!
//! Pure: "now" is what the caller says (the wall clock, or the readings' time in a replay).
//! A job is due when its most recent scheduled instant is later than its last successful run,
//! so after downtime a missed job runs once, not once per missed day. A job whose last run
//! failed is due again [`RETRY_SECONDS`] after it. A job that never ran is due at once, except
//! the weekly retraining: models are trained when first needed, and retrained from the first
//! scheduled time after that.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::{hour_phase, hour_start, local_date};
use hydrowatch_store::JobRun;

/// Seconds after a failed run before the job is tried again.
pub const RETRY_SECONDS: i64 = 15 * 60;

/// A job's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// Daily at a local time.
    Day(NaiveTime),
    /// Every hour at this minute.
    Hour(u32),
    /// Weekly on a weekday at a local time.
    Week(Weekday, NaiveTime),
}

/// The first instant at local time `t` on `date` (the next existing minute inside a
/// daylight-saving gap; the earlier of a repeated hour).
pub fn at_local(date: NaiveDate, t: NaiveTime, tz: Tz) -> Timestamp {
    let start = date.and_time(t);
    (0..=120)
        .find_map(|m| {
            tz.from_local_datetime(&(start + Duration::minutes(m)))
                .earliest()
        })
        .map_or(start.and_utc().timestamp(), |t| t.timestamp())
}

impl Every {
    /// The most recent scheduled instant at or before `now`.
    pub fn last_slot(self, now: Timestamp, tz: Tz) -> Timestamp {
        let today = local_date(now, tz);
        match self {
            Every::Hour(minute) => {
                let slot = hour_start(now, hour_phase(tz)) + i64::from(minute) * 60;
                if slot > now { slot - 3600 } else { slot }
            }
            Every::Day(t) => (0..3)
                .map(|back| at_local(today - Duration::days(back), t, tz))
                .find(|&s| s <= now)
                .unwrap_or(Timestamp::MIN),
            Every::Week(day, t) => (0..15)
                .map(|back| today - Duration::days(back))
                .filter(|d| d.weekday() == day)
                .map(|d| at_local(d, t, tz))
                .find(|&s| s <= now)
                .unwrap_or(Timestamp::MIN),
        }
    }

    /// Whether a job on this schedule is due at `now`, given its last run.
    pub fn is_due(self, now: Timestamp, tz: Tz, last: Option<&JobRun>) -> bool {
        match last {
            None => !matches!(self, Every::Week(..)),
            Some(run) if !run.ok => now >= run.at + RETRY_SECONDS,
            Some(run) => run.at < self.last_slot(now, tz),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn local(tz: Tz, s: &str) -> Timestamp {
        hydrowatch_core::LocalTimeParser::new(tz).parse(s).unwrap()
    }

    fn ok(at: Timestamp) -> JobRun {
        JobRun {
            at,
            ok: true,
            message: String::new(),
        }
    }

    #[test]
    fn a_missed_daily_job_runs_once_after_downtime() {
        let tz = chrono_tz::Asia::Seoul;
        let daily = Every::Day(t(0, 30));
        let ran = local(tz, "2024-07-01 00:31");
        // Down for three days: at start-up the job is due once...
        let back = local(tz, "2024-07-04 09:00");
        assert!(daily.is_due(back, tz, Some(&ok(ran))));
        // ...and after running, not again until the next 00:30.
        assert!(!daily.is_due(back + 60, tz, Some(&ok(back))));
        assert!(!daily.is_due(local(tz, "2024-07-05 00:29"), tz, Some(&ok(back))));
        assert!(daily.is_due(local(tz, "2024-07-05 00:30"), tz, Some(&ok(back))));
        // Never run: due at once.
        assert!(daily.is_due(back, tz, None));
    }

    #[test]
    fn a_failed_job_is_retried_after_the_retry_interval() {
        let tz = chrono_tz::UTC;
        let failed = JobRun {
            at: 1_000_000,
            ok: false,
            message: "no readings".into(),
        };
        let daily = Every::Day(t(0, 30));
        assert!(!daily.is_due(1_000_000 + RETRY_SECONDS - 1, tz, Some(&failed)));
        assert!(daily.is_due(1_000_000 + RETRY_SECONDS, tz, Some(&failed)));
    }

    #[test]
    fn slots_follow_local_time_across_daylight_saving() {
        let tz = chrono_tz::Europe::Rome;
        let daily = Every::Day(t(2, 30)); // 02:30 does not exist on 2024-03-31
        let now = local(tz, "2024-03-31 12:00");
        assert_eq!(
            hydrowatch_core::time::format_local(daily.last_slot(now, tz), tz),
            "2024-03-31 03:00"
        );
        let hourly = Every::Hour(5);
        let slot = hourly.last_slot(local(tz, "2024-03-31 12:04"), tz);
        assert_eq!(
            hydrowatch_core::time::format_local(slot, tz),
            "2024-03-31 11:05"
        );
        let weekly = Every::Week(Weekday::Sun, t(2, 0));
        let slot = weekly.last_slot(local(tz, "2024-04-03 12:00"), tz);
        assert_eq!(
            hydrowatch_core::time::format_local(slot, tz),
            "2024-03-31 03:00"
        );
        // A weekly job never run waits for its first slot.
        assert!(!weekly.is_due(local(tz, "2024-04-03 12:00"), tz, None));
    }
}
