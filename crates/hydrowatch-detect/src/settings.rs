//! Detection settings of one series, with the defaults tuned on a simulated year
//! (docs/DETECTION.md).

use serde::{Deserialize, Serialize};

use crate::lifecycle::LifecycleSettings;
use crate::nightflow::NightSettings;
use crate::{DetectError, Limits};

/// How one series is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSettings {
    /// Series name, e.g. `flow_rate`.
    pub name: String,
    /// Unit of its values, for messages.
    pub unit: String,
    /// Lowest physically possible value (readings below open a `range` alarm); `None`: learned
    /// from the series' history (see the limits module).
    pub min: Option<f64>,
    /// Highest physically possible value; `None`: learned.
    pub max: Option<f64>,
    /// Percentiles where stages 1-4 start (interest, caution, warning, critical).
    pub stages: [f64; 4],
    /// Days of history the criteria are fitted on.
    pub trailing_days: u32,
    /// Minutes without a reading before a `stale` alarm.
    pub stale_minutes: u32,
    /// Minutes of identical readings before a `stuck` alarm.
    pub stuck_minutes: u32,
    /// Largest plausible change per minute (a faster one opens a `jump` alarm); `None`: learned
    /// from the series' history.
    pub max_rate: Option<f64>,
    /// Night-flow tracking (flow series only); `None`: off.
    pub night_flow: Option<NightSettings>,
    /// When outlier alarms open, de-escalate and clear.
    pub lifecycle: LifecycleSettings,
}

impl SeriesSettings {
    /// Defaults for a series: stages at the 90/95/98/99th percentile, 28 days of criteria,
    /// stale after 15 minutes, stuck after 30, the range and the largest plausible change
    /// learned from its history, night flow for flow series.
    pub fn new(name: &str, unit: &str, flow: bool) -> SeriesSettings {
        SeriesSettings {
            name: name.to_string(),
            unit: unit.to_string(),
            min: None,
            max: None,
            stages: [90.0, 95.0, 98.0, 99.0],
            trailing_days: 28,
            stale_minutes: 15,
            stuck_minutes: 30,
            max_rate: None,
            night_flow: flow.then(NightSettings::default),
            lifecycle: LifecycleSettings::default(),
        }
    }

    /// Checks the settings, naming the first one that cannot work.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |field, message: String| {
            Err(DetectError::Settings {
                series: self.name.clone(),
                field,
                message,
            })
        };
        let s = self.stages;
        if !(s.iter().all(|p| (50.0..100.0).contains(p)) && s.windows(2).all(|w| w[0] < w[1])) {
            return bad(
                "stages",
                format!("{s:?}: four increasing percentiles in [50, 100) are needed"),
            );
        }
        let finite = |x: Option<f64>| x.is_none_or(f64::is_finite);
        if !finite(self.min)
            || !finite(self.max)
            || self.min.zip(self.max).is_some_and(|(lo, hi)| lo >= hi)
        {
            return bad(
                "min/max",
                format!(
                    "min {:?} must be below max {:?}, both finite",
                    self.min, self.max
                ),
            );
        }
        if self.trailing_days == 0 {
            return bad("trailing_days", "must be at least 1".into());
        }
        if self.stale_minutes == 0 || self.stuck_minutes == 0 {
            return bad(
                "stale_minutes/stuck_minutes",
                "must be at least 1 minute".into(),
            );
        }
        if self.max_rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return bad("max_rate", format!("{:?}: must be positive", self.max_rate));
        }
        if let Some(n) = &self.night_flow {
            n.validate().map_err(|message| DetectError::Settings {
                series: self.name.clone(),
                field: "night_flow",
                message,
            })?;
        }
        self.lifecycle
            .validate()
            .map_err(|message| DetectError::Settings {
                series: self.name.clone(),
                field: "lifecycle",
                message,
            })
    }

    /// The system checks' limits in words, each configured or learned (`learned`: the newest
    /// criteria's), e.g. `range 0 to 812.5 (learned), largest change 35.2 per 60 s (learned),
    /// rests at 0`.
    pub fn describe_checks(&self, learned: Option<&Limits>) -> String {
        let number = |x: f64| format!("{}", (x * 1000.0).round() / 1000.0);
        let limit = |configured: Option<f64>, learned: Option<f64>| match (configured, learned) {
            (Some(c), _) => format!("{} (configured)", number(c)),
            (None, Some(l)) => format!("{} (learned)", number(l)),
            (None, None) => "not learned yet".to_string(),
        };
        let range = format!(
            "range {} to {}",
            limit(self.min, learned.map(|l| l.min)),
            limit(self.max, learned.map(|l| l.max))
        );
        let change = match (self.max_rate, learned) {
            (Some(r), _) => format!("largest change {} a minute (configured)", number(r)),
            (None, Some(l)) if l.max_step.is_finite() => {
                let weekly = l.weekly_step.iter().filter(|s| **s > l.max_step).count();
                format!(
                    "largest change {} per {} s (learned{})",
                    number(l.max_step),
                    l.interval,
                    if weekly > 0 {
                        format!("; larger at {weekly} hours of the week where it recurs")
                    } else {
                        String::new()
                    }
                )
            }
            (None, _) => "largest change not learned yet".to_string(),
        };
        let rests = match learned {
            Some(l) if !l.resting.is_empty() => {
                let values: Vec<String> = l.resting.iter().map(|v| number(*v)).collect();
                format!(", rests at {} (never stuck there)", values.join(", "))
            }
            _ => String::new(),
        };
        format!("{range}, {change}{rests}")
    }

    /// The stage of a percentile: `k` where `stages[k-1] <= p < stages[k]`, 0 below the first.
    pub fn stage_of(&self, percentile: f64) -> u8 {
        self.stages.iter().filter(|s| percentile >= **s).count() as u8
    }
}
