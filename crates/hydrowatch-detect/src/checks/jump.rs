//! `jump`: a change faster than plausible since the last reading (the configured rate per
//! minute, or the step learned per typical interval at the reading's hour of the week).

use crate::checks::{Check, Found, HIGH_AND_LOW, Memory, Seen, stage_if};
use crate::lifecycle::LifecycleSettings;
use crate::{AlarmKind, Direction, SeriesSettings};

/// The jump check.
pub(crate) struct Jump;

impl Check for Jump {
    fn kind(&self) -> AlarmKind {
        AlarmKind::Jump
    }

    fn directions(&self, _: &SeriesSettings) -> &'static [Direction] {
        HIGH_AND_LOW
    }

    fn lifecycle(&self, _: &SeriesSettings) -> LifecycleSettings {
        LifecycleSettings::immediate(3)
    }

    fn stages_the_reading(&self) -> bool {
        true
    }

    fn reading(&self, seen: &Seen, _: Option<&mut dyn Memory>) -> Option<Found> {
        let (mut high, mut low) = (false, false);
        if let Some((last_ts, last_value)) = seen.previous
            && last_value != seen.value
        {
            let gap = seen.ts - last_ts;
            // The change allowed over `gap`: a configured rate per minute (a gap under a minute
            // allows a minute's change), or the learned step per typical interval.
            let allowed = match (seen.settings.max_rate, seen.learned()) {
                (Some(rate), _) => Some(rate * gap.max(60) as f64 / 60.0),
                (None, Some(l)) => {
                    let interval = l.interval.max(1);
                    Some(l.step_at(seen.hour) * gap.max(interval) as f64 / interval as f64)
                }
                (None, None) => None,
            };
            if let Some(allowed) = allowed {
                let change = seen.value - last_value;
                high = change > allowed;
                low = -change > allowed;
            }
        }
        let reported = (Some(seen.value), seen.judgement.expected, None);
        Some(Found::sides(
            (stage_if(high, 3), stage_if(low, 3)),
            seen.ts,
            reported,
        ))
    }
}
