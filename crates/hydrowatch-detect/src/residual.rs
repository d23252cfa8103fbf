//! Forecast-residual alarms: the two halves of the product working together. Each local hour's
//! mean of a series is compared with the day-ahead forecast of that hour (its 10-90% band, which
//! the caller supplies from the forecasts it stores); a mean beyond the band by more than
//! [`MARGIN`] of its width is abnormal, and [`HOURS`] such hours in a row on the same side open
//! a `forecast` alarm (stage 3, high or low). One departure is one alarm: [`CLEAR_HOURS`] hours
//! in a row not beyond the widened band clear it (a persistent change whose hours hover about
//! the band's edge is one alarm, not one every few hours), and while one side's alarm is open,
//! the other side's does not open (a forecast that overshoots during the change is the same
//! departure). An hour without a
//! forecast is not judged: with no forecasts at all the check is off.
//!
//! A slow change the minute checks cannot see (a leak growing by day, a valve left half open,
//! a meter drifting) moves the hourly means away from what the forecaster expected yesterday.

use std::collections::BTreeMap;

use hydrowatch_core::Timestamp;
use serde::{Deserialize, Serialize};

/// The band is widened by this share of its width on each side before an hour is abnormal.
pub(crate) const MARGIN: f64 = 1.0;
/// Abnormal hours in a row before a `forecast` alarm opens.
pub(crate) const HOURS: u32 = 3;
/// Hours in a row not beyond the widened band before it clears: a whole day. A persistent change
/// hovers about the band, and the forecaster, retrained on the change's days, follows it for
/// a while and then overshoots: with 2 hours, the demo's leak opened a forecast alarm every few
/// hours; with 6, one every day or two.
pub(crate) const CLEAR_HOURS: u32 = 24;
/// An hour needs this share of the readings of the series' typical interval to have a mean.
const FULL_HOUR: f64 = 0.5;

/// The day-ahead forecast of one hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourForecast {
    /// Start of the hour.
    pub hour: Timestamp,
    /// Forecast hourly mean.
    pub value: f64,
    /// Lower end of the band.
    pub lower: f64,
    /// Upper end of the band.
    pub upper: f64,
}

/// One judged hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct JudgedHour {
    /// Its start.
    pub hour: Timestamp,
    /// Its mean.
    pub mean: f64,
    /// The forecast it was judged against.
    pub forecast: HourForecast,
    /// 1 above the widened band, -1 below, 0 inside.
    pub side: i8,
}

/// The hour being summed, saved across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HourSum {
    hour: Option<Timestamp>,
    sum: f64,
    count: u32,
}

impl HourSum {
    /// Adds a reading of the hour starting at `hour`; returns the hour it closed (start, sum,
    /// count) when the reading is in a later one.
    pub(crate) fn add(&mut self, hour: Timestamp, value: f64) -> Option<(Timestamp, f64, u32)> {
        let closed = self.close_before(hour);
        if self.hour.is_none() {
            *self = HourSum {
                hour: Some(hour),
                sum: 0.0,
                count: 0,
            };
        }
        self.sum += value;
        self.count += 1;
        closed
    }

    /// Closes the hour being summed if it started before `hour`.
    pub(crate) fn close_before(&mut self, hour: Timestamp) -> Option<(Timestamp, f64, u32)> {
        match self.hour {
            Some(h) if h < hour => {
                let closed = (h, self.sum, self.count);
                *self = HourSum::default();
                Some(closed)
            }
            _ => None,
        }
    }
}

/// Judges a closed hour against the forecasts: `None` when it has no forecast or too few
/// readings (`interval`: the series' typical interval, seconds).
pub(crate) fn judge_hour(
    forecasts: &BTreeMap<Timestamp, HourForecast>,
    (hour, sum, count): (Timestamp, f64, u32),
    interval: i64,
) -> Option<JudgedHour> {
    let forecast = *forecasts.get(&hour)?;
    let expected = (3600 / interval.clamp(1, 3600)) as f64;
    if f64::from(count) < FULL_HOUR * expected || count == 0 {
        return None;
    }
    if !(forecast.lower.is_finite() && forecast.upper.is_finite()) {
        return None;
    }
    let mean = sum / f64::from(count);
    let margin = MARGIN * (forecast.upper - forecast.lower).max(0.0);
    let side = if mean > forecast.upper + margin {
        1
    } else if mean < forecast.lower - margin {
        -1
    } else {
        0
    };
    Some(JudgedHour {
        hour,
        mean,
        forecast,
        side,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_closes_when_the_next_begins_and_is_judged_against_its_band() {
        let mut sum = HourSum::default();
        for minute in 0..60 {
            assert_eq!(sum.add(3600, 120.0 + f64::from(minute % 2)), None);
        }
        let closed = sum.add(7200, 100.0).unwrap();
        assert_eq!((closed.0, closed.2), (3600, 60));
        let band = HourForecast {
            hour: 3600,
            value: 100.0,
            lower: 95.0,
            upper: 105.0,
        };
        let forecasts = BTreeMap::from([(3600, band)]);
        // 120.5 is beyond 105 + the width (10).
        let judged = judge_hour(&forecasts, closed, 60).unwrap();
        assert_eq!(judged.side, 1);
        assert!((judged.mean - 120.5).abs() < 1e-9);
        // Inside the widened band (114); and no forecast, no judgement; too few readings neither.
        let hovering = judge_hour(&forecasts, (3600, 114.0 * 60.0, 60), 60).unwrap();
        assert_eq!(hovering.side, 0);
        assert!(judge_hour(&forecasts, (7200, 100.0, 1), 60).is_none());
        assert!(judge_hour(&forecasts, (3600, 120.0 * 10.0, 10), 60).is_none());
    }
}
