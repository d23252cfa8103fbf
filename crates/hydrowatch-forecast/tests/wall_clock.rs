//! Every forecaster keeps local clock time across both daylight-saving changes, in two zones:
//! a series whose daily peak is at 07:00 local is forecast with its peak at 07:00 local, on the
//! days after a change (its lags reach back before it) and across a change inside the week
//! ahead.

use chrono::{NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;
use hydrowatch_forecast::combination::Combination;
use hydrowatch_forecast::neural::{ModelKind, NeuralConfig, Strategy, TrainConfig};
use hydrowatch_forecast::{Fit, Forecaster, HORIZON, History, Predict};

/// The local hour of the daily peak.
const PEAK: u32 = 7;

/// Hourly history in `zone` from `weeks` weeks before local midnight of `end` (exclusive): a
/// flat night, a sharp peak at 07:00 local, working days higher than Sundays.
fn peaked(zone: Tz, end: NaiveDate, weeks: i64) -> History {
    let t_end = zone
        .from_local_datetime(&end.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .timestamp();
    let start = zone
        .from_local_datetime(
            &(end - chrono::Duration::weeks(weeks))
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .unwrap()
        .timestamp();
    let values = (0..(t_end - start) / 3600)
        .map(|i| value(zone, start + i * 3600))
        .collect();
    History::hourly(start, values, zone)
}

fn value(zone: Tz, ts: i64) -> f64 {
    let local = chrono::DateTime::from_timestamp(ts, 0)
        .unwrap()
        .with_timezone(&zone);
    let sunday = chrono::Datelike::weekday(&local) == chrono::Weekday::Sun;
    let base = if sunday { 20.0 } else { 30.0 };
    match local.hour() {
        h if h == PEAK => base + 60.0,
        h if h == PEAK - 1 || h == PEAK + 1 => base + 20.0,
        _ => base,
    }
}

/// A small network, quick in a test build.
fn small_network() -> NeuralConfig {
    NeuralConfig {
        window: 24,
        units: 8,
        dropout: 0.0,
        train: TrainConfig {
            epochs: 3,
            batch: 64,
            learning_rate: 0.01,
            ..TrainConfig::default()
        },
        ..NeuralConfig::new(ModelKind::Lstm, Strategy::Mimo)
    }
}

fn forecasters() -> Vec<Forecaster> {
    let mut all = Forecaster::baselines();
    all.push(Forecaster::Network(small_network()));
    all.push(Forecaster::Combination(Combination {
        network: Some(small_network()),
        ..Combination::default()
    }));
    all
}

/// Asserts that each whole local day of the forecast peaks at 07:00 local.
fn assert_peaks_at_seven(zone: Tz, history: &History, what: &str) {
    for f in forecasters() {
        let fc = f.fit(history).unwrap().predict(history).unwrap();
        assert_eq!(fc.points.len(), HORIZON);
        // Group the forecast hours by local date; whole days only.
        let mut days: Vec<(NaiveDate, Vec<(u32, f64)>)> = Vec::new();
        for (i, p) in fc.points.iter().enumerate() {
            let local = chrono::DateTime::from_timestamp(fc.time(i), 0)
                .unwrap()
                .with_timezone(&zone);
            let date = local.date_naive();
            match days.last_mut() {
                Some((d, hours)) if *d == date => hours.push((local.hour(), *p)),
                _ => days.push((date, vec![(local.hour(), *p)])),
            }
        }
        for (date, hours) in days.iter().filter(|(_, h)| h.len() >= 23) {
            let (peak_hour, _) = hours
                .iter()
                .copied()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert_eq!(
                peak_hour,
                PEAK,
                "{} in {zone}, {what}: the forecast of {date} peaks at {peak_hour}:00 local",
                f.name()
            );
        }
    }
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

#[test]
fn rome_autumn_and_spring() {
    let zone = chrono_tz::Europe::Rome;
    // Clocks go back on 2021-10-31 and forward on 2022-03-27 (Sundays).
    for (change, what) in [(d(2021, 10, 31), "autumn"), (d(2022, 3, 27), "spring")] {
        let after = peaked(zone, change + chrono::Duration::days(2), 20);
        assert_peaks_at_seven(zone, &after, &format!("{what}, two days after the change"));
        let before = peaked(zone, change - chrono::Duration::days(2), 20);
        assert_peaks_at_seven(zone, &before, &format!("{what}, the change ahead"));
    }
}

#[test]
fn new_york_autumn_and_spring() {
    let zone = chrono_tz::America::New_York;
    // Clocks go back on 2021-11-07 and forward on 2022-03-13.
    for (change, what) in [(d(2021, 11, 7), "autumn"), (d(2022, 3, 13), "spring")] {
        let after = peaked(zone, change + chrono::Duration::days(2), 20);
        assert_peaks_at_seven(zone, &after, &format!("{what}, two days after the change"));
        let before = peaked(zone, change - chrono::Duration::days(2), 20);
        assert_peaks_at_seven(zone, &before, &format!("{what}, the change ahead"));
    }
}
