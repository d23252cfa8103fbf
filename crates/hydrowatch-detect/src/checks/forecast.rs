//! `forecast`: hourly means outside the day-ahead forecast's band, hours in a row (see the
//! residual module). One departure is one alarm: while one side's alarm is open, the other
//! side's does not open.

use crate::checks::{Check, ClosedHour, Found, HIGH_AND_LOW, Judges};
use crate::lifecycle::LifecycleSettings;
use crate::residual;
use crate::{AlarmKind, Direction, SeriesSettings};

/// The forecast-residual check.
pub(crate) struct Forecast;

impl Check for Forecast {
    fn kind(&self) -> AlarmKind {
        AlarmKind::Forecast
    }

    fn directions(&self, _: &SeriesSettings) -> &'static [Direction] {
        HIGH_AND_LOW
    }

    fn lifecycle(&self, _: &SeriesSettings) -> LifecycleSettings {
        LifecycleSettings {
            open_after: residual::HOURS,
            ..LifecycleSettings::immediate(residual::CLEAR_HOURS)
        }
    }

    /// Judged by the hour, not by the reading.
    fn judges(&self) -> Judges {
        Judges::HOURS
    }

    fn hour(&self, hour: &ClosedHour) -> Option<Found> {
        let judged = residual::judge_hour(hour.forecasts, hour.closed, hour.interval)?;
        // A forecast that overshoots while one side's alarm is open is the same departure.
        let stage = |side: i8, other: Direction| {
            if judged.side == side && hour.open != Some(other) {
                3
            } else {
                0
            }
        };
        Some(Found::sides(
            (stage(1, Direction::Low), stage(-1, Direction::High)),
            judged.hour + 3600,
            (Some(judged.mean), Some(judged.forecast.value), None),
        ))
    }
}
