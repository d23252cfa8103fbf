//! The detector's checks, one alarm kind each, registered in [`CHECKS`].
//!
//! A check turns what the detector saw (a reading, the passing of time, a closed hour) into a
//! stage per direction; the detector steps one alarm machine per (series, kind, direction) with
//! it. A check owns its kind's judgement, its directions, its lifecycle and, if it needs one, a
//! memory per series that is saved with the detector's state under [`Check::memory_name`].
//!
//! Adding a check: a file here implementing [`Check`], a line in [`CHECKS`], and its kind in
//! `hydrowatch_protocol::AlarmKind`.
//!
//! Invariants:
//! - the order of [`CHECKS`] is the order of a new series' machines, and of the judgement's
//!   ties (a later check's stage wins an equal one: the system checks come after the outlier);
//! - an event a check does not judge ([`None`]) steps none of its machines; a stage of 0 is a
//!   normal reading and counts towards clearing;
//! - checks are stateless values: everything remembered lives in the series' state, and is
//!   saved across restarts.

mod forecast;
mod jump;
mod night_flow;
mod outlier;
mod range;
mod stale;
mod stuck;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDateTime;
use hydrowatch_core::Timestamp;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::judgement::Judgement;
use crate::lifecycle::LifecycleSettings;
use crate::residual::HourForecast;
use crate::sampling::Sampling;
use crate::{AlarmKind, Criteria, DetectError, Direction, Limits, NightResult, SeriesSettings};

/// Every check, in the order their machines are stepped.
pub(crate) static CHECKS: &[&dyn Check] = &[
    &outlier::Outlier,
    &stale::Stale,
    &stuck::Stuck,
    &range::Range,
    &jump::Jump,
    &night_flow::NightFlowCheck,
    &forecast::Forecast,
];

/// One alarm kind's judgement.
pub(crate) trait Check: Sync {
    /// The kind of the alarms it raises.
    fn kind(&self) -> AlarmKind;

    /// The directions it raises alarms in on a series with `settings` (none: it does not judge
    /// that series).
    fn directions(&self, settings: &SeriesSettings) -> &'static [Direction];

    /// When its alarms open, de-escalate and clear.
    fn lifecycle(&self, settings: &SeriesSettings) -> LifecycleSettings;

    /// Whether its windows count events alone (nights, silences); otherwise they also last as
    /// many of the series' minutes.
    fn counted_alone(&self) -> bool {
        false
    }

    /// Whether its stage is also the reading's (the judgement of `hydrowatch detect`).
    fn stages_the_reading(&self) -> bool {
        false
    }

    /// The events it judges: the detector calls [`Check::reading`], [`Check::tick`] and
    /// [`Check::hour`] only where this says so (a check judging time implements `tick`).
    fn judges(&self) -> Judges {
        Judges::READINGS
    }

    /// Judges a reading.
    fn reading(&self, _seen: &Seen, _memory: Option<&mut dyn Memory>) -> Option<Found> {
        None
    }

    /// Judges the passing of time to `ticked.now` without a reading.
    fn tick(&self, _ticked: &Ticked, _memory: Option<&mut dyn Memory>) -> Option<Found> {
        None
    }

    /// Judges an hour of the series that has closed.
    fn hour(&self, _hour: &ClosedHour) -> Option<Found> {
        None
    }

    /// The name its memory is saved under, if it keeps one.
    fn memory_name(&self) -> Option<&'static str> {
        None
    }

    /// A new memory for a series with `settings` (`None`: none kept on that series).
    fn new_memory(&self, _settings: &SeriesSettings) -> Option<Box<dyn Memory>> {
        None
    }

    /// Its memory as saved by [`Memory::to_json`].
    fn read_memory(&self, _saved: serde_json::Value) -> serde_json::Result<Box<dyn Memory>> {
        Err(serde_json::Error::custom(format!(
            "the {} check keeps no memory",
            self.kind().name()
        )))
    }
}

/// The events a check judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Judges {
    /// Readings.
    pub readings: bool,
    /// Time passing without a reading.
    pub time: bool,
    /// Closed hours.
    pub hours: bool,
}

impl Judges {
    /// Readings only.
    pub(crate) const READINGS: Judges = Judges {
        readings: true,
        time: false,
        hours: false,
    };
    /// Readings and time passing without one.
    pub(crate) const READINGS_AND_TIME: Judges = Judges {
        time: true,
        ..Judges::READINGS
    };
    /// Closed hours only.
    pub(crate) const HOURS: Judges = Judges {
        readings: false,
        time: false,
        hours: true,
    };
}

/// What a check sees of one reading.
pub(crate) struct Seen<'a> {
    /// The series' settings.
    pub settings: &'a SeriesSettings,
    /// The reading's time.
    pub ts: Timestamp,
    /// Its value (finite).
    pub value: f64,
    /// Its local time.
    pub local: NaiveDateTime,
    /// Its local hour of the week.
    pub hour: usize,
    /// The series' sampling, this reading included.
    pub sampling: &'a Sampling,
    /// The reading before it.
    pub previous: Option<(Timestamp, f64)>,
    /// The criteria, once fitted.
    pub criteria: Option<&'a Criteria>,
    /// Its deviation from expected, in spreads (with criteria).
    pub z: Option<f64>,
    /// The judgement so far: expected value, percentile, direction.
    pub judgement: &'a Judgement,
    /// The offset of the state the series is in (a pump running), in its unit.
    pub offset: f64,
}

impl Seen<'_> {
    /// The limits learned from the series' history, once fitted.
    pub(crate) fn learned(&self) -> Option<&Limits> {
        self.criteria.and_then(|c| c.limits.as_ref())
    }

    /// Whether the value is one the series rests at (a pump off).
    pub(crate) fn resting(&self) -> bool {
        self.learned()
            .is_some_and(|l| l.resting.contains(&self.value))
    }
}

/// What a check sees of time passing without a reading.
pub(crate) struct Ticked<'a> {
    /// The series' settings.
    pub settings: &'a SeriesSettings,
    /// The moment.
    pub now: Timestamp,
    /// Its local time.
    pub local: NaiveDateTime,
    /// The series' sampling.
    pub sampling: &'a Sampling,
}

/// What a check sees of an hour of the series that has closed.
pub(crate) struct ClosedHour<'a> {
    /// Its start, the sum of its readings and their count.
    pub closed: (Timestamp, f64, u32),
    /// The day-ahead forecasts of the series' hours, by start.
    pub forecasts: &'a BTreeMap<Timestamp, HourForecast>,
    /// The series' typical interval between readings, seconds.
    pub interval: i64,
    /// The direction of this check's open alarm on the series, if one is open.
    pub open: Option<Direction>,
}

/// What the alert of a transition reports: value, expected value, percentile.
pub(crate) type Reported = (Option<f64>, Option<f64>, Option<f64>);

/// A check's judgement of one event.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The stage of `High` (or `None`) and of `Low`.
    stages: [u8; 2],
    /// The percentile the lifecycle's `open_percentile` compares.
    pub percentile: f64,
    /// What an alert reports.
    pub reported: Reported,
    /// The alert's time.
    pub time: Timestamp,
    /// A night summed up, for the device's night table (boxed: most events have none).
    pub night: Option<Box<NightResult>>,
}

impl Found {
    /// One stage, for a check without directions (or with `High` only).
    pub(crate) fn one(stage: u8, time: Timestamp, reported: Reported) -> Found {
        Found::sides((stage, 0), time, reported)
    }

    /// A stage for each side, `(high, low)`.
    pub(crate) fn sides((high, low): (u8, u8), time: Timestamp, reported: Reported) -> Found {
        Found {
            stages: [high, low],
            percentile: 100.0,
            reported,
            time,
            night: None,
        }
    }

    /// The stage of `direction`.
    pub(crate) fn stage(&self, direction: Direction) -> u8 {
        match direction {
            Direction::Low => self.stages[1],
            Direction::High | Direction::None => self.stages[0],
        }
    }
}

/// The directions of a check that judges both ways.
pub(crate) const HIGH_AND_LOW: &[Direction] = &[Direction::High, Direction::Low];

/// Stage `stage` where `abnormal`, else 0.
pub(crate) fn stage_if(abnormal: bool, stage: u8) -> u8 {
    if abnormal { stage } else { 0 }
}

/// What a check keeps of a series between events, saved with the detector's state.
pub(crate) trait Memory: Any + fmt::Debug + Send + Sync {
    /// As saved.
    fn to_json(&self) -> serde_json::Value;
    /// A copy.
    fn clone_box(&self) -> Box<dyn Memory>;
    /// For the check to take back its own type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// For the detector to read a check's memory.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Serialize + Clone + fmt::Debug + Send + Sync + 'static> Memory for T {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a check's memory always serialises")
    }
    fn clone_box(&self) -> Box<dyn Memory> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Clone for Box<dyn Memory> {
    fn clone(&self) -> Self {
        self.as_ref().clone_box()
    }
}

/// A check's own memory of type `T`, if `memory` is one.
pub(crate) fn own<T: 'static>(memory: Option<&mut dyn Memory>) -> Option<&mut T> {
    memory?.as_any_mut().downcast_mut::<T>()
}

/// Every check's memory of one series, by the check's place in [`CHECKS`]; saved as one field
/// per check that keeps memory (`null` where it keeps none on the series).
#[derive(Debug, Clone, Default)]
pub(crate) struct Memories {
    live: Vec<Option<Box<dyn Memory>>>,
    /// As read from a saved state, until [`Memories::restore`] reads them.
    saved: BTreeMap<String, serde_json::Value>,
}

impl Memories {
    /// Fresh memories for a series with `settings`.
    pub(crate) fn new(settings: &SeriesSettings) -> Memories {
        Memories {
            live: CHECKS.iter().map(|c| c.new_memory(settings)).collect(),
            saved: BTreeMap::new(),
        }
    }

    /// The memories read back from a saved state for a series with `settings`: a check added
    /// since starts fresh; a check whose memory is saved but not wanted now (or the reverse)
    /// is an error naming it (its settings changed: the state must be cleared).
    pub(crate) fn restore(&mut self, settings: &SeriesSettings) -> Result<(), DetectError> {
        let mut live = Vec::with_capacity(CHECKS.len());
        for check in CHECKS {
            let fresh = check.new_memory(settings);
            let Some(name) = check.memory_name() else {
                live.push(fresh);
                continue;
            };
            let kept = match (self.saved.remove(name), fresh) {
                (None, fresh) => fresh,
                (Some(serde_json::Value::Null), None) => None,
                (Some(serde_json::Value::Null), Some(_)) | (Some(_), None) => {
                    return Err(DetectError::Settings {
                        series: settings.name.clone(),
                        field: check.kind().name(),
                        message: "switched since the state was saved: clear the stored state"
                            .into(),
                    });
                }
                (Some(saved), Some(_)) => Some(check.read_memory(saved)?),
            };
            live.push(kept);
        }
        self.live = live;
        Ok(())
    }

    /// The memory of check `index` of [`CHECKS`].
    pub(crate) fn of(&mut self, index: usize) -> Option<&mut dyn Memory> {
        self.live.get_mut(index)?.as_deref_mut()
    }

    /// The memory of the first check keeping a `T`.
    pub(crate) fn find<T: 'static>(&self) -> Option<&T> {
        self.live
            .iter()
            .flatten()
            .find_map(|m| m.as_ref().as_any().downcast_ref::<T>())
    }
}

impl Serialize for Memories {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (check, memory) in CHECKS.iter().zip(&self.live) {
            if let Some(name) = check.memory_name() {
                map.serialize_entry(name, &memory.as_ref().map(|m| m.to_json()))?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Memories {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Memories, D::Error> {
        Ok(Memories {
            live: Vec::new(),
            saved: BTreeMap::deserialize(deserializer)?,
        })
    }
}

/// The index in [`CHECKS`] of the check of `kind`.
pub(crate) fn index_of(kind: AlarmKind) -> Option<usize> {
    CHECKS.iter().position(|c| c.kind() == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SeriesSettings {
        let mut s = SeriesSettings::new("flow_rate", "m3/h", true);
        (s.min, s.max, s.max_rate) = (Some(0.0), Some(100.0), Some(10.0));
        s
    }

    /// The stage `kind` gives a reading at `ts` in `direction`, the sampling taking it first.
    fn stage(
        sampling: &mut Sampling,
        s: &SeriesSettings,
        (ts, value): (Timestamp, f64),
        kind: AlarmKind,
        direction: Direction,
    ) -> u8 {
        let previous = sampling.add(ts, value);
        let judgement = Judgement::unjudged(crate::Verdict::Judged);
        let seen = Seen {
            settings: s,
            ts,
            value,
            local: NaiveDateTime::MIN,
            hour: 0,
            sampling,
            previous,
            criteria: None,
            z: None,
            judgement: &judgement,
            offset: 0.0,
        };
        let check = CHECKS[index_of(kind).unwrap()];
        check.reading(&seen, None).map_or(0, |f| f.stage(direction))
    }

    #[test]
    fn stuck_starts_after_the_configured_minutes_of_identical_values() {
        let (s, mut sampling) = (settings(), Sampling::default());
        for minute in 0..=30 {
            let stuck = stage(
                &mut sampling,
                &s,
                (minute * 60, 42.0),
                AlarmKind::Stuck,
                Direction::None,
            );
            assert_eq!(stuck, if minute >= 30 { 3 } else { 0 }, "minute {minute}");
        }
        let moved = stage(
            &mut sampling,
            &s,
            (31 * 60, 42.5),
            AlarmKind::Stuck,
            Direction::None,
        );
        assert_eq!(moved, 0);
    }

    #[test]
    fn an_hourly_series_is_stuck_after_four_hours_not_two_readings() {
        let (s, mut sampling) = (settings(), Sampling::default());
        for hour in 0..12 {
            sampling.add(hour * 3600, hour as f64);
        }
        for hour in 12..16 {
            let stuck = stage(
                &mut sampling,
                &s,
                (hour * 3600, 42.0),
                AlarmKind::Stuck,
                Direction::None,
            );
            assert_eq!(stuck, 0, "{hour}");
        }
        let stuck = stage(
            &mut sampling,
            &s,
            (16 * 3600, 42.0),
            AlarmKind::Stuck,
            Direction::None,
        );
        assert_eq!(stuck, 3);
    }

    #[test]
    fn range_and_jump_have_directions() {
        let (s, mut sampling) = (settings(), Sampling::default());
        let mut at =
            |ts, value, kind, direction| stage(&mut sampling, &s, (ts, value), kind, direction);
        assert_eq!(at(0, 50.0, AlarmKind::Jump, Direction::High), 0);
        assert_eq!(at(60, 61.0, AlarmKind::Jump, Direction::High), 3);
        assert_eq!(at(120, 50.5, AlarmKind::Jump, Direction::Low), 3);
        // 10 per minute is the limit (a tenth of the range); over 2 minutes 19 is fine.
        assert_eq!(at(240, 69.5, AlarmKind::Jump, Direction::High), 0);
        assert_eq!(at(300, 100.5, AlarmKind::Range, Direction::High), 4);
        assert_eq!(at(360, -0.1, AlarmKind::Range, Direction::Low), 4);
        // Exactly on the limits is inside the range.
        assert_eq!(at(420, 0.0, AlarmKind::Range, Direction::Low), 0);
    }

    #[test]
    fn every_check_has_its_own_kind_and_every_device_kind_a_check() {
        for &kind in AlarmKind::ALL {
            let checks = CHECKS.iter().filter(|c| c.kind() == kind).count();
            let expected = usize::from(kind != AlarmKind::DeviceSilent);
            assert_eq!(checks, expected, "{kind:?}");
        }
    }

    #[test]
    fn a_memory_saved_reads_back_and_a_switched_setting_is_refused() {
        let with_night = SeriesSettings::new("flow_rate", "m3/h", true);
        let without = SeriesSettings::new("pressure", "m", false);
        let saved = serde_json::to_value(Memories::new(&with_night)).unwrap();
        assert!(saved["night"].is_object(), "{saved}");
        let mut read: Memories = serde_json::from_value(saved.clone()).unwrap();
        read.restore(&with_night).unwrap();
        assert!(read.find::<crate::nightflow::NightFlow>().is_some());
        let mut read: Memories = serde_json::from_value(saved).unwrap();
        let refused = read.restore(&without).unwrap_err().to_string();
        assert!(
            refused.contains("night_flow") && refused.contains("switched"),
            "{refused}"
        );
        // A state saved before a check kept memory gives it a fresh one.
        let mut older: Memories = serde_json::from_str("{}").unwrap();
        older.restore(&with_night).unwrap();
        assert!(older.find::<crate::nightflow::NightFlow>().is_some());
    }
}
