//! `outlier`: a reading unusual for its hour of the week (the prototype's staged outlier),
//! judged on its deviation from the criteria's expectation and the level the detector follows.

use crate::checks::{Check, Found, HIGH_AND_LOW, Memory, Seen};
use crate::lifecycle::LifecycleSettings;
use crate::{AlarmKind, Direction, Level, SeriesSettings};

/// While the criteria are coarser than hour of week, outlier alarms need this many spreads.
const LEARNING_Z: f64 = 6.0;

/// The outlier check.
pub(crate) struct Outlier;

impl Check for Outlier {
    fn kind(&self) -> AlarmKind {
        AlarmKind::Outlier
    }

    fn directions(&self, _: &SeriesSettings) -> &'static [Direction] {
        HIGH_AND_LOW
    }

    fn lifecycle(&self, settings: &SeriesSettings) -> LifecycleSettings {
        settings.lifecycle
    }

    fn stages_the_reading(&self) -> bool {
        true
    }

    fn reading(&self, seen: &Seen, _: Option<&mut dyn Memory>) -> Option<Found> {
        let j = seen.judgement;
        let reported = (Some(seen.value), j.expected, j.percentile);
        let (Some(c), Some(z)) = (seen.criteria, seen.z) else {
            let mut found = Found::sides((0, 0), seen.ts, reported);
            found.percentile = 0.0;
            return Some(found);
        };
        // While the criteria are coarser than the hour of the week (a short history), a
        // reading is staged only when it is a gross deviation: a short history cannot say
        // whether a few spreads are unusual, and a verdict of "normal, still learning" is more
        // honest than a guess. Resting values (a pump off) are a state, at any hour.
        let learning = c.level != Level::HourOfWeek && z.abs() < LEARNING_Z;
        let stage = if seen.resting() || learning {
            0
        } else {
            seen.settings.stage_of(j.percentile.unwrap_or(0.0))
        };
        let mut found = Found::sides(
            if z >= 0.0 { (stage, 0) } else { (0, stage) },
            seen.ts,
            reported,
        );
        // Before a whole week has been seen, no outlier alarm opens (the other checks still
        // judge); until the criteria resolve the hour of the week, only gross deviations are
        // staged at all (above), so only they can open one.
        found.percentile = if c.days < 7 {
            0.0
        } else {
            j.percentile.unwrap_or(100.0)
        };
        Some(found)
    }
}
