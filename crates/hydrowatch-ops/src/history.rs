//! Histories from files: a CSV of readings (any interval) as an hourly [`History`], and the
//! day-ahead forecasts of a fitted model over the end of a history (what `hydrowatch train`
//! plots against what happened).
//!
//! Invariants: a history is hourly, in the file's zone; an incomplete last hour of readings finer
//! than hourly is left out (it is still being filled), as the database's history leaves it out.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use hydrowatch_core::time::hour_phase;
use hydrowatch_csv::{CsvError, ReadOptions, ReadingsCsv};
use hydrowatch_forecast::clock::day_starts;
use hydrowatch_forecast::{Fitted, ForecastError, History, Holidays, Predict, Series};

/// Why a history could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read, or a row is bad.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The file holds no reading.
    #[error("{}: no readings", .0.display())]
    Empty(PathBuf),
    /// The readings do not make a series, or a forecast failed.
    #[error(transparent)]
    Forecast(#[from] ForecastError),
}

/// Reads a CSV into an hourly history in `tz`; the last hour is dropped when the readings are
/// finer than hourly and it is incomplete.
pub fn read_history(path: &Path, tz: Tz, series: Option<&str>) -> Result<History, HistoryError> {
    let options = ReadOptions {
        timezone: tz,
        series: Some(series.unwrap_or("value").to_string()),
        clock: None,
    };
    let mut file = ReadingsCsv::open(path, &options)?;
    let mut points = Vec::new();
    while let Some(row) = file.next_row() {
        let row = row?;
        if let Some(v) = row.values[0] {
            points.push((row.ts, v));
        }
    }
    if points.is_empty() {
        return Err(HistoryError::Empty(path.to_path_buf()));
    }
    let mut series = Series::resample(&points, 3600, hour_phase(tz))?;
    // The interval of the readings: the most common gap between consecutive ones.
    let mut gaps: Vec<i64> = points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|d| *d > 0)
        .collect();
    gaps.sort_unstable();
    let interval = gaps.get(gaps.len() / 2).copied().unwrap_or(3600);
    if interval < 3600 {
        let last_hour = series.time(series.values.len() - 1);
        let in_last = points.iter().filter(|(t, _)| *t >= last_hour).count() as i64;
        if in_last < 3600 / interval {
            series.values.pop();
        }
    }
    Ok(History {
        series,
        timezone: tz,
        holidays: Holidays::default(),
    })
}

/// A model's day-ahead forecasts (hours 1-24 from each local midnight) against the actual hourly
/// values, each forecast hour at the hour it forecasts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayAhead {
    /// The hours.
    pub times: Vec<i64>,
    /// The actual values.
    pub actual: Vec<f64>,
    /// The forecasts (NaN where the model could not forecast).
    pub forecast: Vec<f64>,
    /// Their 10% quantiles.
    pub lower: Vec<f64>,
    /// Their 90% quantiles.
    pub upper: Vec<f64>,
    /// The root mean squared error over the hours forecast.
    pub rmse: f64,
}

/// `model`'s day-ahead forecasts from every local midnight at or after `from` to the end of
/// `history`.
pub fn day_ahead(model: &Fitted, history: &History, from: i64) -> Result<DayAhead, ForecastError> {
    let s = &history.series;
    let first = ((from - s.start) / s.step).max(0) as usize;
    let n = s.values.len();
    let mut d = DayAhead::default();
    if n < 24 {
        return Ok(d);
    }
    for o in day_starts(history, first, n - 24) {
        let fc = match model.predict(&history.until(o)) {
            Ok(fc) => Some(fc),
            Err(ForecastError::Input(_) | ForecastError::TooShort { .. }) => None,
            Err(e) => return Err(e),
        };
        for h in 0..24 {
            d.times.push(s.time(o + h));
            d.actual.push(s.values[o + h]);
            d.forecast
                .push(fc.as_ref().map_or(f64::NAN, |f| f.points[h]));
            d.lower.push(fc.as_ref().map_or(f64::NAN, |f| f.lower[h]));
            d.upper.push(fc.as_ref().map_or(f64::NAN, |f| f.upper[h]));
        }
    }
    let errs: Vec<f64> = d
        .actual
        .iter()
        .zip(&d.forecast)
        .map(|(a, f)| a - f)
        .filter(|e| e.is_finite())
        .collect();
    d.rmse = (errs.iter().map(|e| e * e).sum::<f64>() / errs.len().max(1) as f64).sqrt();
    Ok(d)
}
