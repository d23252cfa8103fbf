//! Scoring a detector against labelled events (the simulator writes them): per-event recall and
//! detection delay, false alarms per day, and precision/recall/F1 per reading.
//!
//! Rules, per event kind (an event is one labelled span, on one or more series):
//! - `burst`: detected by any alarm of its series reaching stage 3 or more;
//! - `leak`: detected by a `night_flow` alarm of its series;
//! - `stuck`: by a `stuck` alarm; `silent`: by a `stale` alarm;
//! - `spike` and any other kind: by any alarm of its series;
//!
//! counting alarms that open or escalate from the event's start until `GRACE` after its end (a
//! leak: only in its first [`LEAK_WINDOW`], since leaks run for months and the goal is to find
//! them within days). An opened alarm is a false alarm when no event of its series spans it
//! (with the same grace). Per reading, a reading is predicted abnormal when an alarm of its
//! series is open after it, and actually abnormal when it lies inside an event of its series.
//!
//! Credibility: a run on the scenario's leak-free twin (the same draws without any event) gives
//! the rate at which alarms that would qualify for an event appear by chance. A find is credible
//! when the probability that such an alarm falls between the event's start and the find,
//! `1 - exp(-rate * delay)`, is under [`CREDIBLE`]: a detector that alarms often "finds" every
//! long event by chance, and that is no find.
//!
//! Alarm load (ISA-18.2): alarms opened per day, chattering (an alarm of the same series, kind
//! and direction opening again within [`CHATTER_SECONDS`] of its clearing) and standing alarms
//! (open for [`STANDING_SECONDS`] or more).

use std::collections::BTreeMap;

use hydrowatch_core::Timestamp;
use serde::Serialize;

use crate::{AlarmKind, Alert, Transition};

/// Alarms this long after an event's end still belong to it (they clear with hysteresis, and a
/// repaired leak changes the night after).
pub const GRACE: i64 = 6 * 3600;

/// A leak is scored on its first days only: found within this long of its start, or missed.
pub const LEAK_WINDOW: i64 = 3 * 86_400;

/// A find is credible when chance alone would have made it with a probability under this.
pub const CREDIBLE: f64 = 0.1;

/// An alarm opening again this soon after it cleared is chattering.
pub const CHATTER_SECONDS: i64 = 3600;

/// An alarm open this long is a standing alarm.
pub const STANDING_SECONDS: i64 = 86_400;

/// One labelled span on one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (exclusive).
    pub end: Timestamp,
    /// Event kind (`burst`, `leak`, `stuck`, `silent`, `spike`, ...).
    pub kind: String,
    /// The series affected.
    pub series: String,
}

/// How one event was detected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventScore {
    /// Event kind.
    pub kind: String,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// Series affected.
    pub series: Vec<String>,
    /// First qualifying alarm: its time, kind and stage.
    pub detected: Option<(Timestamp, AlarmKind, u8)>,
}

impl EventScore {
    /// Minutes from the event's start to its detection.
    pub fn delay_minutes(&self) -> Option<f64> {
        self.detected
            .map(|(t, _, _)| (t - self.start) as f64 / 60.0)
    }
}

/// Reading-level confusion counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Confusion {
    /// Abnormal and flagged.
    pub true_positive: u64,
    /// Normal but flagged.
    pub false_positive: u64,
    /// Abnormal, not flagged.
    pub false_negative: u64,
    /// Normal, not flagged.
    pub true_negative: u64,
}

impl Confusion {
    /// Precision.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }
    /// Recall.
    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }
    /// F1.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Whether an alarm of `kind` reaching `stage` finds an event of `event_kind`.
fn qualifies(event_kind: &str, kind: AlarmKind, stage: u8) -> bool {
    match event_kind {
        "burst" => stage >= 3,
        "leak" => kind == AlarmKind::NightFlow,
        "stuck" => kind == AlarmKind::Stuck,
        "silent" => kind == AlarmKind::Stale,
        _ => true,
    }
}

/// The alarm load of a run (ISA-18.2's figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AlarmLoad {
    /// Alarms opened.
    pub opened: usize,
    /// Openings within [`CHATTER_SECONDS`] of the same alarm's clearing.
    pub chattering: usize,
    /// Alarms open for [`STANDING_SECONDS`] or more (counted when they clear, or at the end).
    pub standing: usize,
}

/// An alarm that opened or escalated: series, kind, stage, alarm id.
type Raised = (String, AlarmKind, u8, u64);

/// One alarm's machine: series, kind, direction.
type AlarmKey = (String, AlarmKind, crate::Direction);

/// When an alarm opened (while open) and when it last cleared.
type OpenedCleared = (Option<Timestamp>, Option<Timestamp>);

/// Accumulates the scores of one run.
#[derive(Debug, Clone)]
pub struct Scorer {
    /// Events, grouped from the labels by (start, end, kind).
    events: Vec<EventScore>,
    /// Label spans per series, sorted by start.
    spans: BTreeMap<String, Vec<(Timestamp, Timestamp)>>,
    /// Open alarms per series.
    open: BTreeMap<String, usize>,
    /// Opened alarms outside every event: (time, series, kind).
    false_alarms: Vec<(Timestamp, String, AlarmKind)>,
    confusion: Confusion,
    /// Every alarm that opened or escalated.
    raised: Vec<Raised>,
    /// Per (series, kind, direction): when it opened, when it last cleared.
    lifecycle: BTreeMap<AlarmKey, OpenedCleared>,
    load: AlarmLoad,
    last: Timestamp,
}

/// How credible one find is, against a leak-free twin's chance alarms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Credibility {
    /// Qualifying alarms a week on the twin (for this event's kind and series).
    pub chance_per_week: f64,
    /// The probability that chance alone makes the find as early (`None`: not found).
    pub chance: Option<f64>,
}

impl Credibility {
    /// Found, and earlier than chance would explain.
    pub fn credible(&self) -> bool {
        self.chance.is_some_and(|p| p < CREDIBLE)
    }
}

impl Scorer {
    /// A scorer for `labels`.
    pub fn new(labels: &[Label]) -> Scorer {
        let mut grouped: BTreeMap<(Timestamp, Timestamp, String), Vec<String>> = BTreeMap::new();
        let mut spans: BTreeMap<String, Vec<(Timestamp, Timestamp)>> = BTreeMap::new();
        for l in labels {
            grouped
                .entry((l.start, l.end, l.kind.clone()))
                .or_default()
                .push(l.series.clone());
            spans
                .entry(l.series.clone())
                .or_default()
                .push((l.start, l.end));
        }
        for s in spans.values_mut() {
            s.sort();
        }
        Scorer {
            events: grouped
                .into_iter()
                .map(|((start, end, kind), series)| EventScore {
                    kind,
                    start,
                    end,
                    series,
                    detected: None,
                })
                .collect(),
            spans,
            open: BTreeMap::new(),
            false_alarms: Vec::new(),
            confusion: Confusion::default(),
            raised: Vec::new(),
            lifecycle: BTreeMap::new(),
            load: AlarmLoad::default(),
            last: Timestamp::MIN,
        }
    }

    /// The alarm load so far (alarms still open for [`STANDING_SECONDS`] at the last alert or
    /// reading count as standing).
    pub fn load(&self) -> AlarmLoad {
        let mut load = self.load;
        load.standing += self
            .lifecycle
            .values()
            .filter(|(open, _)| open.is_some_and(|t| self.last - t >= STANDING_SECONDS))
            .count();
        load
    }

    /// How credible each event's find is, given `twin`: the scorer of a run on the leak-free
    /// twin over `twin_weeks` (its every alarm is false).
    pub fn credibility(&self, twin: &Scorer, twin_weeks: f64) -> Vec<Credibility> {
        self.events
            .iter()
            .map(|e| {
                let mut ids: Vec<u64> = twin
                    .raised
                    .iter()
                    .filter(|(series, kind, stage, _)| {
                        qualifies(&e.kind, *kind, *stage) && e.series.contains(series)
                    })
                    .map(|r| r.3)
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let per_week = ids.len() as f64 / twin_weeks.max(1e-9);
                let chance = e
                    .delay_minutes()
                    .map(|minutes| 1.0 - (-per_week * minutes / (7.0 * 1440.0)).exp());
                Credibility {
                    chance_per_week: per_week,
                    chance,
                }
            })
            .collect()
    }

    fn inside(&self, series: &str, ts: Timestamp, grace: i64) -> bool {
        self.spans.get(series).is_some_and(|spans| {
            // Spans are few (tens a year): a scan is clear and fast enough.
            spans.iter().any(|(s, e)| *s <= ts && ts < e + grace)
        })
    }

    /// Records the alerts of one reading or tick.
    pub fn alerts(&mut self, alerts: &[Alert]) {
        for a in alerts {
            self.last = self.last.max(a.time);
            let key = (a.series.clone(), a.kind, a.direction);
            let (opened_at, cleared_at) = self.lifecycle.entry(key).or_default();
            match a.state {
                Transition::Opened => {
                    self.load.opened += 1;
                    if cleared_at.is_some_and(|c| a.time - c < CHATTER_SECONDS) {
                        self.load.chattering += 1;
                    }
                    *opened_at = Some(a.time);
                }
                Transition::Cleared => {
                    if opened_at.is_some_and(|o| a.time - o >= STANDING_SECONDS) {
                        self.load.standing += 1;
                    }
                    *opened_at = None;
                    *cleared_at = Some(a.time);
                }
                _ => {}
            }
            if matches!(a.state, Transition::Opened | Transition::Escalated) {
                self.raised
                    .push((a.series.clone(), a.kind, a.stage, a.alarm_id));
            }
            let open = self.open.entry(a.series.clone()).or_default();
            match a.state {
                Transition::Opened => *open += 1,
                Transition::Cleared => *open = open.saturating_sub(1),
                _ => {}
            }
            if a.state == Transition::Opened && !self.inside(&a.series, a.time, GRACE) {
                self.false_alarms.push((a.time, a.series.clone(), a.kind));
            }
            if !matches!(a.state, Transition::Opened | Transition::Escalated) {
                continue;
            }
            for e in &mut self.events {
                let until = if e.kind == "leak" {
                    (e.start + LEAK_WINDOW).min(e.end + GRACE)
                } else {
                    e.end + GRACE
                };
                if e.detected.is_none()
                    && qualifies(&e.kind, a.kind, a.stage)
                    && e.series.contains(&a.series)
                    && e.start <= a.time
                    && a.time < until
                {
                    e.detected = Some((a.time, a.kind, a.stage));
                }
            }
        }
    }

    /// Records one judged reading of `series` (after its alerts were recorded).
    pub fn reading(&mut self, series: &str, ts: Timestamp) {
        self.last = self.last.max(ts);
        let predicted = self.open.get(series).is_some_and(|n| *n > 0);
        let actual = self.inside(series, ts, 0);
        let c = &mut self.confusion;
        match (actual, predicted) {
            (true, true) => c.true_positive += 1,
            (false, true) => c.false_positive += 1,
            (true, false) => c.false_negative += 1,
            (false, false) => c.true_negative += 1,
        }
    }

    /// The events and how each was detected.
    pub fn events(&self) -> &[EventScore] {
        &self.events
    }

    /// Opened alarms outside every event.
    pub fn false_alarms(&self) -> &[(Timestamp, String, AlarmKind)] {
        &self.false_alarms
    }

    /// All opened alarms.
    pub fn opened(&self) -> usize {
        self.load.opened
    }

    /// Reading-level counts.
    pub fn confusion(&self) -> Confusion {
        self.confusion
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;

    fn alert(time: Timestamp, kind: AlarmKind, stage: u8, state: Transition) -> Alert {
        Alert {
            alarm_id: 1,
            series: "flow_rate".into(),
            unit: "m3/h".into(),
            kind,
            direction: Direction::High,
            stage,
            state,
            time,
            value: Some(1.0),
            expected: None,
            percentile: None,
        }
    }

    #[test]
    fn bursts_need_stage_three_and_alarms_outside_events_are_false() {
        let labels = vec![Label {
            start: 1000,
            end: 2000,
            kind: "burst".into(),
            series: "flow_rate".into(),
        }];
        let mut s = Scorer::new(&labels);
        s.alerts(&[alert(1060, AlarmKind::Outlier, 2, Transition::Opened)]);
        s.reading("flow_rate", 1060);
        assert!(s.events()[0].detected.is_none(), "stage 2 is not enough");
        s.alerts(&[alert(1180, AlarmKind::Outlier, 3, Transition::Escalated)]);
        assert_eq!(s.events()[0].delay_minutes(), Some(3.0));
        s.alerts(&[alert(
            2000 + GRACE,
            AlarmKind::Outlier,
            3,
            Transition::Opened,
        )]);
        assert_eq!(s.false_alarms().len(), 1);
        assert_eq!(s.opened(), 2);
        s.reading("flow_rate", 3000);
        let c = s.confusion();
        assert_eq!((c.true_positive, c.false_positive), (1, 1));
    }

    #[test]
    fn a_find_is_credible_only_when_earlier_than_the_twins_chance_alarms_explain() {
        const WEEK: i64 = 7 * 86_400;
        let labels = vec![Label {
            start: 0,
            end: 40 * 86_400,
            kind: "leak".into(),
            series: "flow_rate".into(),
        }];
        // A night-flow alarm 2 days in (within the leak's first 3 days).
        let mut s = Scorer::new(&labels);
        s.alerts(&[alert(
            2 * 86_400,
            AlarmKind::NightFlow,
            2,
            Transition::Opened,
        )]);
        // Twin A: one night-flow alarm in 10 weeks (and an outlier, which cannot find a leak).
        let mut quiet = Scorer::new(&[]);
        quiet.alerts(&[alert(WEEK, AlarmKind::NightFlow, 2, Transition::Opened)]);
        quiet.alerts(&[alert(2 * WEEK, AlarmKind::Outlier, 4, Transition::Opened)]);
        let c = s.credibility(&quiet, 10.0)[0];
        assert!((c.chance_per_week - 0.1).abs() < 1e-12);
        assert!(c.credible(), "{c:?}");
        // Twin B: three a week: chance finds a leak within 2 days more often than not.
        let mut noisy = Scorer::new(&[]);
        for k in 0..30 {
            let mut a = alert(k * WEEK / 3, AlarmKind::NightFlow, 2, Transition::Opened);
            a.alarm_id = k as u64;
            noisy.alerts(&[a]);
        }
        let c = s.credibility(&noisy, 10.0)[0];
        assert!(c.chance.unwrap() > 0.5 && !c.credible(), "{c:?}");
        // A leak is scored on its first 3 days: an alarm on day 5 is no find.
        let mut late = Scorer::new(&labels);
        late.alerts(&[alert(
            5 * 86_400,
            AlarmKind::NightFlow,
            2,
            Transition::Opened,
        )]);
        assert!(late.events()[0].detected.is_none());
    }

    #[test]
    fn the_alarm_load_counts_chattering_and_standing_alarms() {
        let mut s = Scorer::new(&[]);
        s.alerts(&[alert(0, AlarmKind::Outlier, 4, Transition::Opened)]);
        s.alerts(&[alert(600, AlarmKind::Outlier, 0, Transition::Cleared)]);
        // Again 20 minutes after it cleared: chattering.
        s.alerts(&[alert(1800, AlarmKind::Outlier, 4, Transition::Opened)]);
        s.alerts(&[alert(2400, AlarmKind::Outlier, 0, Transition::Cleared)]);
        // A night-flow alarm open for two days, and one still open at the end after a day.
        s.alerts(&[alert(10_000, AlarmKind::NightFlow, 2, Transition::Opened)]);
        s.alerts(&[alert(
            10_000 + 2 * 86_400,
            AlarmKind::NightFlow,
            0,
            Transition::Cleared,
        )]);
        s.alerts(&[alert(300_000, AlarmKind::Jump, 3, Transition::Opened)]);
        s.reading("flow_rate", 300_000 + 86_400);
        let load = s.load();
        assert_eq!((load.opened, load.chattering, load.standing), (4, 1, 2));
    }
}
