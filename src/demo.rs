//! `hydrowatch demo`: the main job on embedded defaults, for a newcomer. A simulated year of one
//! DMA (flow and pressure, a reading a minute, with labelled bursts, leaks and sensor faults) is
//! written, imported into the device database and read back the ways the device reads it; every
//! reading is judged (alarms, scored against the labels), and the next 168 hours of each series
//! are forecast with models trained on the spot. Each step says what it took.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use hydrowatch_core::time::{DAY, format_local};
use hydrowatch_sim::{EventKind, SimConfig, Simulator};
use hydrowatch_store::Store;

/// Options of `hydrowatch demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's files (created; default: hydrowatch-demo in the working
    /// directory).
    #[arg(long, value_name = "DIR", default_value = "hydrowatch-demo")]
    pub dir: PathBuf,
    /// Days to simulate.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(2..=3660))]
    pub days: u32,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let data = dir.join("dma.csv");
    let labels = dir.join("events.csv");
    let db = dir.join("hydrowatch.db");
    for stale in ["hydrowatch.db", "hydrowatch.db-wal", "hydrowatch.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let _ = std::fs::remove_dir_all(dir.join("models"));
    let config = SimConfig {
        days: args.days,
        ..SimConfig::default()
    };
    let tz = config.timezone;

    println!(
        "hydrowatch demo: one district metered area, {} days of minute readings\n",
        args.days
    );
    let t = Instant::now();
    let mut sim = Simulator::new(config);
    sim.write_labels(&mut BufWriter::new(File::create(&labels)?))?;
    let events = sim.events().to_vec();
    let mut out = BufWriter::new(File::create(&data)?);
    let rows = sim.write_csv(&mut out)?;
    out.flush()?;
    println!(
        "1. simulated  {rows} minutes of flow_rate and pressure in {:.2} s -> {}",
        t.elapsed().as_secs_f64(),
        data.display()
    );
    let count = |k: EventKind| events.iter().filter(|e| e.kind == k).count();
    println!(
        "              events: {} bursts, {} slow leaks, {} stuck sensors, {} silent sensors, {} spikes -> {}",
        count(EventKind::Burst),
        count(EventKind::Leak),
        count(EventKind::Stuck),
        count(EventKind::Silent),
        count(EventKind::Spike),
        labels.display()
    );

    let t = Instant::now();
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["import", "--db"])
        .arg(&db)
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "the import failed");
    let size = std::fs::metadata(&db)?.len();
    let mut store = Store::open(&db, tz)?;
    let flow = store.series_id("flow_rate")?;
    let pressure = store.series_id("pressure")?;
    let stored = store.count(flow)? + store.count(pressure)?;
    println!(
        "2. imported   {stored} readings in {:.2} s (the prototype: 194 s for 396,001) -> {} ({:.1} MB)",
        t.elapsed().as_secs_f64(),
        db.display(),
        size as f64 / 1e6
    );

    let (first, last) = store.span(flow)?.context("no readings")?;
    let t = Instant::now();
    let latest = store.latest(flow, 60)?;
    let t_latest = t.elapsed();
    let t = Instant::now();
    let hourly = store.hourly(flow, first, last + 1)?;
    let t_hourly = t.elapsed();
    let t = Instant::now();
    let day = store.readings(flow, last + 1 - DAY, last + 1)?;
    let t_day = t.elapsed();
    println!(
        "3. read back  newest 60 readings in {:.0} µs, the last day ({} readings) in {:.1} ms, {} hourly means of the whole span in {:.1} ms",
        t_latest.as_secs_f64() * 1e6,
        day.len(),
        t_day.as_secs_f64() * 1e3,
        hourly.len(),
        t_hourly.as_secs_f64() * 1e3
    );

    let t = Instant::now();
    let again = store.bulk(|b| -> anyhow::Result<()> {
        for r in &latest {
            b.insert(flow, r.ts, r.value)?;
        }
        Ok(())
    })?;
    println!(
        "4. idempotent re-sending the newest 60 readings stored {} new ({} duplicates) in {:.1} ms",
        again.1.inserted,
        again.1.duplicates,
        t.elapsed().as_secs_f64() * 1e3
    );

    drop(store);
    let t = Instant::now();
    let judged = dir.join("judged.csv");
    let alarms = dir.join("alarms.jsonl");
    let detect = child(&[
        "detect".as_ref(),
        "--input".as_ref(),
        data.as_os_str(),
        "--output".as_ref(),
        judged.as_os_str(),
        "--alarms".as_ref(),
        alarms.as_os_str(),
        "--labels".as_ref(),
        labels.as_os_str(),
    ])?;
    println!(
        "5. detection  every reading judged in {:.1} s -> {}, alarm messages -> {}",
        t.elapsed().as_secs_f64(),
        judged.display(),
        alarms.display()
    );
    // The per-kind table of the scores, and the false-alarm line.
    for line in detect.lines().filter(|l| {
        let per_kind = l.starts_with("| ") && !l.contains(':') && !l.starts_with("| event");
        (per_kind && !l.starts_with("| ---")) || l.contains("false alarms")
    }) {
        println!("              {line}");
    }

    if args.days < 8 {
        println!(
            "6. forecast   skipped: {} days are fewer than the week of history every forecaster needs",
            args.days
        );
    } else {
        let t = Instant::now();
        let forecast = child(&["forecast".as_ref(), "--db".as_ref(), db.as_os_str()])?;
        println!(
            "6. forecast   the next 168 hours of each series in {:.1} s (models trained now, under {}):",
            t.elapsed().as_secs_f64(),
            dir.join("models").display()
        );
        for line in forecast.lines() {
            println!("              {line}");
        }
    }

    println!("\nThe newest hour of flow_rate (m3/h):");
    for r in latest.iter().step_by(10) {
        println!("  {}  {:>8.2}", format_local(r.ts, tz), r.value);
    }
    println!(
        "\nNext: `hydrowatch export --db {} --hourly --out hourly.csv` writes the hourly table with the\n      day-ahead forecasts; `hydrowatch backtest --db {} --select` picks each series' best forecaster;\n      `hydrowatch bench storage` compares SQLite with CSV files on this machine.",
        db.display(),
        db.display()
    );
    Ok(())
}

/// Runs this program with `args` and returns what it printed; its error output passes through.
fn child(args: &[&std::ffi::OsStr]) -> anyhow::Result<String> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "`hydrowatch {}` failed",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
