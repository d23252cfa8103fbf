//! The local clock the detector reads hours and nights from.

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_daylight_saving() {
        let mut clock = LocalClock::new(chrono_tz::Europe::Rome);
        // 2024-03-31 00:59:00 UTC is 01:59 CET; a minute later it is 03:00 CEST.
        let before = 1_711_846_740;
        assert_eq!(clock.local(before).to_string(), "2024-03-31 01:59:00");
        assert_eq!(clock.local(before + 60).to_string(), "2024-03-31 03:00:00");
    }
}
