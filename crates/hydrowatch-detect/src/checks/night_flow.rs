//! `night_flow`: the minimum night flow rose above its recent nights (a leak indicator), judged
//! once a night by the night test (see the nightflow module) on the series less its state's
//! offset (a pump running through the night is not a leak). Flow series with night flow on.

use crate::checks::{Check, Found, Judges, Memory, Reported, Seen, Ticked, own};
use crate::lifecycle::LifecycleSettings;
use crate::nightflow::NightFlow;
use crate::{AlarmKind, Direction, NightResult, SeriesSettings};

/// The night-flow check.
pub(crate) struct NightFlowCheck;

/// What the alert of a night reports: its minimum and the baseline.
fn reported(night: &NightResult) -> Reported {
    (
        Some(night.minimum).filter(|m| m.is_finite()),
        night.baseline,
        None,
    )
}

/// The judgement of a night that ended, if one did.
fn found(night: Option<NightResult>, time: i64) -> Option<Found> {
    let night = night?;
    let mut found = Found::one(night.stage, time, reported(&night));
    found.night = Some(Box::new(night));
    Some(found)
}

impl Check for NightFlowCheck {
    fn kind(&self) -> AlarmKind {
        AlarmKind::NightFlow
    }

    fn directions(&self, settings: &SeriesSettings) -> &'static [Direction] {
        if settings.night_flow.is_some() {
            &[Direction::High]
        } else {
            &[]
        }
    }

    fn lifecycle(&self, _: &SeriesSettings) -> LifecycleSettings {
        // Two normal nights in a row.
        LifecycleSettings::immediate(2)
    }

    fn counted_alone(&self) -> bool {
        true
    }

    fn judges(&self) -> Judges {
        Judges::READINGS_AND_TIME
    }

    fn reading(&self, seen: &Seen, memory: Option<&mut dyn Memory>) -> Option<Found> {
        let settings = seen.settings.night_flow.as_ref()?;
        let night = own::<NightFlow>(memory)?;
        found(
            night.observe(settings, seen.local, seen.value - seen.offset),
            seen.ts,
        )
    }

    fn tick(&self, ticked: &Ticked, memory: Option<&mut dyn Memory>) -> Option<Found> {
        let settings = ticked.settings.night_flow.as_ref()?;
        let night = own::<NightFlow>(memory)?;
        found(night.tick(settings, ticked.local), ticked.now)
    }

    fn memory_name(&self) -> Option<&'static str> {
        // Saved under this name before checks were registered.
        Some("night")
    }

    fn new_memory(&self, settings: &SeriesSettings) -> Option<Box<dyn Memory>> {
        settings
            .night_flow
            .as_ref()
            .map(|_| Box::new(NightFlow::new()) as Box<dyn Memory>)
    }

    fn read_memory(&self, saved: serde_json::Value) -> serde_json::Result<Box<dyn Memory>> {
        Ok(Box::new(serde_json::from_value::<NightFlow>(saved)?))
    }
}
