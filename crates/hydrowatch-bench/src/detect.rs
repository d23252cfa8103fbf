//! `hydrowatch bench detect`: the daemon's detection without I/O on a simulated year.

use hydrowatch_core::Timestamp;
use hydrowatch_detect::{Detector, Refit, Runner, SeriesSettings};
use hydrowatch_ops::judge::{series_settings, time_of_day};

use clap::Args;

use super::mean_sd;

/// `hydrowatch bench detect`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Days of simulated minute data.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// `hydrowatch bench detect`: the detection of the daemon without any I/O, on a simulated year
/// held in memory. Prints the backfill time (criteria refitted daily, every reading judged, every
/// tick) and the time per reading with fixed criteria.
pub fn run(config: &hydrowatch_config::Config, args: BenchArgs) -> crate::Result<()> {
    use std::time::Instant;
    let tz = config.device.timezone;
    let sim = hydrowatch_sim::Simulator::new(hydrowatch_sim::SimConfig {
        days: args.days,
        timezone: tz,
        ..Default::default()
    });
    let rows: Vec<(Timestamp, [Option<f64>; 2])> =
        sim.map(|s| (s.ts, [s.flow_rate, s.pressure])).collect();
    let readings: usize = rows.iter().map(|r| r.1.iter().flatten().count()).sum();
    let settings = || -> Vec<SeriesSettings> {
        hydrowatch_sim::SERIES
            .iter()
            .map(|n| series_settings(config, n, None))
            .collect()
    };
    let pass = |refit: Refit| -> crate::Result<(f64, usize)> {
        let mut engine = Runner::new(Detector::new(tz, settings())?, tz, refit);
        let mut alerts = 0;
        let started = Instant::now();
        for (ts, values) in &rows {
            alerts += engine.advance(*ts).len();
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    alerts += engine.observe(i, *ts, *v).1.len();
                }
            }
        }
        Ok((started.elapsed().as_secs_f64(), alerts))
    };
    let until = rows.get(28 * 1440).map_or(Timestamp::MAX, |r| r.0);
    println!(
        "{} days of minute data, {readings} readings of flow_rate and pressure, {} runs each:",
        args.days, args.runs
    );
    let mut backfill = Vec::new();
    let mut judged = Vec::new();
    for _ in 0..args.runs.max(1) {
        let (s, _) = pass(Refit::Daily(time_of_day(config.schedule.criteria_at)))?;
        backfill.push(s);
        let (s, _) = pass(Refit::Once(until))?;
        judged.push(s * 1e6 / readings as f64);
    }
    let (mb, sb) = mean_sd(&backfill);
    let (mj, sj) = mean_sd(&judged);
    println!("backfill, criteria refitted daily: {mb:.2} s ± {sb:.2}");
    println!("one reading judged (criteria fitted once, ticks included): {mj:.2} µs ± {sj:.2}");
    Ok(())
}
