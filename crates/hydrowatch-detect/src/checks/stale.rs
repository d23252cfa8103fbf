//! `stale`: no reading for the series' stale time (at least [`crate::sampling::STALE_INTERVALS`]
//! of its typical intervals). Judged when time passes without a reading; a reading clears it.

use crate::checks::{Check, Found, Judges, Memory, Seen, Ticked};
use crate::lifecycle::LifecycleSettings;
use crate::{AlarmKind, Direction, SeriesSettings};

/// The stale check.
pub(crate) struct Stale;

impl Check for Stale {
    fn kind(&self) -> AlarmKind {
        AlarmKind::Stale
    }

    fn directions(&self, _: &SeriesSettings) -> &'static [Direction] {
        &[Direction::None]
    }

    fn lifecycle(&self, _: &SeriesSettings) -> LifecycleSettings {
        // A reading clears it.
        LifecycleSettings::immediate(1)
    }

    fn counted_alone(&self) -> bool {
        true
    }

    fn judges(&self) -> Judges {
        Judges::READINGS_AND_TIME
    }

    fn reading(&self, seen: &Seen, _: Option<&mut dyn Memory>) -> Option<Found> {
        let reported = (Some(seen.value), seen.judgement.expected, None);
        Some(Found::one(0, seen.ts, reported))
    }

    fn tick(&self, ticked: &Ticked, _: Option<&mut dyn Memory>) -> Option<Found> {
        let stale_after = ticked.sampling.stale_after(ticked.settings);
        let (last, _) = ticked.sampling.last?;
        (ticked.now - last >= stale_after).then(|| Found::one(3, ticked.now, (None, None, None)))
    }
}
