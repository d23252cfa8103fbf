//! `stuck`: the same value for the series' stuck time (at least
//! [`crate::sampling::STUCK_INTERVALS`] of its typical intervals).

use crate::checks::{Check, Found, Memory, Seen, stage_if};
use crate::lifecycle::LifecycleSettings;
use crate::{AlarmKind, Direction, SeriesSettings};

/// The stuck check.
pub(crate) struct Stuck;

impl Check for Stuck {
    fn kind(&self) -> AlarmKind {
        AlarmKind::Stuck
    }

    fn directions(&self, _: &SeriesSettings) -> &'static [Direction] {
        &[Direction::None]
    }

    fn lifecycle(&self, _: &SeriesSettings) -> LifecycleSettings {
        // A changed value clears it.
        LifecycleSettings::immediate(1)
    }

    fn stages_the_reading(&self) -> bool {
        true
    }

    fn reading(&self, seen: &Seen, _: Option<&mut dyn Memory>) -> Option<Found> {
        // A value the series rests at (a pump off) is never stuck, nor is zero: a meter reads 0
        // when nothing flows (its low-flow cut-off), while a frozen sensor repeats its last
        // value.
        let resting = seen.value == 0.0 || seen.resting();
        let stuck = !resting
            && seen
                .sampling
                .same_since
                .is_some_and(|since| seen.ts - since >= seen.sampling.stuck_after(seen.settings));
        let reported = (Some(seen.value), seen.judgement.expected, None);
        Some(Found::one(stage_if(stuck, 3), seen.ts, reported))
    }
}
