//! `range`: outside the sensor's physical range (configured, or learned from its history).

use crate::checks::{Check, Found, HIGH_AND_LOW, Memory, Seen, stage_if};
use crate::lifecycle::LifecycleSettings;
use crate::{AlarmKind, Direction, SeriesSettings};

/// The range check.
pub(crate) struct Range;

impl Check for Range {
    fn kind(&self) -> AlarmKind {
        AlarmKind::Range
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
        // Where the settings leave the range open, the learned limits (if any yet) stand in.
        let learned = seen.learned();
        let min = seen.settings.min.or(learned.map(|l| l.min));
        let max = seen.settings.max.or(learned.map(|l| l.max));
        let high = max.is_some_and(|m| seen.value > m);
        let low = min.is_some_and(|m| seen.value < m);
        let reported = (Some(seen.value), seen.judgement.expected, None);
        Some(Found::sides(
            (stage_if(high, 4), stage_if(low, 4)),
            seen.ts,
            reported,
        ))
    }
}
