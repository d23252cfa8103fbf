//! `hydrowatch bench daemon`: days of minute data through the whole daemon (ingest, detection,
//! the daily jobs with their training in a child process, upload to the central server running
//! in this process) after `--history-days` of history, twice per run on copies of one imported
//! database:
//!
//! 1. as fast as it goes: readings per second, the peak memory of the daemon and of its
//!    process tree (the daemon and its training process, sampled together every 20 ms);
//! 2. paced (`--speed` times real time, far below what the daemon takes): how long readings
//!    wait from their arrival to their commit and to their verdict (p50, p99; apart while a
//!    training process runs), the daemon's memory just before its last training (the weekly
//!    retraining) and a second after it, and between jobs at the end, the process tree's peak
//!    and the training process's own peak.

use hydrowatch_core::time::DAY;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Context as _;
use clap::Args;
use hydrowatch_sim::{SimConfig, Simulator};

use super::mean_sd;
use super::storage::proc_status_kib;

/// `hydrowatch bench daemon`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Days of minute data replayed through the daemon (8 include a weekly retraining).
    #[arg(long, default_value_t = 8)]
    pub days: u32,
    /// Days imported before (the history a running device has: criteria, forecasts, and from
    /// about 5 weeks on a network to train).
    #[arg(long, default_value_t = 28)]
    pub history_days: u32,
    /// Pace of the second replay, in times real time (5000: 167 readings a second).
    #[arg(long, default_value_t = 5000.0)]
    pub speed: f64,
    /// Repetitions.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// The central server (hydrowatch-server, no rate limit) on a free local port, in this process,
/// with a token for the device `bench`; returns its URL and the token, and the runtime that
/// serves it until dropped.
fn central_server(dir: &Path) -> crate::Result<(String, String, hydrowatch_server::Background)> {
    let db = hydrowatch_server::Db::open(&dir.join("server.db"))?;
    let token = db.create_token("bench", 0)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let config = hydrowatch_server::ServerConfig {
        settings: hydrowatch_server::Settings {
            rate_limit: hydrowatch_server::RateLimit::OFF,
            ..hydrowatch_server::Settings::default()
        },
        ..Default::default()
    };
    let runtime = hydrowatch_server::Server::new(Arc::new(db), config).spawn(listener)?;
    Ok((url, token, runtime))
}

/// Resident memory of a process and of its children, KiB, at one instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    daemon: u64,
    children: u64,
    training: bool,
}

/// The daemon's resident memory and its children's (the training process).
fn sample(pid: &str) -> Option<Sample> {
    let daemon = proc_status_kib(pid, "VmRSS").ok()?;
    // Each thread's own children (the jobs thread starts the training process).
    let mut kids = String::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let path = task.path().join("children");
        kids.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        kids.push(' ');
    }
    let children: u64 = kids
        .split_whitespace()
        .filter_map(|child| proc_status_kib(child, "VmRSS").ok())
        .sum();
    Some(Sample {
        daemon,
        children,
        training: !kids.trim().is_empty(),
    })
}

/// One replay through `hydrowatch run` in `dir` (its bench.toml, its database): the samples,
/// the seconds it took and its summary (stdout).
fn replay(exe: &Path, dir: &Path) -> crate::Result<(Vec<Sample>, u64, f64, serde_json::Value)> {
    let started = Instant::now();
    let mut child = Command::new(exe)
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
    let mut daemon_peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(s) = sample(&pid) {
            samples.push(s);
        }
        if let Ok(hwm) = proc_status_kib(&pid, "VmHWM") {
            daemon_peak = u64::max(daemon_peak, hwm);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    crate::ensure(status.success(), || format!("the daemon failed: {status}"))?;
    let mut summary = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut summary)?;
    }
    let summary = serde_json::from_str(&summary).context("the daemon's summary")?;
    Ok((samples, daemon_peak, seconds, summary))
}

/// The median of `xs` (0 when empty).
fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or(0)
}

struct RunResult {
    readings: u64,
    seconds: f64,
    /// MB: the daemon's own peak and the tree's, as fast as it goes.
    fast_peak: [f64; 2],
    /// MB: the daemon just before its last training and a second after it, between jobs at
    /// the end; the tree's peak; the last training process's own peak.
    paced_memory: [f64; 5],
    /// The daemon's `latency` counters of the paced replay.
    latency: serde_json::Value,
    delivered: u64,
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn one_run(dir: &Path, args: &BenchArgs) -> crate::Result<RunResult> {
    let (url, token, _server) = central_server(dir)?;
    let exe = std::env::current_exe()?;
    let mut sim = Simulator::new(SimConfig {
        days: args.history_days + args.days,
        seed: 11,
        ..SimConfig::default()
    });
    let split = sim.start() + i64::from(args.history_days) * DAY;
    let mut history = std::io::BufWriter::new(std::fs::File::create(dir.join("history.csv"))?);
    let mut days = std::io::BufWriter::new(std::fs::File::create(dir.join("days.csv"))?);
    let [_, replayed] = sim.write_csv_split(&mut history, &mut days, split)?;
    history.flush()?;
    days.flush()?;
    drop((history, days));
    let config = |speed: f64| {
        format!(
            "[device]\nid = \"bench\"\n\n[server]\nurl = \"{url}\"\ntoken = \"{token}\"\n\n[daemon]\nhealth_listen = \"\"\n\n[[source]]\nkind = \"csv_replay\"\npath = \"../days.csv\"\nspeed = {speed}\n"
        )
    };
    let (fast, paced) = (dir.join("fast"), dir.join("paced"));
    for (folder, speed) in [(&fast, 0.0), (&paced, args.speed)] {
        std::fs::create_dir_all(folder)?;
        std::fs::write(folder.join("bench.toml"), config(speed))?;
    }
    let status = Command::new(&exe)
        .current_dir(&fast)
        .args(["--config", "bench.toml", "import", "../history.csv"])
        .stdout(Stdio::null())
        .status()?;
    crate::ensure(status.success(), || "importing the history failed".into())?;
    std::fs::copy(fast.join("hydrowatch.db"), paced.join("hydrowatch.db"))?;

    let (samples, daemon_peak, seconds, summary) = replay(&exe, &fast)?;
    let tree_peak = samples
        .iter()
        .map(|s| s.daemon + s.children)
        .max()
        .unwrap_or(0);
    let delivered = summary["metrics"]["delivered"].as_u64().unwrap_or(0);

    let (samples, _, _, summary) = replay(&exe, &paced)?;
    // Around the last training (the weekly retraining): the daemon just before it started and
    // a second (50 samples) after it ended.
    let last_training = samples.iter().rposition(|s| s.training);
    let start = last_training.map(|end| {
        samples[..end]
            .iter()
            .rposition(|s| !s.training)
            .unwrap_or(0)
    });
    let (before, after) = match (start, last_training) {
        (Some(start), Some(end)) => (
            samples[start].daemon,
            samples
                .get(end + 50)
                .or(samples.last())
                .map_or(0, |s| s.daemon),
        ),
        _ => (0, 0),
    };
    let last_third = samples.len() * 2 / 3;
    let between = median(
        samples[last_third..]
            .iter()
            .filter(|s| !s.training)
            .map(|s| s.daemon)
            .collect(),
    );
    let paced_tree = samples
        .iter()
        .map(|s| s.daemon + s.children)
        .max()
        .unwrap_or(0);
    let worker_peak = summary["metrics"]["training_peak_bytes"]
        .as_u64()
        .unwrap_or(0)
        / 1024;
    Ok(RunResult {
        readings: replayed.values,
        seconds,
        fast_peak: [mb(daemon_peak), mb(tree_peak)],
        paced_memory: [
            mb(before),
            mb(after),
            mb(between),
            mb(paced_tree),
            mb(worker_peak),
        ],
        latency: summary["metrics"]["latency"].clone(),
        delivered,
    })
}

/// `p50/p99 ms (readings)` of one latency histogram.
fn waits(latency: &serde_json::Value, stage: &str, when: &str) -> String {
    let h = &latency[stage][when];
    format!(
        "{}/{} ms ({} readings)",
        h["p50_ms"], h["p99_ms"], h["readings"]
    )
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> crate::Result<()> {
    println!(
        "{} days of minute data (flow_rate, pressure) replayed through `hydrowatch run` after {} days imported, as fast as it goes and at {}x real time; {} runs:",
        args.days, args.history_days, args.speed, args.runs
    );
    let mut rates = Vec::new();
    let mut columns: [Vec<f64>; 7] = Default::default();
    let mut p99 = [Vec::new(), Vec::new()];
    for i in 0..args.runs.max(1) {
        let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
        let r = one_run(dir.path(), &args)?;
        let [daemon_peak, tree_peak] = r.fast_peak;
        let [before, after, between, paced_tree, worker] = r.paced_memory;
        println!(
            "  run {}: {} readings in {:.2} s = {:.0} readings/s, peak {daemon_peak:.1} MB (daemon), {tree_peak:.1} MB (process tree); {} messages delivered",
            i + 1,
            r.readings,
            r.seconds,
            r.readings as f64 / r.seconds,
            r.delivered
        );
        println!(
            "         paced: daemon {before:.1} MB before its last training, {after:.1} MB a second after it, {between:.1} MB between jobs at the end (median); process tree peak {paced_tree:.1} MB, training process peak {worker:.1} MB"
        );
        for (stage, name) in [("commit", "commit "), ("verdict", "verdict")] {
            println!(
                "         reading to {name} p50/p99: {} idle, {} while training",
                waits(&r.latency, stage, "idle"),
                waits(&r.latency, stage, "training")
            );
        }
        rates.push(r.readings as f64 / r.seconds);
        for (c, v) in columns.iter_mut().zip([
            daemon_peak,
            tree_peak,
            before,
            after,
            between,
            paced_tree,
            worker,
        ]) {
            c.push(v);
        }
        for (k, stage) in ["commit", "verdict"].iter().enumerate() {
            let w = &r.latency[stage];
            let worst = ["idle", "training"]
                .iter()
                .filter_map(|when| w[when]["p99_ms"].as_f64())
                .fold(0.0, f64::max);
            p99[k].push(worst);
        }
    }
    let ms = |xs: &[f64]| {
        let (m, s) = mean_sd(xs);
        format!("{m:.1} ± {s:.1}")
    };
    let (r, rs) = mean_sd(&rates);
    println!("throughput {r:.0} ± {rs:.0} readings/s (whole process, start to stop)");
    println!(
        "memory (MB, resident): as fast as it goes, peak {} (daemon), {} (process tree); paced, daemon {} before its last training, {} a second after, {} between jobs at the end, process tree peak {}, training process peak {}",
        ms(&columns[0]),
        ms(&columns[1]),
        ms(&columns[2]),
        ms(&columns[3]),
        ms(&columns[4]),
        ms(&columns[5]),
        ms(&columns[6])
    );
    println!(
        "p99 wait, the worse of idle and training: commit {} ms, verdict {} ms",
        ms(&p99[0]),
        ms(&p99[1])
    );
    Ok(())
}
