//! `hydrowatch run`: the daemon end to end, over real sockets, a real SQLite file and real
//! processes killed with SIGKILL.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin, ok, run, store, write};

/// A central server that stores each message id once and acknowledges what it holds (the
/// contract of docs/ARCHITECTURE.md): the messages stored, in the order received, and how many
/// ids came again (after a device died between the server's answer and its own bookkeeping).
pub(crate) struct IngestServer {
    pub(crate) url: String,
    received: Arc<Mutex<Received>>,
}

#[derive(Default)]
struct Received {
    stored: Vec<serde_json::Value>,
    ids: HashSet<String>,
    repeats: usize,
}

impl IngestServer {
    pub(crate) fn start() -> IngestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Received::default()));
        let stored = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let stored = stored.clone();
                std::thread::spawn(move || serve(stream, &stored));
            }
        });
        IngestServer { url, received }
    }

    pub(crate) fn messages(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().stored.clone()
    }

    pub(crate) fn repeats(&self) -> usize {
        self.received.lock().unwrap().repeats
    }
}

fn serve(stream: TcpStream, received: &Mutex<Received>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut length = 0;
        let mut first = true;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut ids = Vec::new();
        {
            let mut r = received.lock().unwrap();
            for m in body["messages"].as_array().unwrap() {
                let id = m["message_id"].as_str().unwrap().to_string();
                ids.push(id.clone());
                if r.ids.insert(id) {
                    r.stored.push(m.clone());
                } else {
                    r.repeats += 1;
                }
            }
        }
        let reply = serde_json::json!({ "acknowledged": ids }).to_string();
        if write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )
        .is_err()
        {
            return;
        }
    }
}

fn of_kind<'a>(messages: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    messages.iter().filter(|m| m["kind"] == kind).collect()
}

fn config(server: &str, source: &str, extra: &str) -> String {
    format!(
        // The fixtures' readings are of 2024: kept whatever today's date.
        "[storage]\nretention_days = 36500\n\n[device]\nid = \"dma-7\"\ntimezone = \"Asia/Seoul\"\n\n[server]\nurl = \"{server}\"\ntoken = \"t\"\n{extra}\n[daemon]\nhealth_listen = \"\"\n\n[[source]]\n{source}\n"
    )
}

pub(crate) fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Simulates `days` days from `start` with `seed` and writes them as two files: `a.csv` with the
/// first `first_days`, `b.csv` with the rest.
fn simulate_split(d: &Path, days: u32, seed: u32, start: &str, first_days: usize) {
    let (days, seed) = (days.to_string(), seed.to_string());
    ok(run(
        d,
        &[
            "simulate", "--days", &days, "--seed", &seed, "--start", start, "--out", "all.csv",
        ],
    ));
    let text = std::fs::read_to_string(d.join("all.csv")).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let split = first_days * 1440;
    write(
        d,
        "a.csv",
        &format!("{header}\n{}\n", rows[..split].join("\n")),
    );
    write(
        d,
        "b.csv",
        &format!("{header}\n{}\n", rows[split..].join("\n")),
    );
}

/// Readings of flow_rate and pressure stored in the default database of `d`.
/// Runs the daemon on `config` until its sources end, without waiting to deliver: what it could
/// not send stays in the outbox.
pub(super) fn run_without_delivery_wait(d: &Path, config: &str) {
    ok(run(
        d,
        &[
            "--config",
            config,
            "run",
            "--until-sources-end",
            "--drain-seconds",
            "0",
        ],
    ));
}

fn stored_readings(d: &Path) -> u64 {
    let s = store(d);
    ["flow_rate", "pressure"]
        .iter()
        .map(|n| s.series_id(n).map(|id| s.count(id).unwrap()).unwrap_or(0))
        .sum()
}

#[test]
fn server_down_for_a_day_then_back_every_alarm_and_forecast_arrives_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The first 11 days, then the 12th, as two files.
    simulate_split(d, 12, 3, "2024-03-01", 11);
    let replay = |file: &str| format!("kind = \"csv_replay\"\npath = \"{file}\"\nspeed = 0\n");

    // Days 1-11 with the server unreachable: everything waits in the outbox.
    let down = format!("http://127.0.0.1:{}", unused_port());
    write(d, "down.toml", &config(&down, &replay("a.csv"), ""));
    ok(run(
        d,
        &[
            "--config",
            "down.toml",
            "run",
            "--until-sources-end",
            "--drain-seconds",
            "1",
        ],
    ));
    let waiting = store(d).outbox_stats().unwrap().rows;
    assert!(waiting > 0);

    // The server is back; day 12 arrives: the waiting messages go first, then the day's.
    let server = IngestServer::start();
    write(d, "up.toml", &config(&server.url, &replay("b.csv"), ""));
    let out = ok(run(
        d,
        &["--config", "up.toml", "run", "--until-sources-end"],
    ));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["metrics"]["outbox_depth"], 0, "{summary}");
    let messages = server.messages();
    assert_eq!(server.repeats(), 0, "nothing was sent twice");
    assert_eq!(store(d).outbox_stats().unwrap().rows, 0);

    // Every alarm transition the device recorded arrived once, in the order they happened.
    let alerts = of_kind(&messages, "alert");
    let s = store(d);
    let alarms = s.alarms(false).unwrap();
    assert!(!alarms.is_empty());
    let mut seen: HashMap<u64, Vec<&str>> = HashMap::new();
    let mut last_time = String::new();
    for a in &alerts {
        let body = &a["body"];
        let time = a["created_at"].as_str().unwrap().to_string();
        assert!(time >= last_time, "out of order: {time} after {last_time}");
        last_time = time;
        seen.entry(body["alarm_id"].as_u64().unwrap())
            .or_default()
            .push(body["state"].as_str().unwrap());
    }
    for alarm in &alarms {
        let states = seen
            .get(&(alarm.id as u64))
            .unwrap_or_else(|| panic!("alarm {} never arrived", alarm.id));
        assert_eq!(states[0], "opened", "alarm {}: {states:?}", alarm.id);
        assert_eq!(
            states.last() == Some(&"cleared"),
            alarm.cleared_at.is_some(),
            "alarm {}: {states:?}",
            alarm.id
        );
    }
    assert_eq!(seen.len(), alarms.len());
    // The forecasts: each issue of each series once, with 168 points, the newest among them.
    // (An unpaced replay runs the daily job whenever it gets to look, not once per data day.)
    let forecasts = of_kind(&messages, "forecast");
    for series in ["flow_rate", "pressure"] {
        let newest = s
            .latest_forecast(s.series_id(series).unwrap())
            .unwrap()
            .unwrap();
        let newest = chrono::DateTime::from_timestamp(newest, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert!(
            forecasts.iter().any(|f| f["body"]["series"] == series && f["body"]["issued_at"] == newest.as_str()),
            "{series} {newest}"
        );
    }
    let issues: HashSet<(String, String)> = forecasts
        .iter()
        .map(|f| {
            (
                f["body"]["series"].as_str().unwrap().into(),
                f["body"]["issued_at"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(issues.len(), forecasts.len());
    assert!(
        forecasts
            .iter()
            .all(|f| f["body"]["points"].as_array().unwrap().len() == 168)
    );
    assert!(!of_kind(&messages, "heartbeat").is_empty());
}

/// Sends `lines` to the tcp source at `addr` in chunks; returns the lines answered `ok` (or
/// `ok duplicate`) before the connection broke.
fn send_lines(addr: &str, lines: &[String]) -> usize {
    let Ok(stream) = TcpStream::connect(addr) else {
        return 0;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut acknowledged = 0;
    for chunk in lines.chunks(20) {
        if writer.write_all(chunk.join("").as_bytes()).is_err() {
            return acknowledged;
        }
        for _ in chunk {
            let mut answer = String::new();
            if reader.read_line(&mut answer).unwrap_or(0) == 0 {
                return acknowledged;
            }
            assert!(answer.starts_with("ok"), "{answer}");
            acknowledged += 1;
        }
    }
    acknowledged
}

/// `hydrowatch --config CONFIG run` in `d`; its log goes to `stderr`.
pub(crate) fn start_daemon(d: &Path, config: &str, stderr: Stdio) -> Child {
    bin()
        .current_dir(d)
        .args(["--config", config, "run"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Like [`wait_listening`], but a daemon that exits or does not listen fails with its log.
fn wait_listening_or_say_why(addr: &str, child: &mut Child, log: &Path) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        let why = || std::fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the daemon exited ({status}) before listening on {addr}:\n{}",
                why()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the daemon never listened on {addr}:\n{}",
            why()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn wait_listening(addr: &str) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the daemon never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_during_ingest_and_upload_twenty_times_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = IngestServer::start();
    let addr = format!("127.0.0.1:{}", unused_port());
    // Readings of the last 3 days up to now, so that the wall clock judges them; a burst on
    // day 2 and a stuck pressure sensor on day 3 raise alarms.
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    let start = now - 3 * 86_400;
    let mut lines = Vec::new();
    for (k, ts) in (start..now).step_by(60).enumerate() {
        let local = hydrowatch_core::time::format_local(ts, chrono_tz::Asia::Seoul);
        let hour = (k / 60) % 24;
        let mut flow = 100.0
            + 40.0 * ((hour as f64 - 4.0) / 24.0 * std::f64::consts::TAU).sin()
            + (k % 7) as f64;
        if (1440 + 600..1440 + 660).contains(&k) {
            flow += 400.0;
        }
        let pressure = if k > 2 * 1440 + 300 {
            4.0
        } else {
            4.0 + 0.01 * (k % 13) as f64
        };
        lines.push(format!("{local},flow_rate,{flow:.2}\n"));
        lines.push(format!("{local},pressure,{pressure:.3}\n"));
    }
    let source = format!("kind = \"tcp\"\nlisten = \"{addr}\"\n");
    write(d, "h.toml", &config(&server.url, &source, ""));
    let mut sent = 0;
    let mut rng = 12345u64;
    for round in 0..20 {
        let log = d.join(format!("daemon-{round}.log"));
        let mut child = start_daemon(d, "h.toml", std::fs::File::create(&log).unwrap().into());
        wait_listening_or_say_why(&addr, &mut child, &log);
        let chunk: Vec<String> = lines[sent..].to_vec();
        let sender = {
            let addr = addr.clone();
            std::thread::spawn(move || send_lines(&addr, &chunk))
        };
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(50 + (rng >> 33) % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        sent += sender.join().unwrap();
        // Every reading answered `ok` is in the database.
        let stored = stored_readings(d);
        assert!(
            stored >= sent as u64,
            "{stored} stored, {sent} acknowledged"
        );
    }
    // The rest, then a clean stop: everything judged and delivered.
    let mut child = start_daemon(d, "h.toml", Stdio::null());
    wait_listening(&addr);
    sent += send_lines(&addr, &lines[sent..]);
    assert_eq!(sent, lines.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    while store(d).outbox_stats().unwrap().rows > 0 || store(d).alarms(false).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the outbox never emptied");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: a signal to our own child process; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(
        child.wait().unwrap().success(),
        "SIGTERM ends the daemon with 0"
    );

    assert_eq!(stored_readings(d), lines.len() as u64);
    let s = store(d);
    // No transition delivered twice, none lost: every alarm the device knows arrived from its
    // opening to its present state, in order, each transition once.
    let messages = server.messages();
    let alerts = of_kind(&messages, "alert");
    let mut transitions: HashMap<u64, Vec<(String, u64, String)>> = HashMap::new();
    for a in &alerts {
        let b = &a["body"];
        let t = (
            b["state"].as_str().unwrap().to_string(),
            b["outlier_stage"].as_u64().unwrap(),
            b["time"].as_str().unwrap().to_string(),
        );
        let list = transitions
            .entry(b["alarm_id"].as_u64().unwrap())
            .or_default();
        assert!(
            !list.contains(&t),
            "transition {t:?} of alarm {} delivered twice",
            b["alarm_id"]
        );
        list.push(t);
    }
    let alarms = s.alarms(false).unwrap();
    assert!(alarms.iter().any(|a| a.kind == "stuck"), "{alarms:?}");
    for alarm in &alarms {
        let list = transitions
            .get(&(alarm.id as u64))
            .unwrap_or_else(|| panic!("alarm {} lost", alarm.id));
        assert_eq!(list[0].0, "opened", "{list:?}");
        let last = list.last().unwrap();
        assert_eq!(
            (last.0 == "cleared"),
            alarm.cleared_at.is_some(),
            "{list:?}"
        );
        assert_eq!(last.1, u64::from(alarm.stage), "{list:?}");
    }
    assert_eq!(transitions.len(), alarms.len());
}

#[test]
fn a_full_outbox_drops_by_policy_while_ingest_and_detection_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "20",
            "--seed",
            "2",
            "--start",
            "2024-05-01",
            "--out",
            "m.csv",
        ],
    ));
    let down = format!("http://127.0.0.1:{}", unused_port());
    let source = "kind = \"csv_replay\"\npath = \"m.csv\"\nspeed = 0\n";
    write(d, "h.toml", &config(&down, source, "outbox_rows = 6\n"));
    let out = ok(run(
        d,
        &[
            "--config",
            "h.toml",
            "run",
            "--until-sources-end",
            "--drain-seconds",
            "0",
        ],
    ));
    let log = super::stderr(&out);
    assert!(
        log.contains("outbox full: dropped the oldest forecast message"),
        "{log}"
    );
    let total = stored_readings(d);
    let s = store(d);
    let readings = std::fs::read_to_string(d.join("m.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(1).filter(|v| !v.is_empty()).count() as u64)
        .sum::<u64>();
    assert_eq!(total, readings, "every reading stored");
    let stats = s.outbox_stats().unwrap();
    assert!(stats.rows <= 6, "{stats:?}");
    let dropped: HashMap<String, u64> = stats.dropped.into_iter().collect();
    assert!(
        dropped.get("forecast").copied().unwrap_or(0) > 0,
        "{dropped:?}"
    );
    assert!(!s.alarms(false).unwrap().is_empty(), "detection went on");
    let status = super::stdout(&ok(run(d, &["--config", "h.toml", "status"])));
    assert!(
        status.contains("dropped by policy: ") && status.contains("forecast"),
        "{status}"
    );
}

#[test]
fn bad_input_is_answered_logged_and_counted_and_never_stops_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = format!("127.0.0.1:{}", unused_port());
    let health = format!("127.0.0.1:{}", unused_port());
    // A Modbus device that accepts the connection and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let text = format!(
        "[device]\nid = \"dma-7\"\n\n[[series]]\nname = \"flow_rate\"\nunit = \"m3/h\"\nmin = 0.0\nmax = 2000.0\nstale_minutes = 2\n\n\
         [daemon]\nhealth_listen = \"{health}\"\n\n[[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n\n\
         [[source]]\nkind = \"modbus\"\naddress = \"{silent_addr}\"\ninterval_seconds = 1\ntimeout_ms = 200\nregisters = [{{ series = \"flow_rate\", address = 0 }}]\n"
    );
    write(d, "h.toml", &text);
    let child = start_daemon(d, "h.toml", Stdio::piped());
    wait_listening(&addr);
    let tz = chrono_tz::Asia::Seoul;
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    let at = |ts: i64| hydrowatch_core::time::format_local(ts, tz);
    let (mut reader, mut writer) = connect(&addr);
    let mut ask = |line: String| {
        writer.write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        answer
    };
    assert_eq!(ask(format!("{},flow_rate,101.5\n", at(now - 300))), "ok\n");
    assert_eq!(
        ask(format!("{},flow_rate,101.5\n", at(now - 300))),
        "ok duplicate\n"
    );
    let a = ask(format!("{},flow_rate,99.0\n", at(now - 300)));
    assert!(
        a.starts_with("error:") && a.contains("conflicts with the stored 101.5"),
        "{a}"
    );
    let a = ask(format!("{},flow_rate,101.5\n", at(now + 86_400)));
    assert!(a.contains("from the future"), "{a}");
    let a = ask("2024-01-01 00:00,flow_rat,1\n".into());
    assert!(
        a.contains("\"flow_rat\" is not configured (configured: flow_rate)"),
        "{a}"
    );
    let a = ask("\u{1}\u{2}garbage\n".into());
    assert!(
        a.starts_with("error: line 6:") && a.contains("fields"),
        "{a}"
    );
    // The sensor stopped sending 5 minutes ago: a stale alarm opens at the first tick after
    // nothing arrived for 10 s (until then, readings are judged by their own times).
    let deadline = Instant::now() + Duration::from_secs(40);
    while !store(d)
        .alarms(true)
        .unwrap()
        .iter()
        .any(|a| a.kind == "stale")
    {
        assert!(Instant::now() < deadline, "no stale alarm");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The Modbus device's silence is counted; the daemon still answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health: serde_json::Value =
            serde_json::from_str(&http_get(&health, "/health")).unwrap();
        if health["device_timeouts"].as_u64().unwrap() >= 2 {
            assert_eq!(health["readings_ingested"], 1);
            assert_eq!(health["readings_duplicate"], 1);
            assert_eq!(health["readings_refused"], 3);
            assert_eq!(health["bad_input"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "{health}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = http_get(&health, "/metrics");
    assert!(
        metrics.contains("hydrowatch_readings_ingested_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE hydrowatch_alarms_open gauge"),
        "{metrics}"
    );
    assert_eq!(ask(format!("{},flow_rate,102.5\n", at(now - 240))), "ok\n");
    // SAFETY: a signal to our own child process; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "from the future",
        "conflicts with the stored",
        "bad input",
        "no answer within 200 ms",
        "stop signal received",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    assert!(!log.contains("panicked"), "{log}");
}

/// The status and body of `GET path` at `addr`.
fn http_get_status(addr: &str, path: &str) -> (u16, String) {
    http_get_as(addr, path, None)
}

/// GET `path` from `addr`, with `token` as `Authorization: Bearer` when given.
pub(crate) fn http_get_as(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

pub(crate) fn http_get(addr: &str, path: &str) -> String {
    http_get_status(addr, path).1
}

#[test]
fn the_systemd_unit_restarts_on_failure_starts_at_boot_and_runs_the_packaged_configuration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
    let unit = std::fs::read_to_string(root.join("hydrowatch.service")).unwrap();
    for line in [
        "Restart=on-failure",
        "WantedBy=multi-user.target",
        "KillSignal=SIGTERM",
        "ExecStart=/usr/local/bin/hydrowatch --config /etc/hydrowatch/hydrowatch.toml run --log-json",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = root.join("hydrowatch.toml");
    let out = super::stdout(&ok(run(
        dir.path(),
        &["config", "check", config.to_str().unwrap()],
    )));
    assert!(out.contains("sources   modbus"), "{out}");
}

#[test]
fn the_simulator_and_stdin_sources_feed_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sim.toml",
        "[device]\nid = \"s\"\n[storage]\nretention_days = 36500\n[daemon]\nhealth_listen = \"\"\n[[source]]\nkind = \"simulator\"\nspeed = 0\nstart = \"2024-02-01\"\ndays = 2\nseed = 9\n",
    );
    ok(run(
        d,
        &[
            "--config",
            "sim.toml",
            "--db",
            "sim.db",
            "run",
            "--until-sources-end",
        ],
    ));
    let s = hydrowatch_store::Store::open(&d.join("sim.db"), chrono_tz::Asia::Seoul).unwrap();
    let flow = s.count(s.series_id("flow_rate").unwrap()).unwrap();
    assert!((2 * 1440 - 120..=2 * 1440).contains(&flow), "{flow}");

    write(
        d,
        "stdin.toml",
        "[device]\nid = \"s\"\n[daemon]\nhealth_listen = \"\"\n[[source]]\nkind = \"stdin\"\n",
    );
    let mut child = bin()
        .current_dir(d)
        .args([
            "--config",
            "stdin.toml",
            "--db",
            "in.db",
            "run",
            "--until-sources-end",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Recent times: the wall clock's retention (365 days) would delete older ones at once.
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    let at = |ts: i64| hydrowatch_core::time::format_local(ts, chrono_tz::Asia::Seoul);
    let lines = format!(
        "{t0},flow_rate,100.5\n{t0},pressure,4.1\nnot a line\n{t1},flow_rate,101\n",
        t0 = at(now - 120),
        t1 = at(now - 60)
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("line 3: 1 fields where 3 were expected"),
        "{log}"
    );
    let s = hydrowatch_store::Store::open(&d.join("in.db"), chrono_tz::Asia::Seoul).unwrap();
    assert_eq!(s.count(s.series_id("flow_rate").unwrap()).unwrap(), 2);
    assert_eq!(s.count(s.series_id("pressure").unwrap()).unwrap(), 1);
}

/// A small tmpfs mounted at a folder, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` where mounting is not allowed (not root): the test says so and does nothing.
    fn mount(at: &Path, megabytes: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_holds_readings_unacknowledged_until_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(disk) = SmallDisk::mount(&d.join("disk"), 4) else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let addr = format!("127.0.0.1:{}", unused_port());
    let health = format!("127.0.0.1:{}", unused_port());
    write(
        d,
        "h.toml",
        &format!(
            "[device]\nid = \"full\"\n[storage]\ndatabase = \"disk/h.db\"\n[daemon]\nhealth_listen = \"{health}\"\n[[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n"
        ),
    );
    let child = start_daemon(d, "h.toml", Stdio::piped());
    wait_listening(&addr);
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    let line = |k: i64| {
        let at = hydrowatch_core::time::format_local(now - 86_400 + k * 60, chrono_tz::Asia::Seoul);
        format!("{at},flow_rate,{}\n", 100 + k % 17)
    };
    let first: Vec<String> = (0..10).map(line).collect();
    assert_eq!(send_lines(&addr, &first), 10);

    // Fill the disk.
    let mut filler = std::fs::File::create(disk.0.join("filler")).unwrap();
    while filler.write_all(&[7u8; 65_536]).is_ok() {}
    drop(filler);
    // Readings sent now cannot be committed: no answer, nothing lost, the daemon lives.
    let stream = TcpStream::connect(&addr).unwrap();
    let rest: String = (10..1000).map(line).collect();
    (&stream).write_all(rest.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut answers = 0;
    let mut answer = String::new();
    while reader.read_line(&mut answer).is_ok_and(|n| n > 0) {
        assert!(answer.starts_with("ok"), "{answer}");
        answers += 1;
        answer.clear();
    }
    assert!(
        answers < 990,
        "every reading was acknowledged on a full disk"
    );
    // The health endpoint says so, and why, with a status a probe sees without JSON.
    let (status, body) = http_get_status(&health, "/health");
    assert_eq!(status, 503, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be committed"),
        "{h}"
    );
    assert!(h["commit_failures"].as_u64().unwrap() >= 1, "{h}");
    assert!(
        h["newest_reading_age_seconds"].as_i64().unwrap() > 3600,
        "{h}"
    );
    assert!(http_get(&health, "/metrics").contains("hydrowatch_degraded 1\n"));
    // `hydrowatch status` asks the running daemon and says so.
    let status = super::stdout(&ok(run(d, &["--config", "h.toml", "status"])));
    assert!(status.contains("daemon: DEGRADED: "), "{status}");
    // A little space returns (a log file deleted): the held readings are committed and
    // acknowledged; the write-ahead log gives back what it held.
    let filler = std::fs::OpenOptions::new()
        .write(true)
        .open(disk.0.join("filler"))
        .unwrap();
    let len = filler.metadata().unwrap().len();
    filler.set_len(len.saturating_sub(1 << 20)).unwrap();
    drop(filler);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    while answers < 990 {
        answer.clear();
        assert!(reader.read_line(&mut answer).unwrap() > 0);
        assert!(answer.starts_with("ok"), "{answer}");
        answers += 1;
    }
    let h: serde_json::Value = serde_json::from_str(&http_get(&health, "/health")).unwrap();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["reason"], serde_json::Value::Null, "{h}");
    // SAFETY: a signal to our own child process; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("cannot commit readings"), "{log}");
    let s = hydrowatch_store::Store::open(&disk.0.join("h.db"), chrono_tz::Asia::Seoul).unwrap();
    assert_eq!(s.count(s.series_id("flow_rate").unwrap()).unwrap(), 1000);
}

/// The central server's database option: a SQLite file, or a new PostgreSQL database.
fn server_database(postgres: bool) -> [String; 2] {
    if postgres {
        ["--database".into(), hydrowatch_pgtest::database()]
    } else {
        ["--db".into(), "server.db".into()]
    }
}

fn start_server(d: &Path, port: u16, database: &[String; 2]) -> Child {
    start_server_with(d, port, database, &[])
}

/// `hydrowatch serve` on `database` and `port` with `more` options, once it listens.
pub(crate) fn start_server_with(
    d: &Path,
    port: u16,
    database: &[String; 2],
    more: &[&str],
) -> Child {
    let child = bin()
        .current_dir(d)
        .arg("serve")
        .args(database)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(more)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&format!("127.0.0.1:{port}"));
    child
}

#[test]
fn the_real_server_on_sqlite_gets_every_transition_once_across_its_own_kill_and_restart() {
    server_killed_and_restarted(false);
}

#[test]
fn the_real_server_on_postgres_gets_every_transition_once_across_its_own_kill_and_restart() {
    server_killed_and_restarted(true);
}

fn server_killed_and_restarted(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let database = server_database(postgres);
    let token = super::stdout(&ok(run(
        d,
        &[
            "serve",
            &database[0],
            &database[1],
            "token",
            "create",
            "dma-7",
        ],
    )));
    let token = token.trim();
    assert_eq!(token.len(), 48, "{token}");
    let reader = operator_token(d, &database, "vera", "viewer");
    simulate_split(d, 14, 6, "2024-04-01", 12);
    let port = unused_port();
    let device = |file: &str, speed: u32| {
        format!(
            "[device]\nid = \"dma-7\"\n[server]\nurl = \"http://127.0.0.1:{port}\"\ntoken = \"{token}\"\n[daemon]\nhealth_listen = \"\"\n[[source]]\nkind = \"csv_replay\"\npath = \"{file}\"\nspeed = {speed}\n"
        )
    };
    // 12 days while the server is down.
    write(d, "a.toml", &device("a.csv", 0));
    run_without_delivery_wait(d, "a.toml");
    assert!(store(d).outbox_stats().unwrap().rows > 0);
    // The server comes up, is killed while the device delivers and replays 2 more days, and
    // comes back: the device retries with backoff.
    let mut server = start_server(d, port, &database);
    write(d, "b.toml", &device("b.csv", 40_000));
    let mut daemon = bin()
        .current_dir(d)
        .args([
            "--config",
            "b.toml",
            "run",
            "--until-sources-end",
            "--drain-seconds",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill().unwrap();
    server.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut server = start_server(d, port, &database);
    assert!(daemon.wait().unwrap().success());
    assert_eq!(
        store(d).outbox_stats().unwrap().rows,
        0,
        "everything delivered"
    );

    let alarms = api_get(port, &reader, "/api/v1/alarms?device=dma-7");
    let alarms = alarms.as_array().unwrap();
    let mut seen = HashSet::new();
    for a in alarms {
        let key = (
            a["alarm_id"].as_u64().unwrap(),
            a["state"].to_string(),
            a["outlier_stage"].as_u64().unwrap(),
            a["time"].to_string(),
        );
        assert!(seen.insert(key.clone()), "{key:?} stored twice");
    }
    let s = store(d);
    let known = s.alarms(false).unwrap();
    assert!(!known.is_empty());
    let open = api_get(port, &reader, "/api/v1/alarms?device=dma-7&open=true");
    let open_ids: HashSet<u64> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alarm_id"].as_u64().unwrap())
        .collect();
    for alarm in &known {
        assert!(
            alarms
                .iter()
                .any(|a| a["alarm_id"] == alarm.id && a["state"] == "opened"),
            "alarm {} lost",
            alarm.id
        );
        assert_eq!(
            open_ids.contains(&(alarm.id as u64)),
            alarm.cleared_at.is_none(),
            "alarm {}",
            alarm.id
        );
    }
    let devices = api_get(port, &reader, "/api/v1/devices");
    assert_eq!(devices[0]["id"], "dma-7");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// GET `path` from the server on `port` with an operator's API `token`.
fn api_get(port: u16, token: &str, path: &str) -> Value {
    let (status, body) = http_get_as(&format!("127.0.0.1:{port}"), path, Some(token));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Adds user `name` with `role` through `hydrowatch serve user add` (the password on standard
/// input) and returns an API token of theirs from `hydrowatch serve token create --operator`.
pub(crate) fn operator_token(d: &Path, database: &[String; 2], name: &str, role: &str) -> String {
    use std::io::Write as _;
    let mut add = bin()
        .current_dir(d)
        .arg("serve")
        .args(database)
        .args(["user", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{name}-password").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = super::stdout(&ok(run(
        d,
        &[
            "serve",
            &database[0],
            &database[1],
            "token",
            "create",
            "--operator",
            name,
        ],
    )));
    assert_eq!(token.trim().len(), 48, "{token}");
    token.trim().to_string()
}

#[test]
fn serve_says_what_is_wrong_with_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = unused_port();
    let e = super::fails(run(
        d,
        &[
            "serve",
            "--database",
            &format!("postgres://hw:secret@127.0.0.1:{port}/fleet"),
        ],
    ));
    assert!(e.contains("Connection refused"), "{e}");
    assert!(!e.contains("secret"), "the password is not repeated: {e}");
    let e = super::fails(run(d, &["serve", "--database", "mysql://x/y"]));
    assert!(e.contains("expected postgres://"), "{e}");
    let e = super::fails(run(
        d,
        &["serve", "--db", "a.db", "--database", "postgres://x@y/z"],
    ));
    assert!(e.contains("choose one"), "{e}");
    let missing = hydrowatch_pgtest::database().replace("/t", "/missing_t");
    let e = super::fails(run(d, &["serve", "--database", &missing]));
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn serve_on_postgres_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = unused_port();
    let database = server_database(true);
    let child = bin()
        .current_dir(dir.path())
        .arg("serve")
        .args(&database)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&format!("127.0.0.1:{port}"));
    // A request that reads the database, so that the pool holds connections when the server
    // stops.
    let (status, _) = http_get_as(&format!("127.0.0.1:{port}"), "/api/v1/devices", Some("x"));
    assert_eq!(status, 401);
    // SAFETY: a signal to our own child process; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_gateway_flushing_hours_of_buffered_readings_opens_no_stale_alarm_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = format!("127.0.0.1:{}", unused_port());
    let text = format!(
        "[device]\nid = \"dma-7\"\n\n[[series]]\nname = \"flow_rate\"\nunit = \"m3/h\"\n\n\
         [[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n"
    );
    write(d, "b.toml", &text);
    let _daemon = KilledOnDrop(start_daemon(d, "b.toml", Stdio::null()));
    wait_listening(&addr);
    let tz = chrono_tz::Asia::Seoul;
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    // Three hours of minute readings buffered by a gateway during an outage; inside them, the
    // sensor itself was silent for 30 minutes (minutes 60-89).
    let first = now - 180 * 60;
    let lines: Vec<String> = (0..180)
        .filter(|m| !(60..90).contains(m))
        .map(|m| {
            let ts = first + m * 60;
            format!(
                "{},flow_rate,{}\n",
                hydrowatch_core::time::format_local(ts, tz),
                100 + m % 7
            )
        })
        .collect();
    // Flushed in batches with pauses, so detection runs between them as it does live.
    let (mut reader, mut writer) = connect(&addr);
    for chunk in lines.chunks(10) {
        writer.write_all(chunk.join("").as_bytes()).unwrap();
        for _ in chunk {
            let mut answer = String::new();
            reader.read_line(&mut answer).unwrap();
            assert_eq!(answer, "ok\n");
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    // Everything judged: the silence inside the backlog opened its stale alarm when the live
    // device would have (15 minutes into it) and the next reading cleared it; no batch opened
    // one of its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    let stale = loop {
        let stale: Vec<_> = store(d)
            .alarms(false)
            .unwrap()
            .into_iter()
            .filter(|a| a.kind == "stale")
            .collect();
        if stale.iter().any(|a| a.cleared_at.is_some()) {
            break stale;
        }
        assert!(Instant::now() < deadline, "{stale:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].opened_at, first + 59 * 60 + 15 * 60);
    assert_eq!(stale[0].cleared_at, Some(first + 90 * 60));
    assert_eq!(
        store(d)
            .alarms(false)
            .unwrap()
            .iter()
            .filter(|a| a.kind == "stale")
            .count(),
        1
    );
}

/// A connection to the tcp source at `addr`: its reader (10 s timeout) and its writer.
pub(crate) fn connect(addr: &str) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (BufReader::new(stream.try_clone().unwrap()), stream)
}

/// A daemon that is killed when the test ends, also when it fails.
pub(crate) struct KilledOnDrop(pub(crate) Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connections left open to a tcp source and to `/health` cannot take the daemon down (issue
/// #30, finding 1): with its file handles limited to 256, 300 idle connections to each leave a
/// new sender answered and `/health` answering, and the log small. Before, every connection was
/// kept, the handles ran out, and accepting failed in a loop that wrote gigabytes of log.
#[test]
fn idle_connections_cannot_take_the_daemon_down() {
    use std::os::unix::process::CommandExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = format!("127.0.0.1:{}", unused_port());
    let health = format!("127.0.0.1:{}", unused_port());
    let text = format!(
        "[device]\nid = \"dma-7\"\n\n[[series]]\nname = \"flow_rate\"\nunit = \"m3/h\"\n\n\
         [daemon]\nhealth_listen = \"{health}\"\n\n[[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n"
    );
    write(d, "h.toml", &text);
    let log_path = d.join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = bin();
    command
        .current_dir(d)
        .args(["--config", "h.toml", "run"])
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = KilledOnDrop(command.spawn().unwrap());
    wait_listening_or_say_why(&addr, &mut child.0, &log_path);
    wait_listening_or_say_why(&health, &mut child.0, &log_path);
    // 300 idle connections to each, held for the rest of the test.
    let mut held = Vec::new();
    for _ in 0..300 {
        for a in [&addr, &health] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            if let Ok(s) = TcpStream::connect_timeout(&a, Duration::from_secs(1)) {
                held.push(s);
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // A sender that comes now is answered.
    let tz = chrono_tz::Asia::Seoul;
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    let line = format!(
        "{},flow_rate,101.5\n",
        hydrowatch_core::time::format_local(now - 300, tz)
    );
    let (mut reader, mut writer) = connect(&addr);
    writer.write_all(line.as_bytes()).unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
    // /health answers (503 "too many connections" while its slots are taken is an answer too;
    // its idle connections are closed after 10 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let get_health = || -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(&health)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((
            status,
            text.split_once("\r\n\r\n")
                .map_or("", |(_, b)| b)
                .to_string(),
        ))
    };
    loop {
        // A busy endpoint may close the connection before the request is written.
        let (status, body) = get_health().unwrap_or((0, String::new()));
        if status == 200 {
            assert!(body.contains("\"readings_ingested\":1"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "no /health: {status} {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(held);
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let size = std::fs::metadata(&log_path).unwrap().len();
    assert!(size < 100_000, "{size} bytes of log");
}

/// One API token is revoked on its own (issue #30, finding 14): `serve token revoke` takes the
/// token on standard input; the revoked token gets 401 at once, the user's other token still
/// works, and an unknown token is said to be unknown.
#[test]
fn one_api_token_is_revoked_on_its_own() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let database = server_database(false);
    let first = operator_token(d, &database, "ana", "operator");
    let second = super::stdout(&ok(run(
        d,
        &[
            "serve",
            "--db",
            "server.db",
            "token",
            "create",
            "--operator",
            "ana",
        ],
    )));
    let second = second.trim().to_string();
    let port = unused_port();
    let _server = KilledOnDrop(start_server(d, port, &database));
    let addr = format!("127.0.0.1:{port}");
    let status = |token: &str| http_get_as(&addr, "/api/v1/devices", Some(token)).0;
    assert_eq!((status(&first), status(&second)), (200, 200));
    let revoke = |token: &str| {
        let mut child = bin()
            .current_dir(d)
            .args(["serve", "--db", "server.db", "token", "revoke"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = revoke(&first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked an API token of ana"));
    assert_eq!((status(&first), status(&second)), (401, 200));
    let out = revoke(&first);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such API token"));
}
