//! Realistic minute data of one district metered area (DMA): flow and pressure with daily,
//! weekly and seasonal cycles, noise, and labelled events (burst, slow leak, stuck sensor,
//! silent sensor, spike). The model is documented in this crate's README.md.
//!
//! Invariants:
//! - the same [`SimConfig`] (seed included) produces the same samples and events, bit for bit;
//! - samples are one per minute, strictly increasing, starting at local midnight of the start
//!   date; a value is `None` exactly while its sensor is silent;
//! - events never overlap each other (spikes included), and none falls in the warm-up span, so
//!   every abnormal minute belongs to exactly one labelled event.

use hydrowatch_core::time::DAY;
use std::f64::consts::PI;
use std::io::{self, Write};

use chrono::{Datelike, NaiveDate, Timelike, Weekday};
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::{format_local, local_day_start};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The two series the simulator writes.
pub const SERIES: [&str; 2] = ["flow_rate", "pressure"];

/// What happens to the network (or the sensors) during an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A pipe bursts: flow jumps, pressure drops, until repaired.
    Burst,
    /// A leak grows slowly over days: night flow creeps up.
    Leak,
    /// A sensor repeats its last value.
    Stuck,
    /// A sensor sends nothing.
    Silent,
    /// One to three minutes of an implausible value.
    Spike,
}

impl EventKind {
    /// The label written to the events file.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Burst => "burst",
            EventKind::Leak => "leak",
            EventKind::Stuck => "stuck",
            EventKind::Silent => "silent",
            EventKind::Spike => "spike",
        }
    }
}

/// One labelled event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What it is.
    pub kind: EventKind,
    /// First affected minute.
    pub start: Timestamp,
    /// First minute after it (exclusive end).
    pub end: Timestamp,
    /// The series it shows in (a burst shows in both).
    pub series: Vec<&'static str>,
    /// Size: extra flow (m3/h) for burst and leak (the leak's final size), the factor applied
    /// to the value for a spike, unused otherwise.
    pub magnitude: f64,
}

/// Which events to simulate.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPlan {
    /// Events at realistic rates, placed at random (see README.md).
    Random,
    /// Exactly these events.
    Fixed(Vec<Event>),
    /// None: a clean network.
    None,
}

/// Everything that defines a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Local date of the first minute.
    pub start: NaiveDate,
    /// Number of days.
    pub days: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// The DMA's local time zone (daily cycle and output times).
    pub timezone: Tz,
    /// Mean inflow over a year, m3/h.
    pub mean_flow: f64,
    /// Pressure at zero flow, bar.
    pub static_pressure: f64,
    /// Events to simulate.
    pub events: EventPlan,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date"),
            days: 28,
            seed: 1,
            timezone: chrono_tz::Asia::Seoul,
            mean_flow: 120.0,
            static_pressure: 5.0,
            events: EventPlan::Random,
        }
    }
}

/// What a CSV output of [`Simulator::write_csv_split`] received.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Written {
    /// Rows (minutes).
    pub rows: u64,
    /// Values (non-empty cells).
    pub values: u64,
}

/// One minute of data. `None`: the sensor sent nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The minute.
    pub ts: Timestamp,
    /// Flow, m3/h.
    pub flow_rate: Option<f64>,
    /// Pressure, bar.
    pub pressure: Option<f64>,
}

/// Mean daily profile: relative demand at local hour `h` (0..24, fractional) on a weekday or a
/// weekend day. Averages exactly 1 over a day.
pub fn daily_profile(h: f64, weekend: bool) -> f64 {
    static MEANS: std::sync::LazyLock<[f64; 2]> = std::sync::LazyLock::new(|| {
        [false, true].map(|w| {
            (0..1440)
                .map(|m| raw_profile(m as f64 / 60.0, w))
                .sum::<f64>()
                / 1440.0
        })
    });
    raw_profile(h, weekend) / MEANS[usize::from(weekend)]
}

fn raw_profile(h: f64, weekend: bool) -> f64 {
    let bump = |centre: f64, width: f64, height: f64| {
        // Circular distance, so the profile is continuous across midnight.
        let d = (h - centre + 36.0).rem_euclid(24.0) - 12.0;
        height * (-0.5 * (d / width).powi(2)).exp()
    };
    if weekend {
        0.48 + bump(10.0, 2.6, 0.95) + bump(19.5, 2.4, 0.75) + bump(14.0, 3.5, 0.25)
            - bump(4.0, 1.8, 0.12)
    } else {
        0.45 + bump(7.5, 1.5, 1.15) + bump(19.5, 2.0, 0.8) + bump(12.5, 3.0, 0.28)
            - bump(3.5, 1.8, 0.12)
    }
}

/// Seasonal factor on day of year `doy` (1..366): summer demand about 12% above the mean.
pub fn seasonal(doy: f64) -> f64 {
    1.0 + 0.12 * (2.0 * PI * (doy - 200.0) / 365.25).cos()
}

/// Head-loss exponent of pressure against flow (Hazen-Williams).
pub const HEADLOSS_EXPONENT: f64 = 1.85;

/// The simulator: an iterator of minute [`Sample`]s plus the events it placed.
pub struct Simulator {
    config: SimConfig,
    events: Vec<Event>,
    rng: StdRng,
    start: Timestamp,
    minutes: u64,
    next: u64,
    /// Slow multiplicative demand noise (AR(1) on the log).
    demand_ar: f64,
    pressure_ar: f64,
    /// Last values sent, for stuck sensors.
    last: [f64; 2],
    /// Headloss coefficient: the drop at flow q is k * q^1.85.
    k: f64,
    background_leak: f64,
    /// The last half hour converted to local time (zones change offset only on half hours).
    local_cache: Option<(Timestamp, chrono::NaiveDateTime)>,
}

const WARMUP_DAYS_MAX: u32 = 7;
/// Events per 30 days, for [`EventPlan::Random`].
const RATES: [(EventKind, f64); 5] = [
    (EventKind::Burst, 1.0),
    (EventKind::Leak, 0.5),
    (EventKind::Stuck, 1.0),
    (EventKind::Silent, 1.0),
    (EventKind::Spike, 4.0),
];

impl Simulator {
    /// Sets up a simulation; places the events of a random plan.
    pub fn new(config: SimConfig) -> Simulator {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let start = local_day_start(config.start, config.timezone);
        let end_date = config.start + chrono::Days::new(u64::from(config.days));
        let end = local_day_start(end_date, config.timezone);
        let minutes = ((end - start) / 60) as u64;
        let peak = config.mean_flow * 1.9;
        // 1.6 bar of head loss at the yearly peak flow.
        let k = 1.6 / peak.powf(HEADLOSS_EXPONENT);
        let events = match &config.events {
            EventPlan::Random => place_events(&mut rng, &config, start, end),
            EventPlan::Fixed(e) => {
                let mut e = e.clone();
                e.sort_by_key(|e| e.start);
                e
            }
            EventPlan::None => Vec::new(),
        };
        Simulator {
            background_leak: 0.06 * config.mean_flow,
            config,
            events,
            rng,
            start,
            minutes,
            next: 0,
            demand_ar: 0.0,
            pressure_ar: 0.0,
            last: [f64::NAN; 2],
            k,
            local_cache: None,
        }
    }

    /// The first minute of this simulation (local midnight of its start date).
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The events of this simulation, by start.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    fn local(&mut self, ts: Timestamp) -> chrono::NaiveDateTime {
        let half_hour = ts - ts.rem_euclid(1800);
        let base = match self.local_cache {
            Some((h, local)) if h == half_hour => local,
            _ => {
                let local = chrono::DateTime::from_timestamp(half_hour, 0)
                    .expect("simulated times are in range")
                    .with_timezone(&self.config.timezone)
                    .naive_local();
                self.local_cache = Some((half_hour, local));
                local
            }
        };
        base + chrono::Duration::seconds(ts - half_hour)
    }

    fn sample(&mut self, ts: Timestamp) -> Sample {
        let local = self.local(ts);
        let h = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
        let weekend = matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        let doy = f64::from(local.ordinal());
        let std_normal = Normal::new(0.0, 1.0).expect("valid normal");

        // Demand: profile x season x slow noise x measurement noise.
        let phi: f64 = 0.995;
        self.demand_ar = phi * self.demand_ar
            + 0.05 * (1.0 - phi * phi).sqrt() * std_normal.sample(&mut self.rng);
        let demand = self.config.mean_flow
            * 0.94
            * daily_profile(h, weekend)
            * seasonal(doy)
            * self.demand_ar.exp()
            * (1.0 + 0.015 * std_normal.sample(&mut self.rng));
        let mut network_flow = demand + self.background_leak;
        let mut silent = [false; 2];
        let mut stuck = [false; 2];
        let mut spike: Option<(usize, f64)> = None;
        let mut extra_drop = 0.0;
        for e in self.events.iter().filter(|e| e.start <= ts && ts < e.end) {
            let sensors = e.series.iter().map(|s| usize::from(*s == "pressure"));
            match e.kind {
                EventKind::Burst => {
                    let ramp = ((ts - e.start) as f64 / 120.0).min(1.0);
                    network_flow += e.magnitude * ramp;
                    // Local head loss near the burst adds to the network's.
                    extra_drop += 0.25 * ramp;
                }
                EventKind::Leak => {
                    let grow = (e.end - e.start) as f64 * 0.6;
                    network_flow += e.magnitude * ((ts - e.start) as f64 / grow).min(1.0);
                }
                EventKind::Stuck => sensors.for_each(|i| stuck[i] = true),
                EventKind::Silent => sensors.for_each(|i| silent[i] = true),
                EventKind::Spike => {
                    if let Some(i) = sensors.into_iter().next() {
                        spike = Some((i, e.magnitude));
                    }
                }
            }
        }
        let phi_p: f64 = 0.99;
        self.pressure_ar = phi_p * self.pressure_ar
            + 0.03 * (1.0 - phi_p * phi_p).sqrt() * std_normal.sample(&mut self.rng);
        let pressure = self.config.static_pressure
            - self.k * network_flow.max(0.0).powf(HEADLOSS_EXPONENT)
            - extra_drop
            + self.pressure_ar
            + 0.01 * std_normal.sample(&mut self.rng);

        let mut values = [network_flow.max(0.0), pressure.max(0.0)];
        if let Some((i, factor)) = spike {
            values[i] *= factor;
        }
        let mut out = [None; 2];
        for i in 0..2 {
            let v = if stuck[i] && self.last[i].is_finite() {
                self.last[i]
            } else {
                round(values[i], i)
            };
            if !silent[i] {
                out[i] = Some(v);
            }
            self.last[i] = v;
        }
        Sample {
            ts,
            flow_rate: out[0],
            pressure: out[1],
        }
    }

    /// Writes all samples as `time,flow_rate,pressure` with local times `YYYY-MM-DD HH:MM`;
    /// missing values are empty cells. Returns the number of rows.
    pub fn write_csv(&mut self, out: &mut impl Write) -> io::Result<u64> {
        let [all, _] = self.write_csv_split(out, &mut io::sink(), Timestamp::MAX)?;
        Ok(all.rows)
    }

    /// Writes the samples before `at` to `before` and the rest to `after`, each a CSV file as
    /// [`Simulator::write_csv`] writes (a history to import and days to replay, say).
    pub fn write_csv_split(
        &mut self,
        before: &mut impl Write,
        after: &mut impl Write,
        at: Timestamp,
    ) -> io::Result<[Written; 2]> {
        for out in [&mut *before as &mut dyn Write, after] {
            writeln!(out, "time,{},{}", SERIES[0], SERIES[1])?;
        }
        let tz = self.config.timezone;
        let mut written = [Written::default(); 2];
        for s in self.by_ref() {
            let (out, w): (&mut dyn Write, _) = if s.ts < at {
                (&mut *before, &mut written[0])
            } else {
                (&mut *after, &mut written[1])
            };
            out.write_all(format_local(s.ts, tz).as_bytes())?;
            out.write_all(b",")?;
            if let Some(v) = s.flow_rate {
                write!(out, "{v:.2}")?;
                w.values += 1;
            }
            out.write_all(b",")?;
            if let Some(v) = s.pressure {
                write!(out, "{v:.3}")?;
                w.values += 1;
            }
            out.write_all(b"\n")?;
            w.rows += 1;
        }
        Ok(written)
    }

    /// Writes the events as `start,end,kind,series` (local times; one row per affected series).
    pub fn write_labels(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "start,end,kind,series")?;
        let tz = self.config.timezone;
        for e in &self.events {
            for s in &e.series {
                writeln!(
                    out,
                    "{},{},{},{}",
                    format_local(e.start, tz),
                    format_local(e.end, tz),
                    e.kind.label(),
                    s
                )?;
            }
        }
        Ok(())
    }
}

fn round(v: f64, series: usize) -> f64 {
    let scale = if series == 0 { 100.0 } else { 1000.0 };
    (v * scale).round() / scale
}

impl Iterator for Simulator {
    type Item = Sample;
    fn next(&mut self) -> Option<Sample> {
        if self.next >= self.minutes {
            return None;
        }
        let ts = self.start + 60 * self.next as i64;
        self.next += 1;
        Some(self.sample(ts))
    }
}

/// Places a random plan's events: round(rate x days) of each kind (at least one of each when
/// there are 21 or more days after the warm-up), none in the warm-up, none overlapping.
fn place_events(
    rng: &mut StdRng,
    config: &SimConfig,
    start: Timestamp,
    end: Timestamp,
) -> Vec<Event> {
    let warmup = WARMUP_DAYS_MAX.min(config.days / 4);
    let active_start = start + i64::from(warmup) * DAY;
    let active_days = (end - active_start) as f64 / DAY as f64;
    let mut events: Vec<Event> = Vec::new();
    let q = config.mean_flow;
    for (kind, rate) in RATES {
        let mut count = (rate * active_days / 30.0).round() as usize;
        if active_days >= 21.0 {
            count = count.max(1);
        }
        for _ in 0..count {
            // Up to 200 tries to find a free slot; a crowded short simulation gets fewer events.
            for _ in 0..200 {
                let minutes = |lo: f64, hi: f64, rng: &mut StdRng| {
                    (rng.random_range(lo..hi) * 60.0).round() as i64 * 60
                };
                let (duration, magnitude, series): (i64, f64, Vec<&'static str>) = match kind {
                    EventKind::Burst => (
                        minutes(2.0, 10.0, rng),
                        rng.random_range(0.3..0.7) * q,
                        SERIES.to_vec(),
                    ),
                    EventKind::Leak => (
                        minutes(5.0 * 24.0, 12.0 * 24.0, rng),
                        rng.random_range(0.12..0.25) * q,
                        vec![SERIES[0]],
                    ),
                    EventKind::Stuck => (
                        minutes(1.0, 6.0, rng),
                        0.0,
                        vec![SERIES[rng.random_range(0..2)]],
                    ),
                    EventKind::Silent => (
                        minutes(0.5, 6.0, rng),
                        0.0,
                        vec![SERIES[rng.random_range(0..2)]],
                    ),
                    EventKind::Spike => {
                        let factor = if rng.random_bool(0.5) {
                            rng.random_range(2.0..3.5)
                        } else {
                            rng.random_range(0.1..0.4)
                        };
                        (
                            60 * rng.random_range(1..=3),
                            factor,
                            vec![SERIES[rng.random_range(0..2)]],
                        )
                    }
                };
                let latest = end - duration;
                if latest <= active_start {
                    break;
                }
                let s = active_start + (rng.random_range(0..(latest - active_start) / 60)) * 60;
                let e = s + duration;
                // Keep 6 hours between events so each one is judged on its own.
                let margin = 6 * 3600;
                if events
                    .iter()
                    .all(|o| e + margin <= o.start || o.end + margin <= s)
                {
                    events.push(Event {
                        kind,
                        start: s,
                        end: e,
                        series,
                        magnitude,
                    });
                    break;
                }
            }
        }
    }
    events.sort_by_key(|e| e.start);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(days: u32, seed: u64) -> SimConfig {
        SimConfig {
            days,
            seed,
            ..SimConfig::default()
        }
    }

    #[test]
    fn profile_averages_about_one_and_has_peaks() {
        for weekend in [false, true] {
            let mean: f64 = (0..1440)
                .map(|m| daily_profile(m as f64 / 60.0, weekend))
                .sum::<f64>()
                / 1440.0;
            assert!((mean - 1.0).abs() < 1e-9, "mean {mean}");
        }
        let p = |h| daily_profile(h, false);
        assert!(p(7.5) > 1.4 && p(19.5) > 1.1, "morning and evening peaks");
        assert!(p(3.5) < 0.5, "low at night: {}", p(3.5));
        assert!(
            daily_profile(7.5, true) < p(7.5),
            "weekend mornings start later"
        );
        assert!(seasonal(200.0) > 1.1 && seasonal(17.0) < 0.9);
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a: Vec<_> = Simulator::new(cfg(3, 7)).collect();
        let b: Vec<_> = Simulator::new(cfg(3, 7)).collect();
        let c: Vec<_> = Simulator::new(cfg(3, 8)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 3 * 1440);
        assert!(a.windows(2).all(|w| w[1].ts - w[0].ts == 60));
    }

    #[test]
    fn pressure_falls_as_flow_rises() {
        let s: Vec<_> = Simulator::new(SimConfig {
            events: EventPlan::None,
            ..cfg(7, 1)
        })
        .collect();
        let (f, p): (Vec<f64>, Vec<f64>) = s
            .iter()
            .map(|s| (s.flow_rate.unwrap(), s.pressure.unwrap()))
            .unzip();
        let n = f.len() as f64;
        let (mf, mp) = (f.iter().sum::<f64>() / n, p.iter().sum::<f64>() / n);
        let cov: f64 = f.iter().zip(&p).map(|(a, b)| (a - mf) * (b - mp)).sum();
        let (vf, vp): (f64, f64) = (
            f.iter().map(|a| (a - mf).powi(2)).sum(),
            p.iter().map(|b| (b - mp).powi(2)).sum(),
        );
        let corr = cov / (vf * vp).sqrt();
        assert!(corr < -0.9, "corr {corr}");
        assert!((mf - 120.0 * seasonal(4.0)).abs() < 15.0, "mean flow {mf}");
    }

    #[test]
    fn random_plan_places_every_kind_without_overlap_after_warmup() {
        let sim = Simulator::new(cfg(120, 3));
        let ev = sim.events();
        for kind in [
            EventKind::Burst,
            EventKind::Leak,
            EventKind::Stuck,
            EventKind::Silent,
            EventKind::Spike,
        ] {
            assert!(ev.iter().any(|e| e.kind == kind), "{kind:?} missing");
        }
        let warm_end = sim.start + 7 * 86_400;
        assert!(ev.iter().all(|e| e.start >= warm_end));
        assert!(ev.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn events_show_in_the_data() {
        let t0 = Simulator::new(cfg(1, 1)).start;
        let at = |h: i64| t0 + h * 3600;
        let events = vec![
            Event {
                kind: EventKind::Burst,
                start: at(10),
                end: at(12),
                series: SERIES.to_vec(),
                magnitude: 60.0,
            },
            Event {
                kind: EventKind::Stuck,
                start: at(14),
                end: at(15),
                series: vec!["pressure"],
                magnitude: 0.0,
            },
            Event {
                kind: EventKind::Silent,
                start: at(16),
                end: at(17),
                series: vec!["flow_rate"],
                magnitude: 0.0,
            },
            Event {
                kind: EventKind::Spike,
                start: at(18),
                end: at(18) + 60,
                series: vec!["flow_rate"],
                magnitude: 3.0,
            },
        ];
        let clean: Vec<_> = Simulator::new(SimConfig {
            events: EventPlan::None,
            ..cfg(1, 1)
        })
        .collect();
        let ev: Vec<_> = Simulator::new(SimConfig {
            events: EventPlan::Fixed(events),
            ..cfg(1, 1)
        })
        .collect();
        let m = |h: i64| (h * 60) as usize;
        // Burst: +60 m3/h after the ramp, lower pressure.
        let (c, e) = (&clean[m(11)], &ev[m(11)]);
        assert!((e.flow_rate.unwrap() - c.flow_rate.unwrap() - 60.0).abs() < 0.01);
        assert!(e.pressure.unwrap() < c.pressure.unwrap() - 0.25);
        // Stuck: one value for the hour; silent: nothing; spike: 3x.
        let stuck: Vec<_> = ev[m(14)..m(15)]
            .iter()
            .map(|s| s.pressure.unwrap())
            .collect();
        assert!(stuck.iter().all(|v| *v == stuck[0]));
        assert!(
            ev[m(16)..m(17)]
                .iter()
                .all(|s| s.flow_rate.is_none() && s.pressure.is_some())
        );
        assert!(ev[m(17)].flow_rate.is_some());
        assert!(
            (ev[m(18)].flow_rate.unwrap() / clean[m(18)].flow_rate.unwrap() - 3.0).abs() < 0.01
        );
    }

    #[test]
    fn csv_and_labels() {
        let mut sim = Simulator::new(SimConfig {
            timezone: chrono_tz::Europe::Rome,
            ..cfg(60, 2)
        });
        let mut labels = Vec::new();
        sim.write_labels(&mut labels).unwrap();
        let mut csv = Vec::new();
        let rows = sim.write_csv(&mut csv).unwrap();
        assert_eq!(rows, 60 * 1440);
        let text = String::from_utf8(csv).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("time,flow_rate,pressure"));
        assert!(lines.next().unwrap().starts_with("2024-01-01 00:00,"));
        assert!(lines.next().unwrap().starts_with("2024-01-01 00:01,"));
        let labels = String::from_utf8(labels).unwrap();
        assert!(labels.starts_with("start,end,kind,series\n"));
        assert!(labels.contains(",burst,flow_rate\n") && labels.contains(",burst,pressure\n"));
    }

    #[test]
    fn a_split_csv_is_the_whole_csv_in_two_files() {
        let mut whole = Vec::new();
        Simulator::new(cfg(3, 4)).write_csv(&mut whole).unwrap();
        let sim = Simulator::new(cfg(3, 4));
        let at = sim.start + 86_400;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let [first, second] = Simulator::new(cfg(3, 4))
            .write_csv_split(&mut a, &mut b, at)
            .unwrap();
        assert_eq!((first.rows, second.rows), (1440, 2 * 1440));
        let (a, b) = (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        let rest = b.split_once('\n').unwrap().1;
        assert_eq!(format!("{a}{rest}"), String::from_utf8(whole).unwrap());
        let cells = |t: &str| {
            t.lines()
                .skip(1)
                .flat_map(|l| l.split(',').skip(1))
                .filter(|c| !c.is_empty())
                .count() as u64
        };
        assert_eq!((first.values, second.values), (cells(&a), cells(&b)));
    }
}
