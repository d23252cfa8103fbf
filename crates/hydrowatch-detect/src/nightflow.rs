//! Minimum night flow, the classic leak indicator: at night consumption is lowest and most of
//! the flow is leakage, so a leak shows as a night minimum that rises and stays up.
//!
//! Each night, the readings inside the local window (default 01:00-05:00) are averaged per
//! 10-minute slot; the night's minimum flow is the lowest slot mean (slots need half their
//! readings, for minute data; a night needs half its slots). When the window has passed, the
//! minimum is compared with the median of up to `nights` earlier normal nights, in spreads of
//! those nights (their robust relative spread, at least half of `rise`), and the rises are
//! accumulated night after night by a one-sided CUSUM (reference [`CUSUM_K`] spreads): a
//! persistent rise too small to see on one night adds up over a few. One night's rise alone
//! also counts (2 spreads, at least `rise`, is stage 2, as before the CUSUM), so a leak that
//! starts large is seen on its first night. The statistic's threshold is set from a
//! false-alarm budget (one alarm in [`BUDGET_NIGHTS`] nights under normal noise), raised to
//! what the statistic reached on the series' own earlier nights judged out of sample (real
//! nights are not independent: a warm spell lasts days). At the threshold the night is stage
//! 2; larger single rises raise the stage. Nights with evidence (the statistic above half its threshold) do not join the
//! baseline, so a leak does not become the new normal.
//!
//! The smallest persistent rise found within [`DETECT_NIGHTS`] nights follows from the
//! threshold and the spread ([`NightResult::detectable`]): the device states it.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::stats::{MAD_SCALE, median_of};

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
    /// The accumulated evidence of a rise (CUSUM, in spreads) after this night.
    #[serde(default)]
    pub evidence: f64,
    /// The threshold `evidence` alarms at (`None` while too few nights).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The smallest persistent rise of the night minimum (the series' unit) found within
    /// [`DETECT_NIGHTS`] nights, as the baseline and spread stand now.
    #[serde(default)]
    pub detectable: Option<f64>,
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
    /// The CUSUM of the nights' rises, in spreads.
    #[serde(default)]
    evidence: f64,
    /// After the last night judged: the smallest persistent rise found within
    /// [`DETECT_NIGHTS`] nights (the series' unit) and the baseline it is a rise over.
    #[serde(default)]
    detectable: Option<(f64, f64)>,
}

const SLOT_MINUTES: i64 = 10;
const HISTORY_KEPT: usize = 60;
/// The CUSUM's reference value, in spreads: half the shift it is quickest to find (1 spread).
pub(crate) const CUSUM_K: f64 = 0.5;
/// The false-alarm budget of the accumulated night test: one alarm in this many normal nights
/// (a year; a leak-free year raises none, and the one-night rule's own rate is unchanged).
pub(crate) const BUDGET_NIGHTS: f64 = 365.0;
/// The leak the device states it can see is found within this many nights.
pub(crate) const DETECT_NIGHTS: f64 = 3.0;
/// One night alone is stage 2 at this many spreads (at least `rise`: the spread's floor is half
/// of it), stage 3 at twice, stage 4 at three times: 2 keeps the own simulator's slow leaks
/// within 3 nights and halves the real DMAs' night alarms against 1 (3 found leaks after 7).
const ONE_NIGHT_SPREADS: f64 = 2.0;
/// One night's rise counts at most this many spreads in the statistic (a single odd night, a
/// fire hydrant opened, is the one-night rule's to judge, not months of evidence).
const MAX_NIGHT_SPREADS: f64 = 8.0;
/// The statistic is kept below this many thresholds, so that it falls back under the threshold
/// within 2-3 normal nights of a repair (and a second leak opens an alarm of its own).
const MAX_THRESHOLDS: f64 = 1.5;

/// The threshold for a one-sided CUSUM of unit-variance normal steps with reference `k` whose
/// average run length under no change is `budget` (Siegmund's approximation, solved by
/// bisection).
pub(crate) fn cusum_threshold(k: f64, budget: f64) -> f64 {
    let arl = |h: f64| {
        let b = 2.0 * k * (h + 1.166);
        (b.exp() - b - 1.0) / (2.0 * k * k)
    };
    let (mut lo, mut hi) = (0.0, 50.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if arl(mid) < budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The baseline (median) of `normal` nights and their relative spread, at least `floor`.
fn baseline_of(normal: &[f64], floor: f64) -> Option<(f64, f64)> {
    let b = median_of(&mut normal.to_vec());
    if b.is_nan() || b <= 0.0 {
        return None;
    }
    let mut deviations: Vec<f64> = normal.iter().map(|m| (m / b - 1.0).abs()).collect();
    let spread = MAD_SCALE * median_of(&mut deviations);
    Some((b, spread.max(floor)))
}

impl NightFlow {
    pub(crate) fn new() -> NightFlow {
        NightFlow {
            current: None,
            history: Vec::new(),
            evidence: 0.0,
            detectable: None,
        }
    }

    /// The smallest persistent rise of the night minimum found within [`DETECT_NIGHTS`] nights
    /// (the series' unit) and the baseline night minimum, as of the last night judged.
    pub(crate) fn detectable(&self) -> Option<(f64, f64)> {
        self.detectable
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
                evidence: self.evidence,
                threshold: None,
                detectable: None,
            };
        }
        let minimum = full.iter().copied().fold(f64::INFINITY, f64::min);
        let floor = settings.rise / 2.0;
        let normal: Vec<f64> = self.normal_before(self.history.len(), settings.nights);
        let judged = (normal.len() >= settings.min_nights)
            .then(|| baseline_of(&normal, floor))
            .flatten();
        let (stage, threshold, detectable) = match judged {
            Some((b, spread)) => {
                let threshold = cusum_threshold(CUSUM_K, BUDGET_NIGHTS)
                    .max(1.1 * self.reached_out_of_sample(settings, floor));
                let rise = ((minimum / b - 1.0) / spread).min(MAX_NIGHT_SPREADS);
                self.evidence =
                    (self.evidence + rise - CUSUM_K).clamp(0.0, MAX_THRESHOLDS * threshold);
                // The accumulated evidence, and one night's rise alone: a leak that starts large
                // is seen on its first night (a rise of ONE_NIGHT_SPREADS, at least `rise`).
                let accumulated = if self.evidence >= threshold { 2 } else { 0 };
                let alone = match rise / ONE_NIGHT_SPREADS {
                    x if x >= 3.0 => 4,
                    x if x >= 2.0 => 3,
                    x if x >= 1.0 => 2,
                    _ => 0,
                };
                let stage = accumulated.max(alone);
                // A persistent rise of d spreads passes the threshold in (h + 1.166)/(d - k)
                // nights (the same approximation); one of ONE_NIGHT_SPREADS on its first night.
                let spreads =
                    (CUSUM_K + (threshold + 1.166) / DETECT_NIGHTS).min(ONE_NIGHT_SPREADS);
                (stage, Some(threshold), Some(spreads * spread * b))
            }
            None => (0, None, None),
        };
        if let (Some(d), Some((b, _))) = (detectable, judged) {
            self.detectable = Some((d, b));
        }
        let suspect = threshold.is_some_and(|h| self.evidence > h / 2.0);
        self.history
            .push((acc.night, minimum, stage > 0 || suspect));
        if self.history.len() > HISTORY_KEPT {
            self.history.remove(0);
        }
        NightResult {
            night: acc.night,
            minimum,
            baseline: judged.map(|(b, _)| b),
            stage,
            evidence: self.evidence,
            threshold,
            detectable,
        }
    }

    /// Up to `count` normal nights' minima before history index `end`, newest first.
    fn normal_before(&self, end: usize, count: usize) -> Vec<f64> {
        self.history[..end]
            .iter()
            .rev()
            .filter(|(_, _, abnormal)| !abnormal)
            .take(count)
            .map(|(_, m, _)| *m)
            .collect()
    }

    /// The largest the statistic reached over the normal nights of the history, each judged
    /// against the nights before it (out of sample), leaving out the last [`DETECT_NIGHTS`]
    /// (a rise starting now is not the history's noise).
    fn reached_out_of_sample(&self, settings: &NightSettings, floor: f64) -> f64 {
        let end = self.history.len().saturating_sub(DETECT_NIGHTS as usize);
        let mut evidence: f64 = 0.0;
        let mut highest: f64 = 0.0;
        for i in 0..end {
            let (_, minimum, abnormal) = self.history[i];
            if abnormal || !minimum.is_finite() {
                continue;
            }
            let normal = self.normal_before(i, settings.nights);
            if normal.len() < settings.min_nights {
                continue;
            }
            if let Some((b, spread)) = baseline_of(&normal, floor) {
                let rise = ((minimum / b - 1.0) / spread).min(MAX_NIGHT_SPREADS);
                evidence = (evidence + rise - CUSUM_K).max(0.0);
                highest = highest.max(evidence);
            }
        }
        highest
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
    fn a_persistent_rise_adds_up_over_nights_and_a_large_one_is_seen_at_once() {
        let s = NightSettings::default();
        let h = cusum_threshold(CUSUM_K, BUDGET_NIGHTS);
        assert!((3.5..4.5).contains(&h), "{h}");
        let mut nf = NightFlow::new();
        for day in 1..=5 {
            let r = night(&mut nf, &s, day, 10.0);
            assert_eq!((r.stage, r.baseline), (0, None), "too few nights to judge");
            assert!((r.minimum - 10.0).abs() < 1e-9);
        }
        // 7.8% above identical nights: 1.95 spreads of the floor (half of `rise`, 4%). Not on
        // one night, but on three in a row.
        let stages: Vec<u8> = (6..=8)
            .map(|d| night(&mut nf, &s, d, 10.78).stage)
            .collect();
        assert_eq!(stages, vec![0, 0, 2]);
        let r = night(&mut nf, &s, 9, 10.78);
        assert_eq!(r.baseline, Some(10.0), "nights with evidence stay out");
        // The device states what it sees within 3 nights: the accumulated test's
        // (k + (h + 1.166) / 3) spreads, or one night's 2, whichever is smaller.
        let d = r.detectable.unwrap();
        let spreads = (CUSUM_K + (h + 1.166) / 3.0).min(ONE_NIGHT_SPREADS);
        assert!((d - spreads * 0.04 * 10.0).abs() < 1e-9, "{d}");
        assert_eq!(nf.detectable(), Some((d, 10.0)));

        let mut nf = NightFlow::new();
        for day in 1..=5 {
            night(&mut nf, &s, day, 10.0);
        }
        assert_eq!(
            night(&mut nf, &s, 6, 12.5).stage,
            4,
            "25%: 6 spreads on one night"
        );
    }

    #[test]
    fn nights_that_vary_by_themselves_raise_nothing() {
        let s = NightSettings::default();
        let mut nf = NightFlow::new();
        for day in 1..=28 {
            let level = if day % 2 == 0 { 10.3 } else { 9.7 };
            let level = level + if day % 5 == 0 { 0.4 } else { 0.0 };
            assert_eq!(night(&mut nf, &s, day, level).stage, 0, "night {day}");
        }
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
