//! The detector on sensors nobody configured: units it was never told, sampling intervals from
//! a second to a quarter of an hour (issue #14).

use hydrowatch_core::Timestamp;
use hydrowatch_detect::{
    AlarmKind, Alert, Detector, Direction, HourForecast, Refit, Runner, SeriesSettings, Transition,
};

mod common;
use common::{DAY, START, noise};

/// Pressure at a DMA's critical node in bar: a night high and a day low in hourly pattern steps
/// (EPANET's), a pump that adds 0.4 bar from 05:00 to 06:00 every day, a little sensor noise.
fn pressure_bar(ts: Timestamp) -> f64 {
    let hour = (ts - START).rem_euclid(DAY) / 3600;
    let pattern = [
        4.6, 4.7, 4.7, 4.7, 4.6, 4.5, 4.2, 3.9, 3.8, 3.9, 4.0, 4.0, 3.9, 4.0, 4.1, 4.1, 4.0, 3.9,
        3.8, 3.9, 4.1, 4.3, 4.4, 4.5,
    ][hour as usize];
    let pump = if hour == 5 { 0.4 } else { 0.0 };
    pattern + pump + 0.01 * noise(ts, 1)
}

/// A burst on day 21 from 14:10 for two hours: the pressure drops by 0.5 bar.
const BURST: Timestamp = START + 21 * DAY + 14 * 3600 + 600;

fn with_burst(ts: Timestamp, value: f64, drop: f64) -> f64 {
    if (BURST..BURST + 7200).contains(&ts) {
        value - drop
    } else {
        value
    }
}

/// Judges readings every `interval` seconds from START to `days` with refits at midnight;
/// returns the alarm transitions after the first two weeks.
fn judge(
    unit: &str,
    interval: i64,
    days: i64,
    value: impl Fn(Timestamp) -> f64,
    refit: Refit,
) -> Vec<Alert> {
    let settings = vec![SeriesSettings::new("pressure", unit, false)];
    let tz = chrono_tz::UTC;
    let mut runner = Runner::new(Detector::new(tz, settings).unwrap(), tz, refit);
    let mut alerts = Vec::new();
    let mut ts = START;
    while ts < START + days * DAY {
        let mut step = runner.advance(ts);
        step.extend(runner.observe(0, ts, value(ts)).1);
        if ts >= START + 14 * DAY {
            alerts.extend(step);
        }
        ts += interval;
    }
    alerts
}

fn daily() -> Refit {
    Refit::Daily(chrono::NaiveTime::from_hms_opt(0, 10, 0).unwrap())
}

#[test]
fn metres_and_bar_of_the_same_hydraulics_raise_the_same_alarms() {
    // 1 bar is 10.197 m of head. Nothing is configured but the unit.
    let bar = judge(
        "bar",
        60,
        23,
        |ts| with_burst(ts, pressure_bar(ts), 0.5),
        daily(),
    );
    let metres = judge(
        "m",
        60,
        23,
        |ts| 10.197 * with_burst(ts, pressure_bar(ts), 0.5),
        daily(),
    );
    let key = |a: &Alert| (a.time, a.kind, a.direction, a.stage, a.state);
    let bar_keys: Vec<_> = bar.iter().map(key).collect();
    let metre_keys: Vec<_> = metres.iter().map(key).collect();
    assert_eq!(bar_keys, metre_keys);
    // The burst is found at once; the hourly steps and the daily pump are not alarms.
    let opened: Vec<&Alert> = bar
        .iter()
        .filter(|a| a.state == Transition::Opened)
        .collect();
    assert!(!opened.is_empty(), "the burst raised nothing");
    assert!(
        opened
            .iter()
            .all(|a| (BURST..BURST + 7200).contains(&a.time)),
        "alarms outside the burst: {opened:?}"
    );
    assert!(
        opened
            .iter()
            .any(|a| a.stage >= 3 && a.time - BURST <= 2 * 60),
        "{opened:?}"
    );
}

/// The inflow of a DMA in m3/h: a smooth daily cycle and 1% noise.
fn inflow(ts: Timestamp) -> f64 {
    let phase = (ts - START).rem_euclid(DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
    let cycle = 100.0 - 35.0 * phase.cos() - 10.0 * (2.0 * phase).sin();
    cycle * (1.0 + 0.01 * noise(ts, 2))
}

#[test]
fn one_burst_alarms_whether_read_every_second_minute_or_quarter_hour() {
    // A burst of 25% of the mean flow; the criteria are fitted once on the eight days before
    // the day of the burst (a second's readings: 691,200 of them).
    let burst_at = START + 8 * DAY + 14 * 3600 + 600;
    let flow = |ts: Timestamp| {
        if (burst_at..burst_at + 7200).contains(&ts) {
            inflow(ts) + 25.0
        } else {
            inflow(ts)
        }
    };
    for interval in [1, 60, 900] {
        let settings = vec![SeriesSettings::new("flow_rate", "m3/h", true)];
        let tz = chrono_tz::UTC;
        let fitted = START + 8 * DAY;
        let mut runner = Runner::new(
            Detector::new(tz, settings).unwrap(),
            tz,
            Refit::Once(fitted),
        );
        let mut alerts = Vec::new();
        let mut ts = START;
        while ts < burst_at + 7200 {
            let mut step = runner.advance(ts);
            step.extend(runner.observe(0, ts, flow(ts)).1);
            if ts >= fitted {
                alerts.extend(step);
            }
            ts += interval;
        }
        let opened: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.state == Transition::Opened)
            .collect();
        assert!(
            opened.iter().all(|a| a.time >= burst_at),
            "every {interval} s: alarms before the burst: {opened:?}"
        );
        let first = opened
            .iter()
            .filter(|a| a.stage >= 3 && a.kind != AlarmKind::Stale)
            .map(|a| a.time - burst_at)
            .min();
        assert!(
            first.is_some_and(|delay| delay <= 15 * 60),
            "every {interval} s: the burst raised {opened:?}"
        );
    }
}

#[test]
fn hours_outside_the_day_ahead_band_open_a_forecast_alarm_that_clears() {
    let run = |forecasts: bool| {
        let settings = vec![SeriesSettings::new("flow_rate", "m3/h", true)];
        let mut d = Detector::new(chrono_tz::UTC, settings).unwrap();
        if forecasts {
            // A flat day-ahead forecast of 100 m3/h, band 95-105, for 40 hours.
            let hours: Vec<HourForecast> = (0..40)
                .map(|h| HourForecast {
                    hour: START + h * 3600,
                    value: 100.0,
                    lower: 95.0,
                    upper: 105.0,
                })
                .collect();
            d.set_forecasts(0, &hours);
        }
        // Hours 4-7 run at 117 (beyond the band by more than its width), hours 10-12 at 83
        // (a forecast overshooting after the change: the same departure).
        let mut alerts = Vec::new();
        for m in 0..40 * 60 {
            let ts = START + m * 60;
            let base = match m / 60 {
                4..=7 => 117.0,
                10..=12 => 83.0,
                _ => 100.0,
            };
            alerts.extend(d.tick(ts));
            alerts.extend(d.observe(0, ts, base + (m % 3) as f64 * 0.1).1);
        }
        alerts.extend(d.tick(START + 40 * 3600));
        alerts
            .into_iter()
            .filter(|a| a.kind == AlarmKind::Forecast)
            .map(|a| (a.state, a.direction, a.time, a.value.map(f64::round)))
            .collect::<Vec<_>>()
    };
    // Opened when the third high hour ended, with that hour's mean; no low alarm while it is
    // open; cleared after a whole day of hours not beyond the band (the low hours are not high).
    assert_eq!(
        run(true),
        vec![
            (
                Transition::Opened,
                Direction::High,
                START + 7 * 3600,
                Some(117.0)
            ),
            (
                Transition::Cleared,
                Direction::High,
                START + 32 * 3600,
                Some(100.0)
            ),
        ]
    );
    // No forecast: the check is off.
    assert!(run(false).is_empty());
}

#[test]
fn a_pump_off_at_an_unusual_hour_is_a_state_where_the_pump_rests_and_an_alarm_where_it_never_did() {
    // Three weeks of a pumped inflow that stops for 45 minutes every night (0 m3/h), or of one
    // that never stops; then, on day 21, a stop at 14:00 for 30 minutes.
    let run = |nightly_stops: bool| {
        let flow = move |ts: Timestamp| {
            let minute = (ts - START).rem_euclid(DAY) / 60;
            let stop_at_night = nightly_stops && (120..160).contains(&minute);
            let stop_today = ts >= START + 21 * DAY && (840..870).contains(&minute);
            if stop_at_night || stop_today {
                0.0
            } else {
                inflow(ts)
            }
        };
        judge("m3/h", 60, 22, flow, daily())
            .into_iter()
            .filter(|a| a.state == Transition::Opened && a.time >= START + 21 * DAY)
            .map(|a| (a.kind, (a.time - START - 21 * DAY) / 60, a.value))
            .collect::<Vec<_>>()
    };
    let kinds =
        |alarms: &[(AlarmKind, i64, Option<f64>)]| alarms.iter().map(|a| a.0).collect::<Vec<_>>();
    let resting = run(true);
    assert!(
        !kinds(&resting).contains(&AlarmKind::Outlier)
            && !kinds(&resting).contains(&AlarmKind::Stuck),
        "{resting:?}"
    );
    assert!(kinds(&run(false)).contains(&AlarmKind::Outlier));
}

#[test]
fn a_short_history_says_learning_rather_than_guessing_and_still_flags_plain_faults() {
    // A 1-second test rig: flow and pressure with a pump's ripple and sensor noise; criteria
    // fitted on the first 400 readings; then 800 normal seconds, then a jump of the flow, its
    // stop, and a pressure drifting away.
    let flow =
        |t: i64| 10.0 + 0.3 * (t as f64 / 120.0 * std::f64::consts::TAU).sin() + 0.05 * noise(t, 3);
    let pressure =
        |t: i64| 3.0 + 0.02 * (t as f64 / 90.0 * std::f64::consts::TAU).cos() + 0.005 * noise(t, 4);
    let settings = vec![
        SeriesSettings::new("flow_rate", "L/s", false),
        SeriesSettings::new("pressure", "bar", false),
    ];
    let tz = chrono_tz::UTC;
    let mut runner = Runner::new(
        Detector::new(tz, settings).unwrap(),
        tz,
        Refit::Once(START + 400),
    );
    let mut normal = (0, 0);
    let mut flagged_faults = [false; 3];
    for t in 0..1600 {
        let ts = START + t;
        let (mut f, mut p) = (flow(t), pressure(t));
        let fault = match t {
            1200..1260 => {
                f *= 1.3;
                Some(0)
            }
            1300..1360 => {
                f = 0.0;
                Some(1)
            }
            1400..1600 => {
                p += 0.01 * (t - 1400) as f64;
                (t >= 1500).then_some(2)
            }
            _ => None,
        };
        runner.advance(ts);
        let stages = [
            runner.observe(0, ts, f).0.stage,
            runner.observe(1, ts, p).0.stage,
        ];
        match fault {
            Some(k) => flagged_faults[k] |= stages.iter().any(|s| *s >= 1),
            None if (400..1200).contains(&t) => {
                normal.0 += stages.iter().filter(|s| **s >= 1).count();
                normal.1 += 2;
            }
            None => {}
        }
    }
    let share = normal.0 as f64 / normal.1 as f64;
    assert!(
        share < 0.15,
        "{:.1}% of the normal readings at stage 1 or more",
        100.0 * share
    );
    assert_eq!(
        flagged_faults, [true; 3],
        "a jump, a stop, a drift of many spreads"
    );
}
