//! The alarm lifecycle of one (series, kind, direction): a small state machine fed one stage
//! per judged reading (or per night, for night flow).
//!
//! ```text
//! closed --(open_after readings in a row at stage >= open_stage and percentile >= open_percentile)
//!        --> open at the lowest of their stages
//! open(S) --(a reading above S)--> escalated to it, at once
//! open(S) --(hysteresis readings in a row below S, some abnormal)--> de-escalated to the
//!            highest stage among them
//! open(S) --(clear_after normal readings in a row)--> cleared
//! ```
//!
//! A reading that keeps an alarm at its stage changes nothing and sends nothing. Each
//! transition is one [`Alert`].
//!
//! The counts are readings of minute data: a series read more often needs them to last as many
//! minutes as well (open after 2 readings: 2 minutes of 1-second readings), one read less often
//! needs the readings (2 readings of 15-minute data: 30 minutes). Nights and silences count
//! one each; an alarm that opens on its first abnormal reading (range, jump) does so at any
//! interval.

use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_rfc3339_local;
use serde::{Deserialize, Serialize};

use hydrowatch_protocol::AlertBody;

use crate::{AlarmKind, Direction, Transition};

/// When alarms open, de-escalate and clear.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifecycleSettings {
    /// Lowest stage that can open an alarm.
    pub open_stage: u8,
    /// Readings in a row at `open_stage` or above before the alarm opens (and as many minutes).
    pub open_after: u32,
    /// ... each also at this percentile or above (outliers only: the stages are the
    /// prototype's, but the 99th percentile is crossed every day by ordinary demand noise).
    pub open_percentile: f64,
    /// Readings in a row below the alarm's stage before it de-escalates (and as many minutes).
    pub hysteresis: u32,
    /// Normal readings in a row before the alarm clears (and as many minutes).
    pub clear_after: u32,
}

/// When a reading was taken, for the windows that are also times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Its time.
    pub ts: Timestamp,
    /// The series' typical interval between readings, seconds.
    pub interval: i64,
}

/// Counts one more reading of a run, remembering when the run's first was taken.
fn extend(count: &mut u32, since: &mut Option<Timestamp>, at: Option<Taken>) {
    if *count == 0 {
        *since = at.map(|t| t.ts);
    }
    *count += 1;
}

/// Whether a run of `count` readings since `since` holds `need` readings, covering `need`
/// minutes where times count.
fn reaches(count: u32, since: Option<Timestamp>, need: u32, at: Option<Taken>) -> bool {
    let covered = |t: Taken| since.is_none_or(|s| t.ts - s + t.interval >= i64::from(need) * 60);
    count >= need && at.is_none_or(covered)
}

impl Default for LifecycleSettings {
    /// Outlier alarms: open after 2 readings in a row at stage 4 (critical) and beyond the
    /// 99.9999th percentile, de-escalate after 5 readings below, clear after 10 normal readings
    /// (tuned on three simulated years, docs/DETECTION.md).
    fn default() -> Self {
        LifecycleSettings {
            open_stage: 4,
            open_after: 2,
            open_percentile: 99.9999,
            hysteresis: 5,
            clear_after: 10,
        }
    }
}

impl LifecycleSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=4).contains(&self.open_stage) {
            return Err(format!("open_stage {} must be 1 to 4", self.open_stage));
        }
        if !(0.0..100.0).contains(&self.open_percentile) {
            return Err(format!(
                "open_percentile {} must be at least 0 and below 100",
                self.open_percentile
            ));
        }
        if self.open_after == 0 || self.hysteresis == 0 || self.clear_after == 0 {
            return Err("open_after, hysteresis and clear_after must be at least 1".into());
        }
        Ok(())
    }

    /// Settings of a check that opens on its first abnormal reading.
    pub(crate) fn immediate(clear_after: u32) -> LifecycleSettings {
        LifecycleSettings {
            open_stage: 1,
            open_after: 1,
            open_percentile: 0.0,
            hysteresis: 1,
            clear_after,
        }
    }
}

/// One alarm transition, as the device reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The alarm (the same id from opening to clearing).
    pub alarm_id: u64,
    /// Series name.
    pub series: String,
    /// Unit of the value.
    pub unit: String,
    /// What the alarm is about.
    pub kind: AlarmKind,
    /// Which way.
    pub direction: Direction,
    /// Stage after the transition (0 when cleared).
    pub stage: u8,
    /// The transition.
    pub state: Transition,
    /// The reading (or tick) that caused it.
    pub time: Timestamp,
    /// The value read, if any.
    pub value: Option<f64>,
    /// The value expected, if known.
    pub expected: Option<f64>,
    /// The percentile of the value, for outliers.
    pub percentile: Option<f64>,
}

impl Alert {
    /// The message for the central server, times in `tz`.
    pub fn message(&self, machine_number: u32, tz: Tz) -> AlertBody {
        AlertBody {
            machine_number,
            time: format_rfc3339_local(self.time, tz),
            outlier_stage: self.stage,
            value: self.value,
            series: self.series.clone(),
            unit: self.unit.clone(),
            kind: self.kind,
            direction: self.direction,
            expected: self.expected,
            percentile: self.percentile,
            alarm_id: self.alarm_id,
            state: self.state,
        }
    }
}

/// The state machine of one (series, kind, direction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub kind: AlarmKind,
    pub direction: Direction,
    /// The open alarm: id, stage.
    pub open: Option<(u64, u8)>,
    /// Closed: readings in a row at the opening stage or above, and the lowest of them.
    run: u32,
    run_min: u8,
    /// Open: readings in a row below the stage, and the highest of them.
    below: u32,
    below_max: u8,
    /// Open: normal readings in a row.
    normal: u32,
    /// When the first reading of `run`, `below` and `normal` was taken (where times count).
    #[serde(default)]
    since: [Option<Timestamp>; 3],
}

impl Machine {
    pub(crate) fn new(kind: AlarmKind, direction: Direction) -> Machine {
        Machine {
            kind,
            direction,
            open: None,
            run: 0,
            run_min: u8::MAX,
            below: 0,
            below_max: 0,
            normal: 0,
            since: [None; 3],
        }
    }

    /// Feeds one stage (and the reading's percentile, 100 where there is none); returns the
    /// transition and the stage after it, if any. `next_id` gives the id of an alarm that
    /// opens; `at`, when the reading was taken where the windows are also times (`None`: a
    /// night or a silence, counted alone).
    pub(crate) fn step(
        &mut self,
        stage: u8,
        percentile: f64,
        settings: &LifecycleSettings,
        next_id: &mut u64,
        at: Option<Taken>,
    ) -> Option<(Transition, u8, u64)> {
        const RUN: usize = 0;
        const BELOW: usize = 1;
        const NORMAL: usize = 2;
        match self.open {
            None => {
                if stage >= settings.open_stage && percentile >= settings.open_percentile {
                    extend(&mut self.run, &mut self.since[RUN], at);
                    self.run_min = self.run_min.min(stage);
                    // A check that opens on its first abnormal reading (a jump is one reading
                    // long) does so at any interval.
                    let timed = at.filter(|_| settings.open_after > 1);
                    if reaches(self.run, self.since[RUN], settings.open_after, timed) {
                        let (id, stage) = (*next_id, self.run_min);
                        *next_id += 1;
                        self.open = Some((id, stage));
                        self.reset_counters();
                        return Some((Transition::Opened, stage, id));
                    }
                } else {
                    self.run = 0;
                    self.run_min = u8::MAX;
                }
                None
            }
            Some((id, current)) => {
                if stage > current {
                    self.open = Some((id, stage));
                    self.reset_counters();
                    return Some((Transition::Escalated, stage, id));
                }
                if stage == current {
                    self.below = 0;
                    self.below_max = 0;
                    self.normal = 0;
                    return None;
                }
                if stage == 0 {
                    extend(&mut self.normal, &mut self.since[NORMAL], at);
                } else {
                    self.normal = 0;
                }
                extend(&mut self.below, &mut self.since[BELOW], at);
                self.below_max = self.below_max.max(stage);
                if reaches(self.normal, self.since[NORMAL], settings.clear_after, at) {
                    self.open = None;
                    self.reset_counters();
                    return Some((Transition::Cleared, 0, id));
                }
                if self.below_max > 0
                    && reaches(self.below, self.since[BELOW], settings.hysteresis, at)
                {
                    let to = self.below_max;
                    self.open = Some((id, to));
                    self.below = 0;
                    self.below_max = 0;
                    return Some((Transition::DeEscalated, to, id));
                }
                None
            }
        }
    }

    fn reset_counters(&mut self) {
        self.run = 0;
        self.run_min = u8::MAX;
        self.below = 0;
        self.below_max = 0;
        self.normal = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stages: &[u8], settings: LifecycleSettings) -> Vec<Option<(Transition, u8)>> {
        let mut m = Machine::new(AlarmKind::Outlier, Direction::High);
        let mut id = 1;
        stages
            .iter()
            .map(|s| {
                m.step(*s, 100.0, &settings, &mut id, None)
                    .map(|(t, s, _)| (t, s))
            })
            .collect()
    }

    fn settings(
        open_stage: u8,
        open_after: u32,
        hysteresis: u32,
        clear_after: u32,
    ) -> LifecycleSettings {
        LifecycleSettings {
            open_stage,
            open_after,
            open_percentile: 0.0,
            hysteresis,
            clear_after,
        }
    }

    #[test]
    fn opens_after_the_confirming_run_at_its_lowest_stage() {
        let out = run(&[3, 0, 3, 4, 3], settings(3, 3, 2, 3));
        assert_eq!(out[..4], [None, None, None, None]);
        assert_eq!(out[4], Some((Transition::Opened, 3)));
        // Stage 2 never opens an alarm whose opening stage is 3.
        assert!(
            run(&[2; 20], settings(3, 3, 2, 3))
                .iter()
                .all(Option::is_none)
        );
    }

    #[test]
    fn escalates_at_once_and_holding_the_stage_sends_nothing() {
        let out = run(&[3, 3, 4, 4, 4, 3], settings(3, 1, 2, 3));
        assert_eq!(out[0], Some((Transition::Opened, 3)));
        assert_eq!(out[1], None);
        assert_eq!(out[2], Some((Transition::Escalated, 4)));
        assert_eq!(out[3..], [None, None, None]);
    }

    #[test]
    fn de_escalates_only_after_the_hysteresis_and_to_the_highest_stage_seen() {
        // Open at 4, then 2, 3, 2: after three readings below 4, down to 3.
        let out = run(&[4, 2, 3, 2, 2], settings(3, 1, 3, 5));
        assert_eq!(out[1..3], [None, None]);
        assert_eq!(out[3], Some((Transition::DeEscalated, 3)));
        // A reading back at the stage restarts the count.
        let out = run(&[4, 2, 2, 4, 2, 2, 2], settings(3, 1, 3, 5));
        assert!(out[1..6].iter().all(Option::is_none));
        assert_eq!(out[6], Some((Transition::DeEscalated, 2)));
    }

    #[test]
    fn clears_after_enough_normal_readings_in_a_row_and_then_opens_a_new_alarm() {
        let mut m = Machine::new(AlarmKind::Outlier, Direction::Low);
        let s = settings(3, 1, 2, 3);
        let mut id = 7;
        assert_eq!(
            m.step(3, 100.0, &s, &mut id, None),
            Some((Transition::Opened, 3, 7))
        );
        assert_eq!(m.step(0, 100.0, &s, &mut id, None), None);
        assert_eq!(
            m.step(1, 100.0, &s, &mut id, None),
            Some((Transition::DeEscalated, 1, 7))
        );
        // Two normal, one abnormal (the count restarts), then three normal.
        for stage in [0, 0, 1, 0, 0] {
            assert_eq!(m.step(stage, 100.0, &s, &mut id, None), None);
        }
        assert_eq!(
            m.step(0, 100.0, &s, &mut id, None),
            Some((Transition::Cleared, 0, 7))
        );
        assert_eq!(
            m.step(4, 100.0, &s, &mut id, None),
            Some((Transition::Opened, 4, 8))
        );
    }

    #[test]
    fn windows_are_also_minutes_for_readings_taken_more_often() {
        // 1-second readings: opening after 2 readings means after 2 minutes of them, clearing
        // after 10 normal ones after 10 minutes.
        let s = LifecycleSettings::default();
        let mut m = Machine::new(AlarmKind::Outlier, Direction::High);
        let mut id = 1;
        let at = |ts| Some(Taken { ts, interval: 1 });
        let opened = (0..200)
            .find(|t| m.step(4, 100.0, &s, &mut id, at(*t)).is_some())
            .unwrap();
        assert_eq!(opened, 119);
        let cleared = (200..2000)
            .find(|t| m.step(0, 50.0, &s, &mut id, at(*t)).is_some())
            .unwrap();
        assert_eq!(cleared, 200 + 599);
        // Readings an hour apart: the counts hold (2 readings, not 1 hour covering 2 minutes).
        let mut m = Machine::new(AlarmKind::Outlier, Direction::High);
        let hourly = |h: i64| {
            Some(Taken {
                ts: h * 3600,
                interval: 3600,
            })
        };
        assert_eq!(m.step(4, 100.0, &s, &mut id, hourly(0)), None);
        assert!(m.step(4, 100.0, &s, &mut id, hourly(1)).is_some());
        // A check that opens on its first abnormal reading (a jump) does so at 1 s too, and
        // clears after 3 minutes of normal ones.
        let jump = LifecycleSettings::immediate(3);
        let mut m = Machine::new(AlarmKind::Jump, Direction::High);
        assert!(m.step(3, 100.0, &jump, &mut id, at(5000)).is_some());
        let cleared = (5001..6000)
            .find(|t| m.step(0, 100.0, &jump, &mut id, at(*t)).is_some())
            .unwrap();
        assert_eq!(cleared, 5001 + 179);
    }
}
