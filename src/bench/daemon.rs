//! `hydrowatch bench daemon`: a week of minute data through the whole daemon (ingest, detection,
//! the daily jobs, upload to the central server running in this process) as fast as it goes, in
//! a child process whose memory is sampled. Reports readings per second, peak and steady resident memory.

use hydrowatch_core::time::DAY;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use hydrowatch_sim::{SimConfig, Simulator};

use super::mean_sd;
use super::storage::proc_status_kib;

/// `hydrowatch bench daemon`
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Days of minute data replayed through the daemon.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Days imported before (the history a running device has: criteria, forecasts).
    #[arg(long, default_value_t = 28)]
    pub history_days: u32,
    /// Repetitions.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// The central server (hydrowatch-server, no rate limit) on a free local port, in this process,
/// with a token for the device `bench`; returns its URL and the token, and the runtime that
/// serves it until dropped.
fn central_server(dir: &Path) -> anyhow::Result<(String, String, hydrowatch_server::Background)> {
    let db = hydrowatch_server::Db::open(&dir.join("server.db"))?;
    let token = db.create_token("bench", 0)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let runtime = hydrowatch_server::serve_in_background(
        Arc::new(db),
        hydrowatch_server::Settings {
            rate_limit: hydrowatch_server::RateLimit::OFF,
            ..hydrowatch_server::Settings::default()
        },
        listener,
        hydrowatch_server::Limits::default(),
        hydrowatch_server::notify::NotifySettings::default(),
    )?;
    Ok((url, token, runtime))
}

struct RunResult {
    readings: u64,
    seconds: f64,
    peak_mb: f64,
    steady_mb: f64,
    delivered: u64,
}

fn one_run(dir: &Path, args: &BenchArgs) -> anyhow::Result<RunResult> {
    let (url, token, _server) = central_server(dir)?;
    let exe = std::env::current_exe()?;
    let mut sim = Simulator::new(SimConfig {
        days: args.history_days + args.days,
        seed: 11,
        ..SimConfig::default()
    });
    let split = sim.start() + i64::from(args.history_days) * DAY;
    let mut history = std::io::BufWriter::new(std::fs::File::create(dir.join("history.csv"))?);
    let mut replay = std::io::BufWriter::new(std::fs::File::create(dir.join("week.csv"))?);
    let [_, replayed] = sim.write_csv_split(&mut history, &mut replay, split)?;
    let readings = replayed.values;
    history.flush()?;
    replay.flush()?;
    drop((history, replay));
    std::fs::write(
        dir.join("bench.toml"),
        format!(
            "[device]\nid = \"bench\"\n\n[server]\nurl = \"{url}\"\ntoken = \"{token}\"\n\n[daemon]\nhealth_listen = \"\"\n\n[[source]]\nkind = \"csv_replay\"\npath = \"week.csv\"\nspeed = 0\n"
        ),
    )?;
    let status = Command::new(&exe)
        .current_dir(dir)
        .args(["--config", "bench.toml", "import", "history.csv"])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "importing the history failed");
    let started = Instant::now();
    let mut child = Command::new(&exe)
        .current_dir(dir)
        .args([
            "--config",
            "bench.toml",
            "run",
            "--until-sources-end",
            "--drain-seconds",
            "10",
        ])
        .env("HYDROWATCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id().to_string();
    let mut samples = Vec::new();
    let mut peak = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(rss) = proc_status_kib(&pid, "VmRSS") {
            samples.push(rss);
        }
        if let Ok(hwm) = proc_status_kib(&pid, "VmHWM") {
            peak = peak.max(hwm);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "the daemon failed: {status}");
    // Its summary (stdout): what the central server acknowledged.
    let mut summary = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut summary)?;
    }
    let delivered = serde_json::from_str::<serde_json::Value>(&summary)
        .ok()
        .and_then(|v| v["metrics"]["delivered"].as_u64())
        .unwrap_or(0);
    // Steady: the median of the second half of the samples (start-up excluded).
    let mut tail = samples[samples.len() / 2..].to_vec();
    tail.sort_unstable();
    let steady = tail.get(tail.len() / 2).copied().unwrap_or(0);
    Ok(RunResult {
        readings,
        seconds,
        peak_mb: peak as f64 / 1024.0,
        steady_mb: steady as f64 / 1024.0,
        delivered,
    })
}

/// Runs the benchmark.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "{} days of minute data (flow_rate, pressure) replayed through `hydrowatch run` after {} days imported; {} runs:",
        args.days, args.history_days, args.runs
    );
    let mut rates = Vec::new();
    let mut peaks = Vec::new();
    let mut steadies = Vec::new();
    for i in 0..args.runs.max(1) {
        let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
        let r = one_run(dir.path(), &args)?;
        println!(
            "  run {}: {} readings in {:.2} s = {:.0} readings/s; memory peak {:.1} MB, steady {:.1} MB; {} messages delivered",
            i + 1,
            r.readings,
            r.seconds,
            r.readings as f64 / r.seconds,
            r.peak_mb,
            r.steady_mb,
            r.delivered
        );
        rates.push(r.readings as f64 / r.seconds);
        peaks.push(r.peak_mb);
        steadies.push(r.steady_mb);
    }
    let (r, rs) = mean_sd(&rates);
    let (p, ps) = mean_sd(&peaks);
    let (s, ss) = mean_sd(&steadies);
    println!("throughput {r:.0} ± {rs:.0} readings/s (whole process, start to stop)");
    println!("memory: peak {p:.1} ± {ps:.1} MB, steady {s:.1} ± {ss:.1} MB (resident)");
    Ok(())
}
