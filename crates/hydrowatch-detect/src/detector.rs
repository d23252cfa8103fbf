//! The detector of a device: every series' criteria, checks, night flow and alarm machines.
//! [`Detector::observe`] judges one reading; [`Detector::tick`] advances time without one
//! (stale sensors, nights that ended without a reading after them).

use std::collections::BTreeMap;

use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::{hour_phase, hour_start};
use hydrowatch_protocol::DetectableLeak;
use serde::{Deserialize, Serialize};

use crate::checks::{self, CHECKS, ClosedHour, Found, Judges, Memories, Reported, Seen, Ticked};
use crate::clock::LocalClock;
use crate::criteria::{follow_level, minute_of_week};
use crate::judgement::{Judgement, Verdict};
use crate::lifecycle::{LifecycleSettings, Machine, Taken};
use crate::nightflow::{NightFlow, NightResult};
use crate::residual::{HourForecast, HourSum};
use crate::sampling::Sampling;
use crate::switches::{Offset, Recent};
use crate::{AlarmKind, Alert, Criteria, DetectError, Direction, SeriesSettings, Transition};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeriesState {
    name: String,
    criteria: Option<Criteria>,
    /// Saved as `checks`, its name before the checks were registered.
    #[serde(rename = "checks")]
    sampling: Sampling,
    machines: Vec<Machine>,
    /// The level of the deviation from expected (see the criteria module): time, level.
    level: Option<(Timestamp, f64)>,
    /// The hour being summed for the checks that judge hours.
    #[serde(default)]
    hour_sum: HourSum,
    /// The last readings, to recognise a switch (see the switches module).
    #[serde(default)]
    recent: Recent,
    /// The state's offset from the starting one: the night test judges the series less it (a
    /// pump running through the night is not a leak).
    #[serde(default)]
    offset: Offset,
    /// The checks' own memories, each saved as a field of its own.
    #[serde(flatten)]
    memories: Memories,
    /// Per machine, how it is stepped (from its check and the series' settings).
    #[serde(skip)]
    wiring: Vec<Wiring>,
    /// The checks whose stage is also the reading's, with their directions on the series, in
    /// the order of [`CHECKS`].
    #[serde(skip)]
    staging: Vec<(usize, Direction)>,
}

/// How a machine is stepped: its check's place in [`CHECKS`] and the check's lifecycle on the
/// series, worked out once.
#[derive(Debug, Clone)]
struct Wiring {
    check: usize,
    lifecycle: LifecycleSettings,
    counted_alone: bool,
}

impl SeriesState {
    /// Adds the machines of the checks that judge a series with `settings` and have none yet
    /// (all of them on a new series; on a restored one, the checks added since it was saved),
    /// and finds every machine's check.
    fn complete_machines(&mut self, settings: &SeriesSettings) -> Result<(), DetectError> {
        for check in CHECKS {
            for &direction in check.directions(settings) {
                let known = self
                    .machines
                    .iter()
                    .any(|m| (m.kind, m.direction) == (check.kind(), direction));
                if !known {
                    self.machines.push(Machine::new(check.kind(), direction));
                }
            }
        }
        self.wiring = self
            .machines
            .iter()
            .map(|m| {
                let check = checks::index_of(m.kind)?;
                Some(Wiring {
                    check,
                    lifecycle: CHECKS[check].lifecycle(settings),
                    counted_alone: CHECKS[check].counted_alone(),
                })
            })
            .collect::<Option<_>>()
            .ok_or_else(|| {
                DetectError::State(serde::de::Error::custom(
                    "a stored alarm is of a kind no check raises",
                ))
            })?;
        self.staging = CHECKS
            .iter()
            .enumerate()
            .filter(|(_, c)| c.stages_the_reading())
            .flat_map(|(i, c)| c.directions(settings).iter().map(move |&d| (i, d)))
            .collect();
        Ok(())
    }

    /// Steps every machine whose check judged the event (`found`, by check), pushing the
    /// alerts of their transitions; `at`: when the reading was taken, for the windows that are
    /// also times.
    fn step(
        &mut self,
        settings: &SeriesSettings,
        found: &[Option<Found>],
        at: Option<Taken>,
        next_id: &mut u64,
        alerts: &mut Vec<Alert>,
    ) {
        if found.iter().all(Option::is_none) {
            return;
        }
        for (machine, wiring) in self.machines.iter_mut().zip(&self.wiring) {
            let Some(f) = &found[wiring.check] else {
                continue;
            };
            let at = at.filter(|_| !wiring.counted_alone);
            if let Some((transition, stage, alarm_id)) = machine.step(
                f.stage(machine.direction),
                f.percentile,
                &wiring.lifecycle,
                next_id,
                at,
            ) {
                alerts.push(alert(
                    settings,
                    machine,
                    (transition, stage, alarm_id),
                    f.time,
                    f.reported,
                ));
            }
        }
    }

    /// The reading's deviation from the criteria's expectation, in spreads, and the judgement
    /// it makes (expected value, percentile, direction); follows the level, and takes a step
    /// of a size the series takes when something changes state (a pump) as the new state.
    fn expect(&mut self, ts: Timestamp, value: f64, minute: u32) -> (Judgement, Option<f64>) {
        let mut judgement = Judgement::unjudged(Verdict::Judged);
        let Some(c) = &self.criteria else {
            return (judgement, None);
        };
        let (expected, spread) = c.at(minute);
        if !c.switches.is_empty() {
            let gap = 3 * self.sampling.interval().unwrap_or(60);
            let switched = self
                .recent
                .switched(&c.switches, ts, (value, expected), gap);
            if let Some(step) = switched {
                self.offset.take(&c.switches, step);
                self.level = Some((ts, c.deviation(value, expected)));
            }
        }
        let level = self.level.map_or(0.0, |(_, l)| l);
        let deviation = c.deviation(value, expected);
        let z = c.in_units(
            follow_level(&mut self.level, ts, deviation, false),
            expected,
        ) / spread;
        // Far-out readings do not move the level: a burst must not become the level its end is
        // judged against. Ordinary excursions (even at stage 4) still do, or the level would
        // stop following the noise it is there to follow.
        if z.abs() < FREEZE_Z {
            follow_level(&mut self.level, ts, deviation, true);
        }
        judgement.direction = Some(if z >= 0.0 {
            Direction::High
        } else {
            Direction::Low
        });
        judgement.percentile = Some(100.0 * phi(z.abs()));
        judgement.expected = Some(expected + c.in_units(level, expected));
        (judgement, Some(z))
    }
}

/// The part of a detector that is saved across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// What each check found of the event being judged, by check (kept to spare an allocation
    /// a reading).
    found: Vec<Option<Found>>,
    /// The checks that judge readings, time passing and closed hours, by place in [`CHECKS`].
    judging: [Vec<usize>; 3],
    /// Per series, the hour a tick closed (start, sum, count), judged once every series ticked.
    closed: Vec<Option<(Timestamp, f64, u32)>>,
}

/// The checks judging each event: readings, time passing, closed hours.
fn judging() -> [Vec<usize>; 3] {
    let of = |judges: fn(Judges) -> bool| -> Vec<usize> {
        (0..CHECKS.len())
            .filter(|&i| judges(CHECKS[i].judges()))
            .collect()
    };
    [of(|j| j.readings), of(|j| j.time), of(|j| j.hours)]
}

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
        let mut series = Vec::with_capacity(settings.len());
        for s in &settings {
            let mut state = SeriesState {
                name: s.name.clone(),
                criteria: None,
                sampling: Sampling::default(),
                machines: Vec::new(),
                level: None,
                hour_sum: HourSum::default(),
                recent: Recent::default(),
                offset: Offset::default(),
                memories: Memories::new(s),
                wiring: Vec::new(),
                staging: Vec::new(),
            };
            state.complete_machines(s)?;
            series.push(state);
        }
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
            found: vec![None; CHECKS.len()],
            judging: judging(),
            closed: vec![None; n],
        })
    }

    /// A detector continuing from a state saved by [`Detector::state_json`]; the settings are
    /// today's, the series must be the same. Checks added since the state was saved start
    /// closed.
    pub fn restore(
        tz: Tz,
        settings: Vec<SeriesSettings>,
        state: &str,
    ) -> Result<Detector, DetectError> {
        let mut detector = Detector::new(tz, settings)?;
        let mut saved: Saved = serde_json::from_str(state)?;
        let stored: Vec<String> = saved.series.iter().map(|s| s.name.clone()).collect();
        let configured: Vec<String> = detector.settings.iter().map(|s| s.name.clone()).collect();
        if stored != configured {
            return Err(DetectError::StateMismatch { stored, configured });
        }
        for (state, settings) in saved.series.iter_mut().zip(&detector.settings) {
            state.memories.restore(settings)?;
            state.complete_machines(settings)?;
        }
        detector.saved = saved;
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
            .sampling
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
                let (last, _) = state.sampling.last?;
                let due = last + state.sampling.stale_after(settings);
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
        self.saved.series[series].sampling.last.map(|(t, _)| t)
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
        self.saved.series[series]
            .memories
            .find::<NightFlow>()?
            .detectable()
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
        if state.sampling.last.is_some_and(|(last, _)| ts <= last) {
            return (Judgement::unjudged(Verdict::Late), Vec::new());
        }
        let settings = &self.settings[series];
        let local = self.clock.local(ts);
        let minute = minute_of_week(local);
        self.last_minute = minute;
        let previous = state.sampling.add(ts, value);
        let (mut judgement, z) = state.expect(ts, value, minute);
        let seen = Seen {
            settings,
            ts,
            value,
            local,
            hour: minute as usize / 60,
            sampling: &state.sampling,
            previous,
            criteria: state.criteria.as_ref(),
            z,
            judgement: &judgement,
            offset: state.offset.value(),
        };
        self.found.fill(None);
        for &index in &self.judging[0] {
            self.found[index] = CHECKS[index].reading(&seen, state.memories.of(index));
        }
        // The reading's stage is the highest any check staging readings gave it; a later
        // check wins a tie (a reading outside the range is a range problem first).
        for &(index, direction) in &state.staging {
            let stage = self.found[index].as_ref().map_or(0, |f| f.stage(direction));
            if stage > 0 && stage >= judgement.stage {
                judgement.stage = stage;
                judgement.kind = Some(CHECKS[index].kind());
                judgement.direction = Some(direction);
            }
        }
        keep_nights(series, &mut self.found, &mut self.nights);
        let mut alerts = Vec::new();
        let at = Taken {
            ts,
            interval: state.sampling.interval().unwrap_or(60),
        };
        let next_id = &mut self.saved.next_alarm_id;
        state.step(settings, &self.found, Some(at), next_id, &mut alerts);
        let closed = state.hour_sum.add(hour_start(ts, self.phase), value);
        self.judge_hour(series, closed, &mut alerts);
        (judgement, alerts)
    }

    /// Judges the hour `closed` (start, sum, count) of `series`, if one closed, by every check
    /// that judges hours.
    fn judge_hour(
        &mut self,
        series: usize,
        closed: Option<(Timestamp, f64, u32)>,
        alerts: &mut Vec<Alert>,
    ) {
        let Some(closed) = closed else { return };
        let state = &mut self.saved.series[series];
        self.found.fill(None);
        for &index in &self.judging[2] {
            let check = CHECKS[index];
            let open = state
                .machines
                .iter()
                .find(|m| m.kind == check.kind() && m.open.is_some())
                .map(|m| m.direction);
            self.found[index] = check.hour(&ClosedHour {
                closed,
                forecasts: &self.forecasts[series],
                interval: state.sampling.interval().unwrap_or(60),
                open,
            });
        }
        let next_id = &mut self.saved.next_alarm_id;
        state.step(&self.settings[series], &self.found, None, next_id, alerts);
    }

    /// Advances time to `now` without a reading: every check judges the time passed (a series
    /// silent for its stale time, a night whose window has passed), then the hours it closed.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Alert> {
        let local = self.clock.local(now);
        let mut alerts = Vec::new();
        for series in 0..self.settings.len() {
            let state = &mut self.saved.series[series];
            let settings = &self.settings[series];
            let ticked = Ticked {
                settings,
                now,
                local,
                sampling: &state.sampling,
            };
            self.found.fill(None);
            for &index in &self.judging[1] {
                self.found[index] = CHECKS[index].tick(&ticked, state.memories.of(index));
            }
            keep_nights(series, &mut self.found, &mut self.nights);
            self.closed[series] = state.hour_sum.close_before(hour_start(now, self.phase));
            let next_id = &mut self.saved.next_alarm_id;
            state.step(settings, &self.found, None, next_id, &mut alerts);
        }
        for series in 0..self.settings.len() {
            let closed = self.closed[series].take();
            self.judge_hour(series, closed, &mut alerts);
        }
        alerts
    }
}

/// Keeps the night a check of series `series` summed up, if one did.
fn keep_nights(series: usize, found: &mut [Option<Found>], nights: &mut Vec<(usize, NightResult)>) {
    for found in found.iter_mut().flatten() {
        if let Some(night) = found.night.take() {
            nights.push((series, *night));
        }
    }
}

/// The alert of a machine's transition `(transition, stage, alarm id)` at `time`, with the
/// `(value, expected, percentile)` it reports.
fn alert(
    settings: &SeriesSettings,
    machine: &Machine,
    (state, stage, alarm_id): (Transition, u8, u64),
    time: Timestamp,
    (value, expected, percentile): Reported,
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
