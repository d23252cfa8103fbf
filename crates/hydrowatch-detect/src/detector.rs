//! The detector of a device: every series' criteria, checks, night flow and alarm machines.
//! [`Detector::observe`] judges one reading; [`Detector::tick`] advances time without one
//! (stale sensors, nights that ended without a reading after them).

use std::collections::BTreeMap;

use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::{hour_phase, hour_start};
use hydrowatch_protocol::DetectableLeak;
use serde::{Deserialize, Serialize};

use crate::checks::{self, CheckState, LocalClock};
use crate::criteria::{follow_level, minute_of_week};
use crate::lifecycle::{LifecycleSettings, Machine, Taken};
use crate::nightflow::{NightFlow, NightResult};
use crate::residual::{self, HourForecast, HourSum};
use crate::switches::{Offset, Recent};
use crate::{AlarmKind, Alert, Criteria, DetectError, Direction, SeriesSettings, Transition};

/// Whether a reading could be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Judged; the stage says how unusual it is.
    Judged,
    /// Not newer than the series' last reading (out of order, or the clock went back): stored
    /// by the caller, but not judged, and no state changed.
    Late,
    /// Not a finite number: not judged, no state changed.
    Invalid,
}

/// What one reading was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Whether it was judged.
    pub verdict: Verdict,
    /// The highest stage any check gave it (0: normal, or not judged).
    pub stage: u8,
    /// The check that gave that stage (`None` when normal).
    pub kind: Option<AlarmKind>,
    /// Which way it is abnormal (for outliers, also when normal: which side of expected).
    pub direction: Option<Direction>,
    /// Its percentile under the criteria (`None` before criteria exist).
    pub percentile: Option<f64>,
    /// The value expected at its hour of the week.
    pub expected: Option<f64>,
}

impl Judgement {
    fn unjudged(verdict: Verdict) -> Judgement {
        Judgement {
            verdict,
            stage: 0,
            kind: None,
            direction: None,
            percentile: None,
            expected: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeriesState {
    name: String,
    criteria: Option<Criteria>,
    checks: CheckState,
    machines: Vec<Machine>,
    night: Option<NightFlow>,
    /// The level of the deviation from expected (see the criteria module): time, level.
    level: Option<(Timestamp, f64)>,
    /// The hour being summed for the forecast-residual check.
    #[serde(default)]
    hour_sum: HourSum,
    /// The last readings, to recognise a switch (see the switches module).
    #[serde(default)]
    recent: Recent,
    /// The state's offset from the starting one: the night test judges the series less it (a
    /// pump running through the night is not a leak).
    #[serde(default)]
    offset: Offset,
}

/// The part of a detector that is saved across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Saved {
    next_alarm_id: u64,
    series: Vec<SeriesState>,
}

/// The detector of one device.
#[derive(Debug, Clone)]
pub struct Detector {
    settings: Vec<SeriesSettings>,
    saved: Saved,
    clock: LocalClock,
    /// Nights judged since the last [`Detector::take_nights`]: series, result.
    nights: Vec<(usize, NightResult)>,
    /// Per series, the day-ahead forecasts of the hours being judged, by hour start.
    forecasts: Vec<BTreeMap<Timestamp, HourForecast>>,
    /// Where the zone's hours start (see `hour_phase`).
    phase: i64,
    /// The local minute of the week of the last reading judged (the runner keeps it with the
    /// reading for the criteria instead of converting the time again).
    last_minute: u32,
}

/// The machines of a series, in a fixed order.
fn machines(night: bool) -> Vec<Machine> {
    let mut m = vec![
        Machine::new(AlarmKind::Outlier, Direction::High),
        Machine::new(AlarmKind::Outlier, Direction::Low),
        Machine::new(AlarmKind::Stale, Direction::None),
        Machine::new(AlarmKind::Stuck, Direction::None),
        Machine::new(AlarmKind::Range, Direction::High),
        Machine::new(AlarmKind::Range, Direction::Low),
        Machine::new(AlarmKind::Jump, Direction::High),
        Machine::new(AlarmKind::Jump, Direction::Low),
    ];
    if night {
        m.push(Machine::new(AlarmKind::NightFlow, Direction::High));
    }
    m.push(Machine::new(AlarmKind::Forecast, Direction::High));
    m.push(Machine::new(AlarmKind::Forecast, Direction::Low));
    m
}

fn lifecycle_of(kind: AlarmKind, settings: &SeriesSettings) -> LifecycleSettings {
    match kind {
        AlarmKind::Outlier => settings.lifecycle,
        // A reading clears a stale alarm; a changed value a stuck one.
        AlarmKind::Stale | AlarmKind::Stuck => LifecycleSettings::immediate(1),
        AlarmKind::Range | AlarmKind::Jump => LifecycleSettings::immediate(3),
        // Two normal nights in a row.
        AlarmKind::NightFlow => LifecycleSettings::immediate(2),
        AlarmKind::Forecast => LifecycleSettings {
            open_after: residual::HOURS,
            ..LifecycleSettings::immediate(residual::CLEAR_HOURS)
        },
        // The server's alarm: no machine of a device has this kind.
        AlarmKind::DeviceSilent => LifecycleSettings::immediate(1),
    }
}

/// While the criteria are coarser than hour of week, outlier alarms need this many spreads.
const LEARNING_Z: f64 = 6.0;

/// Deviations this many spreads from expected-plus-level leave the level where it is.
const FREEZE_Z: f64 = 5.0;

/// Standard normal CDF.
fn phi(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

impl Detector {
    /// A detector for `settings` (one per series) in time zone `tz`, with no history.
    pub fn new(tz: Tz, settings: Vec<SeriesSettings>) -> Result<Detector, DetectError> {
        for s in &settings {
            s.validate()?;
        }
        let series = settings
            .iter()
            .map(|s| SeriesState {
                name: s.name.clone(),
                criteria: None,
                checks: CheckState::default(),
                machines: machines(s.night_flow.is_some()),
                night: s.night_flow.as_ref().map(|_| NightFlow::new()),
                level: None,
                hour_sum: HourSum::default(),
                recent: Recent::default(),
                offset: Offset::default(),
            })
            .collect();
        let n = settings.len();
        Ok(Detector {
            settings,
            saved: Saved {
                next_alarm_id: 1,
                series,
            },
            clock: LocalClock::new(tz),
            nights: Vec::new(),
            forecasts: vec![BTreeMap::new(); n],
            phase: hour_phase(tz),
            last_minute: 0,
        })
    }

    /// A detector continuing from a state saved by [`Detector::state_json`]; the settings are
    /// today's, the series must be the same.
    pub fn restore(
        tz: Tz,
        settings: Vec<SeriesSettings>,
        state: &str,
    ) -> Result<Detector, DetectError> {
        let mut detector = Detector::new(tz, settings)?;
        let saved: Saved = serde_json::from_str(state)?;
        let stored: Vec<String> = saved.series.iter().map(|s| s.name.clone()).collect();
        let configured: Vec<String> = detector.settings.iter().map(|s| s.name.clone()).collect();
        if stored != configured {
            return Err(DetectError::StateMismatch { stored, configured });
        }
        for (state, settings) in saved.series.iter().zip(&detector.settings) {
            if state.night.is_some() != settings.night_flow.is_some() {
                return Err(DetectError::Settings {
                    series: settings.name.clone(),
                    field: "night_flow",
                    message: "switched since the state was saved: clear the stored state".into(),
                });
            }
        }
        detector.saved = saved;
        // Checks added since the state was saved start closed.
        for (state, settings) in detector.saved.series.iter_mut().zip(&detector.settings) {
            for m in machines(settings.night_flow.is_some()) {
                let known = state
                    .machines
                    .iter()
                    .any(|k| (k.kind, k.direction) == (m.kind, m.direction));
                if !known {
                    state.machines.push(m);
                }
            }
        }
        Ok(detector)
    }

    /// The state to save (criteria, open alarms, counters, night-flow history), as JSON.
    pub fn state_json(&self) -> String {
        serde_json::to_string(&self.saved).expect("the detector state always serialises")
    }

    /// The series, in order.
    pub fn settings(&self) -> &[SeriesSettings] {
        &self.settings
    }

    /// The index of series `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.settings.iter().position(|s| s.name == name)
    }

    /// Criteria in use for series `series`.
    pub fn criteria(&self, series: usize) -> Option<&Criteria> {
        self.saved.series[series].criteria.as_ref()
    }

    /// Replaces the criteria of series `series`.
    ///
    /// The level is carried into the new criteria's terms: the last reading keeps the residual
    /// it had (new expectations, a state's offset learned or forgotten, a relative level or
    /// one in units, change the deviation the level follows, not what the reading was).
    pub fn set_criteria(&mut self, series: usize, criteria: Option<Criteria>) {
        let minute = self.saved.series[series]
            .checks
            .last
            .map(|(ts, value)| (minute_of_week(self.clock.local(ts)), value));
        let state = &mut self.saved.series[series];
        state.level = match (&state.criteria, &criteria, state.level, minute) {
            (Some(old), Some(new), Some((at, level)), Some((minute, value))) => {
                let (before, _) = old.at(minute);
                let (after, _) = new.at(minute);
                let residual = old.in_units(old.deviation(value, before) - level, before);
                let level = new.deviation(value, after) - new.deviation_of_units(residual, after);
                level.is_finite().then_some((at, level))
            }
            _ => None,
        };
        // Without switches there are no states: the night test judges the series itself.
        if criteria.as_ref().is_none_or(|c| c.switches.is_empty()) {
            state.offset = Offset::default();
        }
        state.criteria = criteria;
    }

    /// The earliest moment before `ts` at which a series whose stale alarm is not open passed
    /// its stale window (see [`Detector::tick`]), if any did. Cheap when none did: one
    /// comparison a series.
    pub fn stale_before(&self, ts: Timestamp) -> Option<Timestamp> {
        self.saved
            .series
            .iter()
            .zip(&self.settings)
            .filter_map(|(state, settings)| {
                let (last, _) = state.checks.last?;
                let due = last + state.checks.stale_after(settings);
                let open = || {
                    state
                        .machines
                        .iter()
                        .any(|m| m.kind == AlarmKind::Stale && m.open.is_some())
                };
                (due < ts && !open()).then_some(due)
            })
            .min()
    }

    /// Sets the day-ahead forecasts of series `series` the forecast-residual check judges its
    /// hourly means against (replacing those set before); without any, the check is off.
    pub fn set_forecasts(&mut self, series: usize, forecasts: &[HourForecast]) {
        self.forecasts[series] = forecasts.iter().map(|f| (f.hour, *f)).collect();
    }

    /// The local minute of the week of the last reading [`Detector::observe`] judged.
    pub(crate) fn last_minute(&self) -> u32 {
        self.last_minute
    }

    /// Time of the last reading judged of series `series`.
    pub fn last_judged(&self, series: usize) -> Option<Timestamp> {
        self.saved.series[series].checks.last.map(|(t, _)| t)
    }

    /// The nights judged (minimum night flow) since the last call: series index, result. One
    /// entry per night and flow series accumulates until a caller takes them.
    pub fn take_nights(&mut self) -> Vec<(usize, NightResult)> {
        std::mem::take(&mut self.nights)
    }

    /// The smallest leak series `series` can see (a flow with night flow judged): the
    /// persistent rise of its night minimum found within 3 nights, in its unit, and the
    /// baseline night minimum it is a rise over; `None` before enough nights.
    fn detectable_leak(&self, series: usize) -> Option<(f64, f64)> {
        self.saved.series[series].night.as_ref()?.detectable()
    }

    /// The smallest leak each series with nights judged can see, as the heartbeat states it.
    pub fn detectable_leaks(&self) -> Vec<DetectableLeak> {
        (0..self.settings.len())
            .filter_map(|i| {
                let (rise, night_minimum) = self.detectable_leak(i)?;
                Some(DetectableLeak {
                    series: self.settings[i].name.clone(),
                    rise,
                    night_minimum,
                })
            })
            .collect()
    }

    /// What the detector learned of series `series`'s states and the smallest leak it can see,
    /// for a person (`hydrowatch detect`'s summary, `hydrowatch status`): the switches taken
    /// as changes of state, and the night test's smallest leak; `None` when neither is known.
    pub fn describe_states(&self, series: usize) -> Option<String> {
        let unit = &self.settings[series].unit;
        let mut parts = Vec::new();
        if let Some(c) = self.criteria(series)
            && !c.switches.is_empty()
        {
            let sizes: Vec<String> = c
                .switches
                .iter()
                .map(|s| format!("{:+.3}..{:+.3} ({} seen)", s.low, s.high, s.seen))
                .collect();
            parts.push(format!(
                "changes of state learned (a pump or valve switching: the new level is taken, not judged): {} {unit}",
                sizes.join(", ")
            ));
        }
        if let Some((rise, baseline)) = self.detectable_leak(series) {
            parts.push(format!(
                "smallest leak it sees: a persistent rise of {rise:.3} {unit} ({:.1}% of the night minimum {baseline:.3}) is found within 3 nights",
                100.0 * rise / baseline
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Open alarms: (series, kind, direction, stage, alarm id).
    pub fn open_alarms(&self) -> Vec<(&str, AlarmKind, Direction, u8, u64)> {
        self.saved
            .series
            .iter()
            .flat_map(|s| {
                s.machines.iter().filter_map(move |m| {
                    m.open
                        .map(|(id, stage)| (s.name.as_str(), m.kind, m.direction, stage, id))
                })
            })
            .collect()
    }

    /// Judges one reading of series `series` (an index of [`Detector::settings`]) and returns
    /// its judgement and the alarm transitions it caused.
    pub fn observe(&mut self, series: usize, ts: Timestamp, value: f64) -> (Judgement, Vec<Alert>) {
        if !value.is_finite() {
            return (Judgement::unjudged(Verdict::Invalid), Vec::new());
        }
        let state = &mut self.saved.series[series];
        if state.checks.last.is_some_and(|(last, _)| ts <= last) {
            return (Judgement::unjudged(Verdict::Late), Vec::new());
        }
        let settings = &self.settings[series];
        let local = self.clock.local(ts);
        let learned = state.criteria.as_ref().and_then(|c| c.limits.as_ref());
        let minute = minute_of_week(local);
        self.last_minute = minute;
        let hour = minute as usize / 60;
        let checks = checks::judge(&mut state.checks, settings, learned, (ts, hour), value);
        let resting = learned.is_some_and(|l| l.resting.contains(&value));

        let mut judgement = Judgement {
            verdict: Verdict::Judged,
            stage: 0,
            kind: None,
            direction: None,
            percentile: None,
            expected: None,
        };
        let mut outlier = (0u8, 0u8);
        if let Some(c) = &state.criteria {
            let (expected, spread) = c.at(minute);
            // A step of a size the series takes when something changes state (a pump) is the
            // new state: the level jumps to it.
            if !c.switches.is_empty() {
                let gap = 3 * state.checks.interval().unwrap_or(60);
                let switched = state
                    .recent
                    .switched(&c.switches, ts, (value, expected), gap);
                if let Some(step) = switched {
                    state.offset.take(&c.switches, step);
                    state.level = Some((ts, c.deviation(value, expected)));
                }
            }
            let level = state.level.map_or(0.0, |(_, l)| l);
            let deviation = c.deviation(value, expected);
            let z = c.in_units(
                follow_level(&mut state.level, ts, deviation, false),
                expected,
            ) / spread;
            let z_abs = z.abs();
            let percentile = 100.0 * phi(z_abs);
            // While the criteria are coarser than the hour of the week (a short history), a
            // reading is staged only when it is a gross deviation: a short history cannot say
            // whether a few spreads are unusual, and a verdict of "normal, still learning" is
            // more honest than a guess. Resting values (a pump off) are a state, at any hour.
            let learning = c.level != crate::Level::HourOfWeek && z.abs() < LEARNING_Z;
            let stage = if resting || learning {
                0
            } else {
                settings.stage_of(percentile)
            };
            // Far-out readings do not move the level: a burst must not become the level its
            // end is judged against. Ordinary excursions (even at stage 4) still do, or the
            // level would stop following the noise it is there to follow.
            if z.abs() < FREEZE_Z {
                follow_level(&mut state.level, ts, deviation, true);
            }
            let expected = expected + c.in_units(level, expected);
            let direction = if z >= 0.0 {
                Direction::High
            } else {
                Direction::Low
            };
            outlier = if z >= 0.0 { (stage, 0) } else { (0, stage) };
            judgement.direction = Some(direction);
            judgement.percentile = Some(percentile);
            judgement.expected = Some(expected);
            if stage > 0 {
                judgement.stage = stage;
                judgement.kind = Some(AlarmKind::Outlier);
            }
        }
        // System checks win ties: a reading outside the range is a range problem first.
        for (kind, direction, stage) in checks {
            if stage > 0 && stage >= judgement.stage {
                judgement.stage = stage;
                judgement.kind = Some(kind);
                judgement.direction = Some(direction);
            }
        }
        let night = match (&mut state.night, &settings.night_flow) {
            (Some(nf), Some(ns)) => nf.observe(ns, local, value - state.offset.value()),
            _ => None,
        };
        if let Some(n) = &night {
            self.nights.push((series, n.clone()));
        }

        let first_week = state.criteria.as_ref().is_none_or(|c| c.days < 7);
        let mut alerts = Vec::new();
        let next_id = &mut self.saved.next_alarm_id;
        for machine in &mut state.machines {
            let stage = match (machine.kind, machine.direction) {
                (AlarmKind::Outlier, Direction::High) => outlier.0,
                (AlarmKind::Outlier, _) => outlier.1,
                (AlarmKind::Stale, _) => 0,
                // Judged by the hour (below).
                (AlarmKind::Forecast, _) => continue,
                (AlarmKind::NightFlow, _) => match &night {
                    Some(n) => n.stage,
                    None => continue,
                },
                (kind, direction) => checks
                    .iter()
                    .find(|c| c.0 == kind && c.1 == direction)
                    .map_or(0, |c| c.2),
            };
            let lifecycle = lifecycle_of(machine.kind, settings);
            // Before a whole week has been seen, no outlier alarm opens (the system checks still
            // judge); until the criteria resolve the hour of the week, only gross deviations
            // are staged at all (above), so only they can open one.
            let percentile = match machine.kind {
                AlarmKind::Outlier if first_week => 0.0,
                AlarmKind::Outlier => judgement.percentile.unwrap_or(100.0),
                _ => 100.0,
            };
            // Silences and nights count alone; every other check's windows are also times.
            let counted_alone = matches!(machine.kind, AlarmKind::Stale | AlarmKind::NightFlow);
            let at = (!counted_alone).then_some(Taken {
                ts,
                interval: state.checks.interval().unwrap_or(60),
            });
            if let Some((transition, stage, alarm_id)) =
                machine.step(stage, percentile, &lifecycle, next_id, at)
            {
                let values = match machine.kind {
                    AlarmKind::Outlier => (Some(value), judgement.expected, judgement.percentile),
                    AlarmKind::NightFlow => night_values(night.as_ref()),
                    _ => (Some(value), judgement.expected, None),
                };
                alerts.push(alert(
                    settings,
                    machine,
                    (transition, stage, alarm_id),
                    ts,
                    values,
                ));
            }
        }
        let hour = hour_start(ts, self.phase);
        let closed = state.hour_sum.add(hour, value);
        alerts.extend(self.judge_hour(series, closed));
        (judgement, alerts)
    }

    /// Steps the forecast-residual alarms of `series` with the hour `closed` (start, sum,
    /// count), if it has a forecast.
    fn judge_hour(&mut self, series: usize, closed: Option<(Timestamp, f64, u32)>) -> Vec<Alert> {
        let state = &mut self.saved.series[series];
        let interval = state.checks.interval().unwrap_or(60);
        let Some(judged) =
            closed.and_then(|c| residual::judge_hour(&self.forecasts[series], c, interval))
        else {
            return Vec::new();
        };
        let settings = &self.settings[series];
        let lifecycle = lifecycle_of(AlarmKind::Forecast, settings);
        let next_id = &mut self.saved.next_alarm_id;
        let mut alerts = Vec::new();
        // The side whose alarm is open: one departure from the forecast is one alarm, and a
        // forecast that overshoots while it lasts does not open the other side's.
        let open_side = state
            .machines
            .iter()
            .find(|m| m.kind == AlarmKind::Forecast && m.open.is_some())
            .map(|m| {
                if m.direction == Direction::High {
                    1
                } else {
                    -1
                }
            });
        for machine in &mut state.machines {
            let side = match (machine.kind, machine.direction) {
                (AlarmKind::Forecast, Direction::High) => 1,
                (AlarmKind::Forecast, _) => -1,
                _ => continue,
            };
            let other_open = open_side.is_some_and(|s| s != side);
            let stage = if judged.side == side && !other_open {
                3
            } else {
                0
            };
            if let Some(transition) = machine.step(stage, 100.0, &lifecycle, next_id, None) {
                alerts.push(alert(
                    settings,
                    machine,
                    transition,
                    judged.hour + 3600,
                    (Some(judged.mean), Some(judged.forecast.value), None),
                ));
            }
        }
        alerts
    }

    /// Advances time to `now` without a reading: opens `stale` alarms of series silent for
    /// their stale time (at least 3 of their typical intervals), and closes nights whose window
    /// has passed.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Alert> {
        let local = self.clock.local(now);
        let mut alerts = Vec::new();
        let mut hours = Vec::new();
        for (index, (state, settings)) in
            self.saved.series.iter_mut().zip(&self.settings).enumerate()
        {
            let stale_after = state.checks.stale_after(settings);
            let stale = state
                .checks
                .last
                .is_some_and(|(last, _)| now - last >= stale_after);
            let night = match (&mut state.night, &settings.night_flow) {
                (Some(nf), Some(ns)) => nf.tick(ns, local),
                _ => None,
            };
            if let Some(n) = &night {
                self.nights.push((index, n.clone()));
            }
            let closed = state.hour_sum.close_before(hour_start(now, self.phase));
            hours.push((index, closed));
            let next_id = &mut self.saved.next_alarm_id;
            for machine in &mut state.machines {
                let (stage, values) = match machine.kind {
                    AlarmKind::Stale if stale => (3, (None, None, None)),
                    AlarmKind::NightFlow if night.is_some() => (
                        night.as_ref().map_or(0, |n| n.stage),
                        night_values(night.as_ref()),
                    ),
                    _ => continue,
                };
                let lifecycle = lifecycle_of(machine.kind, settings);
                if let Some((transition, stage, alarm_id)) =
                    machine.step(stage, 100.0, &lifecycle, next_id, None)
                {
                    alerts.push(alert(
                        settings,
                        machine,
                        (transition, stage, alarm_id),
                        now,
                        values,
                    ));
                }
            }
        }
        for (index, closed) in hours {
            alerts.extend(self.judge_hour(index, closed));
        }
        alerts
    }
}

/// The alert of a machine's transition `(transition, stage, alarm id)` at `time`, with the
/// `(value, expected, percentile)` it reports.
fn alert(
    settings: &SeriesSettings,
    machine: &Machine,
    (state, stage, alarm_id): (Transition, u8, u64),
    time: Timestamp,
    (value, expected, percentile): (Option<f64>, Option<f64>, Option<f64>),
) -> Alert {
    Alert {
        alarm_id,
        series: settings.name.clone(),
        unit: settings.unit.clone(),
        kind: machine.kind,
        direction: machine.direction,
        stage,
        state,
        time,
        value,
        expected,
        percentile,
    }
}

fn night_values(night: Option<&NightResult>) -> (Option<f64>, Option<f64>, Option<f64>) {
    match night {
        Some(n) => (Some(n.minimum).filter(|m| m.is_finite()), n.baseline, None),
        None => (None, None, None),
    }
}
