//! How a series is sampled, as every check sees it: its last reading, its typical interval, and
//! the run of identical values it is in.
//!
//! Windows are times, and never shorter than the series' own sampling allows: a series read
//! every hour cannot be stale after 15 minutes, nor stuck after two equal readings. The typical
//! interval is the median of [`GAPS`] recent intervals between readings; stale needs at least
//! [`STALE_INTERVALS`] of them without a reading, stuck at least [`STUCK_INTERVALS`] of them of
//! identical values (minute data: 3 and 4 minutes, under the defaults of 15 and 30).

use hydrowatch_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::SeriesSettings;

/// Intervals between readings the typical interval is the median of.
pub(crate) const GAPS: usize = 9;
/// Typical intervals without a reading before a series can be stale.
pub(crate) const STALE_INTERVALS: i64 = 3;
/// Typical intervals of identical values before a series can be stuck.
pub(crate) const STUCK_INTERVALS: i64 = 4;

/// What the detector remembers of a series' sampling between readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sampling {
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

impl Sampling {
    /// The series' typical interval between readings (seconds), once one is known.
    pub(crate) fn interval(&self) -> Option<i64> {
        self.interval
    }

    /// Takes a reading newer than the last; returns the reading before it.
    pub(crate) fn add(&mut self, ts: Timestamp, value: f64) -> Option<(Timestamp, f64)> {
        let previous = self.last;
        match previous {
            Some((last_ts, last_value)) => {
                if ts > last_ts {
                    self.add_gap(ts - last_ts);
                }
                if last_value == value {
                    self.same_since.get_or_insert(last_ts);
                } else {
                    self.same_since = None;
                }
            }
            None => self.same_since = None,
        }
        self.last = Some((ts, value));
        previous
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
    pub(crate) fn stuck_after(&self, settings: &SeriesSettings) -> i64 {
        let configured = i64::from(settings.stuck_minutes) * 60;
        self.interval()
            .map_or(configured, |i| configured.max(STUCK_INTERVALS * i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_never_shorter_than_the_series_sampling_allows() {
        let s = SeriesSettings::new("flow_rate", "m3/h", true);
        // Minute data: the configured windows hold (15 and 30 minutes).
        let mut sampling = Sampling::default();
        for minute in 0..20 {
            sampling.add(minute * 60, minute as f64);
        }
        assert_eq!(sampling.interval(), Some(60));
        assert_eq!(sampling.stale_after(&s), 15 * 60);
        assert_eq!(sampling.stuck_after(&s), 30 * 60);
        // Hourly data: stale after 3 hours, stuck after 4 hours.
        let mut sampling = Sampling::default();
        for hour in 0..12 {
            sampling.add(hour * 3600, hour as f64);
        }
        assert_eq!(sampling.stale_after(&s), 3 * 3600);
        assert_eq!(sampling.stuck_after(&s), 4 * 3600);
    }

    #[test]
    fn a_run_of_identical_values_starts_at_its_first_reading() {
        let mut sampling = Sampling::default();
        assert_eq!(sampling.add(0, 1.0), None);
        assert_eq!(sampling.add(60, 2.0), Some((0, 1.0)));
        assert_eq!(sampling.same_since, None);
        sampling.add(120, 2.0);
        sampling.add(180, 2.0);
        assert_eq!(sampling.same_since, Some(60));
        sampling.add(240, 2.5);
        assert_eq!(sampling.same_since, None);
    }
}
