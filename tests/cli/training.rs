//! Training in a child process (`hydrowatch train-worker`): a retraining killed halfway, by
//! itself or with its daemon, leaves the model in use whole; the next run trains again; the
//! daemon's memory after a retraining is what it was before.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{bin, ok, run, store, write};

/// `days` of clean minute data as files: the first `split[0]` days `history.csv`, the next
/// `split[1]` days `replay1.csv`, the rest `replay2.csv`.
fn simulate(d: &Path, days: u32, split: [usize; 2]) {
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            &days.to_string(),
            "--seed",
            "3",
            "--no-events",
            "--out",
            "all.csv",
        ],
    ));
    let text = std::fs::read_to_string(d.join("all.csv")).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let (a, b) = (split[0] * 1440, (split[0] + split[1]) * 1440);
    for (name, part) in [
        ("history.csv", &rows[..a]),
        ("replay1.csv", &rows[a..b]),
        ("replay2.csv", &rows[b..]),
    ] {
        write(d, name, &format!("{header}\n{}\n", part.join("\n")));
    }
}

fn config(replay: &str, health: &str) -> String {
    format!(
        "[device]\nid = \"dma-3\"\ntimezone = \"Asia/Seoul\"\n\n[daemon]\nhealth_listen = \"{health}\"\n\n[[source]]\nkind = \"csv_replay\"\npath = \"{replay}\"\nspeed = 0\n"
    )
}

/// `hydrowatch run` with `config`, its log appended to `log.txt`.
fn daemon(d: &Path, config: &str, until_end: bool) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("log.txt"))
        .unwrap();
    let mut args = vec!["--config", config, "run"];
    if until_end {
        args.push("--until-sources-end");
    }
    bin()
        .current_dir(d)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The processes the daemon `pid` started and that still run.
fn children(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        kids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    kids
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every file of a model folder with its bytes, in path order.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn log(d: &Path) -> String {
    std::fs::read_to_string(d.join("log.txt")).unwrap_or_default()
}

/// Waits until `child` (a daemon) has started `n` training processes in all, the last of which
/// is still running; returns its pid.
#[track_caller]
fn nth_training(d: &Path, daemon: &mut Child, n: usize) -> u32 {
    let started = Instant::now();
    let mut seen: Vec<u32> = Vec::new();
    loop {
        for kid in children(daemon.id()) {
            if !seen.contains(&kid) {
                seen.push(kid);
            }
        }
        if seen.len() >= n {
            return seen[n - 1];
        }
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "the daemon ended after {} training processes:\n{}",
            seen.len(),
            log(d)
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no training process number {n}:\n{}",
            log(d)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_retraining_killed_halfway_keeps_the_model_in_use_and_the_next_run_trains_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 100 days train the combination's network; the 10 after them pass a Sunday 02:00 (the
    // weekly retraining); the last 5 move the clock past the retry.
    simulate(d, 115, [100, 10]);
    let health = format!("127.0.0.1:{}", super::daemon::unused_port());
    write(d, "one.toml", &config("replay1.csv", ""));
    write(d, "two.toml", &config("replay2.csv", ""));
    write(d, "three.toml", &config("replay2.csv", &health));
    ok(run(d, &["--config", "one.toml", "import", "history.csv"]));
    let model = d.join("models/flow_rate");

    // Run 1: the first forecast trains both series (training processes 1 and 2); the weekly
    // retraining starts number 3 (flow_rate), killed with SIGKILL a second in.
    let mut first = daemon(d, "one.toml", true);
    let retraining = nth_training(d, &mut first, 3);
    let in_use = snapshot(&model);
    assert!(!in_use.is_empty());
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill sends a signal to a process of this test's own daemon.
    assert_eq!(unsafe { libc::kill(retraining as i32, libc::SIGKILL) }, 0);
    assert!(first.wait().unwrap().success(), "{}", log(d));
    let text = log(d);
    assert!(
        text.contains("the worker was killed by signal 9")
            && text.contains("the model in use (if any) stays"),
        "{text}"
    );
    assert_eq!(snapshot(&model), in_use, "the model in use changed");
    assert!(
        !d.join("models/.flow_rate.new").exists(),
        "a half-written model was left"
    );
    let s = store(d);
    let failed = s.last_job("retrain").unwrap().unwrap();
    assert!(
        !failed.ok && failed.message.contains("flow_rate"),
        "{failed:?}"
    );
    let flow = s.series_id("flow_rate").unwrap();
    assert!(s.retrains(flow).unwrap().is_empty());
    drop(s);

    // Run 2: the retraining is tried again (the clock moved past the retry) and the daemon
    // itself is killed while it trains: the training process dies with it.
    let mut second = daemon(d, "two.toml", false);
    let retraining = nth_training(d, &mut second, 1);
    std::thread::sleep(Duration::from_millis(500));
    second.kill().unwrap();
    second.wait().unwrap();
    let started = Instant::now();
    while Path::new(&format!("/proc/{retraining}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{retraining}/status"))
            .unwrap_or_default()
            .contains("State:\tZ")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the training process outlived its daemon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(snapshot(&model), in_use, "the model in use changed");

    // Run 3: the retraining runs again to its end; the daemon's memory afterwards is what it
    // was before it (training's memory went with its process).
    let mut third = daemon(d, "three.toml", false);
    let pid = third.id();
    let started = Instant::now();
    let mut before = 0;
    while children(pid).is_empty() {
        before = rss_kib(pid);
        assert!(started.elapsed() < Duration::from_secs(300), "{}", log(d));
        std::thread::sleep(Duration::from_millis(10));
    }
    let flow_done = |s: &hydrowatch_store::Store| !s.retrains(flow).unwrap().is_empty();
    loop {
        let s = store(d);
        let job = s.last_job("retrain").unwrap().unwrap();
        if job.ok && flow_done(&s) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{}", log(d));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(pid);
    // The training processes and the readings' waits are on /metrics and in `status`.
    let metrics = super::daemon::http_get(&health, "/metrics");
    assert!(
        metrics.contains("hydrowatch_training 0\n")
            && metrics.contains("hydrowatch_training_runs_total 2\n"),
        "{metrics}"
    );
    let epochs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hydrowatch_training_epochs_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(epochs.is_some_and(|n| n > 0), "{metrics}");
    assert!(
        metrics.contains("hydrowatch_reading_commit_seconds_count{training=\"0\"}"),
        "{metrics}"
    );
    let status = super::stdout(&ok(run(d, &["--config", "three.toml", "status"])));
    assert!(
        status.contains("training processes ended, none runs now")
            && status.contains("for their commit"),
        "{status}"
    );
    // SAFETY: SIGTERM to this test's own daemon.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(third.wait().unwrap().success(), "{}", log(d));
    assert!(before > 0 && after > 0);
    // A daemon that trained itself kept 60-160 MB more after its first training.
    assert!(
        after < before + 15 * 1024,
        "the daemon held {before} KiB before the retraining and {after} KiB after it"
    );
    let s = store(d);
    let retrain = &s.retrains(flow).unwrap()[0];
    assert!(retrain.candidate_score.is_some(), "{retrain:?}");
    assert!(hydrowatch_forecast::artifact::load_fitted(&model).is_ok());
    assert!(!d.join("models/.flow_rate.new").exists());
    assert!(!d.join("models/.flow_rate.old").exists());
}
