//! The detector end to end on synthetic series: cycles, both directions, restarts, bad readings.

use hydrowatch_core::Timestamp;
use hydrowatch_detect::{
    AlarmKind, Alert, Criteria, Detector, Direction, SeriesSettings, Transition, Verdict,
};

const MINUTE: i64 = 60;
const DAY: i64 = 86_400;
/// 2024-01-01 00:00 UTC, a Monday.
const START: Timestamp = 1_704_067_200;

/// Deterministic noise in [-1, 1].
fn noise(i: i64) -> f64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x as f64 / u64::MAX as f64) * 2.0 - 1.0
}

/// A flow with a daily cycle (peak at 07:30, minimum at night) and quieter weekends.
fn flow(ts: Timestamp) -> f64 {
    let minute = (ts - START).rem_euclid(7 * DAY) / MINUTE;
    let hour = (minute % 1440) as f64 / 60.0;
    let weekend = minute / 1440 >= 5;
    let peak = (-((hour - 7.5) / 1.5).powi(2) / 2.0).exp();
    let level = if weekend { 80.0 } else { 100.0 };
    level * (0.5 + peak) + 2.0 * noise(ts)
}

fn detector() -> Detector {
    let settings = SeriesSettings::new("flow_rate", "m3/h", false);
    Detector::new(chrono_tz::UTC, vec![settings]).unwrap()
}

/// A detector with criteria fitted on 28 days of the normal cycle.
fn trained() -> Detector {
    let history: Vec<(Timestamp, f64)> = (0..28 * 1440)
        .map(|m| START + m * MINUTE)
        .map(|ts| (ts, flow(ts)))
        .collect();
    let mut d = detector();
    let criteria = Criteria::fit(&history, chrono_tz::UTC, START + 28 * DAY).unwrap();
    assert_eq!(criteria.level, hydrowatch_detect::Level::HourOfWeek);
    d.set_criteria(0, Some(criteria));
    d
}

/// The outlier alerts among `alerts`.
fn outliers(alerts: Vec<Alert>) -> Vec<Alert> {
    alerts
        .into_iter()
        .filter(|a| a.kind == AlarmKind::Outlier)
        .collect()
}

/// Feeds minutes `from..to` (counted from START) with `value(ts)`; returns all alerts.
fn feed(d: &mut Detector, from: i64, to: i64, value: impl Fn(Timestamp) -> f64) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for m in from..to {
        let ts = START + m * MINUTE;
        alerts.extend(d.tick(ts));
        alerts.extend(d.observe(0, ts, value(ts)).1);
    }
    alerts
}

#[test]
fn daily_and_weekly_cycles_alone_open_no_alarm() {
    let mut d = trained();
    // A whole week after the fitting span, morning peaks and quiet weekends included.
    let alerts = feed(&mut d, 28 * 1440, 35 * 1440, flow);
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn high_and_low_values_open_alarms_with_their_direction_and_clear() {
    let mut d = trained();
    let t0 = 28 * 1440;
    feed(&mut d, t0, t0 + 600, flow);
    // A burst: +60 for 30 minutes. Its onset is also a jump: larger than any change of the
    // history's days.
    let all = feed(&mut d, t0 + 600, t0 + 630, |ts| flow(ts) + 60.0);
    assert!(
        all.iter().any(|a| (a.kind, a.direction, a.state)
            == (AlarmKind::Jump, Direction::High, Transition::Opened)),
        "{all:?}"
    );
    let alerts = outliers(all);
    let opened: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.state == Transition::Opened)
        .collect();
    assert_eq!(opened.len(), 1, "{alerts:?}");
    assert_eq!(
        (opened[0].kind, opened[0].direction, opened[0].stage),
        (AlarmKind::Outlier, Direction::High, 4)
    );
    // Opened on the 2nd reading (open_after), and nothing more while it stays critical.
    assert_eq!(opened[0].time, START + (t0 + 601) * MINUTE);
    assert_eq!(
        alerts.len(),
        1,
        "holding the stage sends nothing: {alerts:?}"
    );
    let after = outliers(feed(&mut d, t0 + 630, t0 + 700, flow));
    let cleared: Vec<&Alert> = after
        .iter()
        .filter(|a| a.state == Transition::Cleared)
        .collect();
    assert_eq!(cleared.len(), 1, "{after:?}");
    assert_eq!(cleared[0].alarm_id, opened[0].alarm_id);

    let low = feed(&mut d, t0 + 700, t0 + 720, |ts| flow(ts) - 60.0);
    assert!(
        low.iter().any(|a| a.state == Transition::Opened
            && a.direction == Direction::Low
            && a.alarm_id != opened[0].alarm_id),
        "{low:?}"
    );
}

/// A young series' first criteria (eleven hours: no largest change learned, an infinite limit)
/// are saved and restored: JSON has no infinity, and such a state once kept the daemon from
/// starting again.
#[test]
fn the_state_of_a_young_series_restores() {
    let history: Vec<(Timestamp, f64)> = (0..670)
        .map(|m| START + m * MINUTE)
        .map(|ts| (ts, flow(ts)))
        .collect();
    let mut d = detector();
    let criteria = Criteria::fit(&history, chrono_tz::UTC, START + 670 * MINUTE).unwrap();
    assert!(
        criteria
            .limits
            .as_ref()
            .is_some_and(|l| l.max_step.is_infinite()),
        "{:?}",
        criteria.limits
    );
    d.set_criteria(0, Some(criteria));
    feed(&mut d, 670, 700, flow);
    let state = d.state_json();
    let settings = vec![SeriesSettings::new("flow_rate", "m3/h", false)];
    let restored = Detector::restore(chrono_tz::UTC, settings, &state).unwrap();
    assert_eq!(restored.state_json(), state);
}

#[test]
fn an_open_alarm_survives_a_restart() {
    let mut d = trained();
    let t0 = 28 * 1440;
    feed(&mut d, t0, t0 + 600, flow);
    let opened = outliers(feed(&mut d, t0 + 600, t0 + 610, |ts| flow(ts) + 60.0));
    let id = opened[0].alarm_id;
    let state = d.state_json();
    drop(d);

    let settings = vec![SeriesSettings::new("flow_rate", "m3/h", false)];
    let mut d = Detector::restore(chrono_tz::UTC, settings, &state).unwrap();
    assert_eq!(d.open_alarms().len(), 1, "{:?}", d.open_alarms());
    // Still high: nothing new; then normal: the same alarm clears.
    assert!(outliers(feed(&mut d, t0 + 610, t0 + 615, |ts| flow(ts) + 60.0)).is_empty());
    let after = outliers(feed(&mut d, t0 + 615, t0 + 700, flow));
    assert!(
        after.iter().all(|a| a.state != Transition::Opened),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .any(|a| a.state == Transition::Cleared && a.alarm_id == id)
    );

    let other = vec![SeriesSettings::new("pressure", "bar", false)];
    assert!(Detector::restore(chrono_tz::UTC, other, &state).is_err());
    assert!(Detector::restore(chrono_tz::UTC, vec![], "{not json").is_err());
}

#[test]
fn nan_late_readings_and_a_clock_going_back_are_handled() {
    let mut d = trained();
    let ts = START + 28 * DAY;
    let (j, alerts) = d.observe(0, ts, f64::NAN);
    assert_eq!((j.verdict, alerts.len()), (Verdict::Invalid, 0));
    assert_eq!(d.observe(0, ts, flow(ts)).0.verdict, Verdict::Judged);
    // The same minute again, and an earlier one: late, not judged.
    assert_eq!(d.observe(0, ts, flow(ts)).0.verdict, Verdict::Late);
    assert_eq!(d.observe(0, ts - 3600, 5000.0).0.verdict, Verdict::Late);
    assert!(d.open_alarms().is_empty(), "a late reading changes nothing");
    // The clock goes back an hour: ticks there raise nothing.
    assert!(d.tick(ts - 3600).is_empty());
    assert_eq!(
        d.observe(0, ts + 60, flow(ts + 60)).0.verdict,
        Verdict::Judged
    );
}

#[test]
fn a_silent_sensor_is_stale_until_it_reads_again() {
    let mut d = trained();
    let ts = START + 28 * DAY;
    d.observe(0, ts, flow(ts));
    assert!(d.tick(ts + 14 * MINUTE).is_empty());
    let stale = d.tick(ts + 15 * MINUTE);
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (stale[0].kind, stale[0].state, stale[0].stage),
        (AlarmKind::Stale, Transition::Opened, 3)
    );
    assert!(
        d.tick(ts + 16 * MINUTE).is_empty(),
        "one message per transition"
    );
    let t = ts + 17 * MINUTE;
    let back = d.observe(0, t, flow(t)).1;
    assert!(
        back.iter()
            .any(|a| a.kind == AlarmKind::Stale && a.state == Transition::Cleared)
    );
}

#[test]
fn an_hourly_sensor_is_stale_after_three_missed_hours_not_after_fifteen_minutes() {
    // Readings every hour (the shared DMAs' inflow): the 15-minute default would call every
    // hour stale; the window grows to 3 of the series' own intervals.
    let mut d = detector();
    let mut alerts = Vec::new();
    for h in 0..48 {
        let ts = START + h * 3600;
        alerts.extend(d.tick(ts));
        alerts.extend(d.observe(0, ts, flow(ts)).1);
    }
    let stale = |a: &Vec<Alert>| a.iter().filter(|a| a.kind == AlarmKind::Stale).count();
    // The second reading comes before any interval is known: one stale alarm, opened and
    // cleared at once; none after.
    assert!(stale(&alerts) <= 2, "{alerts:?}");
    let last = START + 47 * 3600;
    assert!(d.tick(last + 2 * 3600 + 59 * MINUTE).is_empty());
    let silent = d.tick(last + 3 * 3600);
    assert!(
        silent
            .iter()
            .any(|a| a.kind == AlarmKind::Stale && a.state == Transition::Opened),
        "{silent:?}"
    );
}

#[test]
fn each_stage_is_a_half_open_percentile_band() {
    let s = SeriesSettings::new("x", "", false);
    let cases = [
        (50.0, 0),
        (89.999, 0),
        (90.0, 1),
        (94.999, 1),
        (95.0, 2),
        (97.999, 2),
        (98.0, 3),
        (98.999, 3),
        (99.0, 4),
        (100.0, 4),
    ];
    for (p, stage) in cases {
        assert_eq!(s.stage_of(p), stage, "percentile {p}");
    }
    let mut bad = s.clone();
    bad.stages = [90.0, 95.0, 95.0, 99.0];
    assert!(bad.validate().is_err(), "stages must increase");
}

#[test]
fn the_alert_message_keeps_the_prototypes_fields() {
    let mut d = trained();
    let t0 = 28 * 1440;
    feed(&mut d, t0, t0 + 600, flow);
    let alerts = outliers(feed(&mut d, t0 + 600, t0 + 610, |ts| flow(ts) + 60.0));
    let message = serde_json::to_value(alerts[0].message(7, chrono_tz::Asia::Seoul)).unwrap();
    assert_eq!(message["machine_number"], 7);
    assert_eq!(message["outlier_stage"], 4);
    assert_eq!(message["state"], "opened");
    assert_eq!(message["kind"], "outlier");
    assert_eq!(message["direction"], "high");
    // 2024-01-29 10:01 UTC is 19:01 in Seoul, to the second, with its offset.
    assert_eq!(message["time"], "2024-01-29T19:01:00+09:00");
    assert!(message["value"].as_f64().unwrap() > message["expected"].as_f64().unwrap());
    assert!(message["percentile"].as_f64().unwrap() >= 99.0);
}
