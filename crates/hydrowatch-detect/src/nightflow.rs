//! Minimum night flow, the classic leak indicator: at night consumption is lowest and most of
//! the flow is leakage, so a leak that grows over days shows as a night minimum that creeps up.
//!
//! Each night, the readings inside the local window (default 01:00-05:00) are averaged per
//! 10-minute slot; the night's minimum flow is the lowest slot mean (slots need half their
//! readings, for minute data; a night needs half its slots). When the window has passed, the
//! minimum is compared with the median of up to `nights` earlier normal nights: a rise by
//! `rise` or more is stage 2, twice that stage 3, three times stage 4, where `rise` is at
//! least twice the nights' own relative spread (real nights vary by 5-10% by themselves). Nights that raised the
//! indicator do not join the baseline, so a leak does not become the new normal.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

/// Night-flow settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NightSettings {
    /// Local start of the night window.
    pub start: NaiveTime,
    /// Local end (exclusive); may be before `start` for a window across midnight.
    pub end: NaiveTime,
    /// Relative rise over the baseline that is abnormal (0.1 = 10%).
    pub rise: f64,
    /// Earlier nights in the baseline.
    pub nights: usize,
    /// Fewest earlier nights before nights are judged.
    pub min_nights: usize,
}

impl Default for NightSettings {
    /// 01:00-05:00, 8% above the median of the last 14 normal nights, judged from 5 nights on.
    fn default() -> Self {
        NightSettings {
            start: NaiveTime::from_hms_opt(1, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(5, 0, 0).expect("valid time"),
            rise: 0.08,
            nights: 14,
            min_nights: 5,
        }
    }
}

impl NightSettings {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.start == self.end {
            return Err("the night window is empty (start = end)".into());
        }
        if self.rise.is_nan() || self.rise <= 0.0 {
            return Err(format!("rise {} must be positive", self.rise));
        }
        if self.nights == 0 || self.min_nights == 0 || self.min_nights > self.nights {
            return Err(format!(
                "min_nights {} must be 1 to nights ({})",
                self.min_nights, self.nights
            ));
        }
        Ok(())
    }

    /// The night `local` belongs to (the date the window starts on), if inside the window.
    fn night_of(&self, local: NaiveDateTime) -> Option<NaiveDate> {
        let t = local.time();
        if self.start < self.end {
            (self.start <= t && t < self.end).then(|| local.date())
        } else if t >= self.start {
            Some(local.date())
        } else if t < self.end {
            local.date().pred_opt()
        } else {
            None
        }
    }

    fn window_minutes(&self) -> i64 {
        let minutes = (self.end - self.start).num_minutes();
        if minutes > 0 {
            minutes
        } else {
            minutes + 24 * 60
        }
    }
}

/// One judged night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NightResult {
    /// The date the night's window started on.
    pub night: NaiveDate,
    /// Its minimum 10-minute mean flow.
    pub minimum: f64,
    /// Median minimum of the earlier normal nights (`None` while too few).
    pub baseline: Option<f64>,
    /// Stage 0-4.
    pub stage: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Accumulating {
    night: NaiveDate,
    /// Per 10-minute slot from the window start: sum and count of readings.
    slots: Vec<(f64, u32)>,
    /// Smallest spacing of the readings seen, in minutes (1 for minute data, 60 for hourly).
    spacing: Option<i64>,
    last_minute: Option<i64>,
}

/// Night-flow tracking of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NightFlow {
    current: Option<Accumulating>,
    /// Earlier nights: minimum, and whether it was abnormal; newest last.
    history: Vec<(NaiveDate, f64, bool)>,
}

const SLOT_MINUTES: i64 = 10;
/// The rise that is abnormal is at least this many robust spreads of the baseline nights
/// (relative to their median): 2 keeps the own simulator's slow leaks within 3 nights and
/// halves the real DMAs' night alarms (3 would cut them by 4 but find leaks after 7 nights).
const NOISE_SPREADS: f64 = 2.0;
const HISTORY_KEPT: usize = 60;

impl NightFlow {
    pub(crate) fn new() -> NightFlow {
        NightFlow {
            current: None,
            history: Vec::new(),
        }
    }

    /// Adds a reading at local time `local`; returns the night that ended before it, if any.
    pub(crate) fn observe(
        &mut self,
        settings: &NightSettings,
        local: NaiveDateTime,
        value: f64,
    ) -> Option<NightResult> {
        let finished = self.tick(settings, local);
        if let Some(night) = settings.night_of(local) {
            let slots = (settings.window_minutes() / SLOT_MINUTES).max(1) as usize;
            let acc = self.current.get_or_insert_with(|| Accumulating {
                night,
                slots: vec![(0.0, 0); slots],
                spacing: None,
                last_minute: None,
            });
            let minute = (local - night.and_time(settings.start)).num_minutes();
            if let Some(last) = acc.last_minute
                && minute > last
            {
                let gap = minute - last;
                acc.spacing = Some(acc.spacing.map_or(gap, |s| s.min(gap)));
            }
            acc.last_minute = Some(minute);
            let slot = ((minute / SLOT_MINUTES) as usize).min(acc.slots.len() - 1);
            acc.slots[slot].0 += value;
            acc.slots[slot].1 += 1;
        }
        finished
    }

    /// Closes the night being accumulated if `local` is past it.
    pub(crate) fn tick(
        &mut self,
        settings: &NightSettings,
        local: NaiveDateTime,
    ) -> Option<NightResult> {
        let acc = self.current.as_ref()?;
        if settings.night_of(local) == Some(acc.night) {
            return None;
        }
        let acc = self.current.take()?;
        Some(self.finish(settings, acc))
    }

    fn finish(&mut self, settings: &NightSettings, acc: Accumulating) -> NightResult {
        let spacing = acc.spacing.unwrap_or(SLOT_MINUTES).max(1);
        let per_slot = (SLOT_MINUTES / spacing).max(1) as u32;
        let full: Vec<f64> = acc
            .slots
            .iter()
            .filter(|(_, n)| *n * 2 >= per_slot)
            .map(|(sum, n)| sum / f64::from(*n))
            .collect();
        // Hourly data fills one slot in six: judge it on the slots it has.
        let expected_slots = if spacing >= SLOT_MINUTES {
            (acc.slots.len() as i64 * SLOT_MINUTES / spacing).max(1) as usize
        } else {
            acc.slots.len()
        };
        if full.len() * 2 < expected_slots {
            return NightResult {
                night: acc.night,
                minimum: f64::NAN,
                baseline: None,
                stage: 0,
            };
        }
        let minimum = full.iter().copied().fold(f64::INFINITY, f64::min);
        let mut normal: Vec<f64> = self
            .history
            .iter()
            .rev()
            .filter(|(_, _, abnormal)| !abnormal)
            .take(settings.nights)
            .map(|(_, m, _)| *m)
            .collect();
        let baseline = (normal.len() >= settings.min_nights).then(|| {
            normal.sort_by(f64::total_cmp);
            let n = normal.len();
            if n % 2 == 1 {
                normal[n / 2]
            } else {
                (normal[n / 2 - 1] + normal[n / 2]) / 2.0
            }
        });
        let stage = match baseline {
            Some(b) if b > 0.0 => {
                let rise = minimum / b - 1.0;
                // Nights that vary by themselves (real demand at night) need a larger rise.
                let mut deviations: Vec<f64> = normal.iter().map(|m| (m / b - 1.0).abs()).collect();
                deviations.sort_by(f64::total_cmp);
                let spread = 1.4826 * deviations[deviations.len() / 2];
                let r = settings.rise.max(NOISE_SPREADS * spread);
                if rise >= 3.0 * r {
                    4
                } else if rise >= 2.0 * r {
                    3
                } else if rise >= r {
                    2
                } else {
                    0
                }
            }
            _ => 0,
        };
        self.history.push((acc.night, minimum, stage > 0));
        if self.history.len() > HISTORY_KEPT {
            self.history.remove(0);
        }
        NightResult {
            night: acc.night,
            minimum,
            baseline,
            stage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32, minute: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 5, day)
            .unwrap()
            .and_hms_opt(hour, minute, 0)
            .unwrap()
    }

    /// Feeds one night of minute readings (flow `level` from 01:00 to 05:00, 3x outside) and
    /// the first reading after it; returns the result.
    fn night(nf: &mut NightFlow, s: &NightSettings, day: u32, level: f64) -> NightResult {
        let mut result = None;
        for minute in 0..24 * 60 {
            let (h, m) = (minute / 60, minute % 60);
            let v = if (1..5).contains(&h) {
                level
            } else {
                3.0 * level
            };
            if let Some(r) = nf.observe(s, at(day, h, m), v) {
                result = Some(r);
            }
        }
        result
            .or_else(|| nf.tick(s, at(day + 1, 0, 0)))
            .expect("the night ended")
    }

    #[test]
    fn a_rise_over_the_median_of_normal_nights_is_staged() {
        let s = NightSettings::default();
        let mut nf = NightFlow::new();
        for day in 1..=5 {
            let r = night(&mut nf, &s, day, 10.0);
            assert_eq!((r.stage, r.baseline), (0, None), "too few nights to judge");
            assert!((r.minimum - 10.0).abs() < 1e-9);
        }
        let r = night(&mut nf, &s, 6, 10.7);
        assert_eq!((r.stage, r.baseline), (0, Some(10.0)), "7% is normal");
        assert_eq!(
            night(&mut nf, &s, 7, 11.05).stage,
            2,
            "10.5% above 10.0 is stage 2"
        );
        assert_eq!(night(&mut nf, &s, 8, 11.7).stage, 3);
        assert_eq!(night(&mut nf, &s, 9, 12.5).stage, 4);
        // The abnormal nights stay out of the baseline.
        assert_eq!(night(&mut nf, &s, 10, 11.0).baseline, Some(10.0));
    }

    #[test]
    fn a_night_with_too_few_readings_is_not_judged() {
        let s = NightSettings::default();
        let mut nf = NightFlow::new();
        nf.observe(&s, at(1, 1, 0), 5.0);
        nf.observe(&s, at(1, 1, 1), 5.0);
        let r = nf.tick(&s, at(1, 6, 0)).unwrap();
        assert!(r.minimum.is_nan() && r.stage == 0);
    }

    #[test]
    fn hourly_readings_and_windows_across_midnight_work() {
        let s = NightSettings {
            start: NaiveTime::from_hms_opt(23, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
            ..NightSettings::default()
        };
        let mut nf = NightFlow::new();
        for h in [23, 0, 1, 2] {
            let local = if h == 23 { at(1, 23, 0) } else { at(2, h, 0) };
            assert!(nf.observe(&s, local, 4.0 + f64::from(h % 23)).is_none());
        }
        let r = nf.tick(&s, at(2, 3, 0)).unwrap();
        assert_eq!(r.night, NaiveDate::from_ymd_opt(2024, 5, 1).unwrap());
        assert_eq!(r.minimum, 4.0);
    }
}
