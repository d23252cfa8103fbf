//! A device delivering over MQTT through a real Mosquitto to two `hydrowatch serve --mqtt`
//! replicas on one PostgreSQL, set up with the commands an operator uses (`serve token create
//! --mqtt-passwd`, `serve mqtt-user`, `serve mqtt-acl`): the device's kill -9, the broker down
//! and restarted during delivery, one replica killed with SIGKILL and restarted; every alarm
//! arrives once.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hydrowatch_mosquitto::{Broker, Setup};
use serde_json::Value;

use super::daemon::{
    http_get_as, operator_token, run_without_delivery_wait, unused_port, wait_listening,
};
use super::{bin, ok, run, store, write};

/// `hydrowatch serve` on `database`, listening on `port`, taking MQTT from `broker` as `id`.
fn replica(d: &Path, database: &str, port: u16, broker: &str, id: &str) -> Child {
    let child = bin()
        .current_dir(d)
        .args(["serve", "--database", database])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--mqtt", broker, "--mqtt-client-id", id])
        .args(["--mqtt-password-file", "server.pw"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&format!("127.0.0.1:{port}"));
    child
}

fn device_run(d: &Path, config: &str) -> Child {
    bin()
        .current_dir(d)
        .args(["--config", config, "run", "--until-sources-end"])
        .args(["--drain-seconds", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn alarms(port: u16, token: &str) -> Vec<Value> {
    let (status, body) = http_get_as(
        &format!("127.0.0.1:{port}"),
        "/api/v1/alarms?device=dma-7",
        Some(token),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn over_mqtt_every_alarm_reaches_two_replicas_once_across_kill_9_broker_restart_and_a_replica_killed()
 {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let database = hydrowatch_pgtest::database();
    // The operator's setup: the device's token goes into Mosquitto's password file, the servers
    // get a user of their own, the ACL ties each device to its own topics.
    let token = super::stdout(&ok(run(
        d,
        &[
            "serve",
            "--database",
            &database,
            "token",
            "create",
            "dma-7",
            "--mqtt-passwd",
            "passwd",
        ],
    )));
    let token = token.trim().to_string();
    let server_pw = super::stdout(&ok(run(
        d,
        &["serve", "mqtt-user", "--mqtt-passwd", "passwd"],
    )));
    write(d, "server.pw", &server_pw);
    write(
        d,
        "acl",
        &super::stdout(&ok(run(d, &["serve", "mqtt-acl"]))),
    );
    let reader = operator_token(
        d,
        &["--database".into(), database.clone()],
        "vera",
        "viewer",
    );
    let mut broker = Broker::start(&Setup {
        password_file: Some(d.join("passwd")),
        acl_file: Some(d.join("acl")),
        ..Setup::default()
    })
    .unwrap();
    let url = broker.url();
    let (port_a, port_b) = (unused_port(), unused_port());
    let mut a = replica(d, &database, port_a, &url, "replica-a");
    let mut b = replica(d, &database, port_b, &url, "replica-b");

    // 12 days while the broker is down: everything waits in the outbox.
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "14",
            "--seed",
            "6",
            "--start",
            "2024-04-01",
            "--out",
            "all.csv",
        ],
    ));
    let text = std::fs::read_to_string(d.join("all.csv")).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    write(
        d,
        "a.csv",
        &format!("{header}\n{}\n", rows[..12 * 1440].join("\n")),
    );
    write(
        d,
        "b.csv",
        &format!("{header}\n{}\n", rows[12 * 1440..].join("\n")),
    );
    write(d, "none.csv", &format!("{header}\n"));
    let device = |file: &str, speed: u32| {
        format!(
            "[device]\nid = \"dma-7\"\n[server]\ntransport = \"mqtt\"\nurl = \"{url}\"\ntoken = \"{token}\"\nbatch_messages = 5\n[daemon]\nhealth_listen = \"\"\n[[source]]\nkind = \"csv_replay\"\npath = \"{file}\"\nspeed = {speed}\n"
        )
    };
    write(d, "a.toml", &device("a.csv", 0));
    write(d, "b.toml", &device("b.csv", 40_000));
    write(
        d,
        "c.toml",
        &device("none.csv", 0).replace("batch_messages = 5", "batch_messages = 50"),
    );
    broker.stop();
    run_without_delivery_wait(d, "a.toml");
    let waiting = store(d).outbox_stats().unwrap().rows;
    assert!(waiting > 5, "{waiting}");

    // The broker comes back; the device replays 2 more days and is killed with SIGKILL.
    broker.launch().unwrap();
    let mut daemon = device_run(d, "b.toml");
    std::thread::sleep(Duration::from_millis(1500));
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    // 3,000 heartbeats more in the outbox (as a device that was offline for two days would
    // have), so that what follows happens during delivery.
    let now = chrono::Utc::now().timestamp();
    let heartbeats: Vec<_> = (0..3000)
        .map(|i| {
            hydrowatch_ops::envelope::heartbeat(
                "dma-7",
                hydrowatch_protocol::HeartbeatBody {
                    uptime_seconds: Some(i),
                    ..Default::default()
                },
                now - 3000 + i,
            )
        })
        .collect();
    store(d)
        .enqueue(&heartbeats, hydrowatch_store::OutboxLimits::UNBOUNDED)
        .unwrap();

    // Started again to deliver what is left: meanwhile the broker restarts and replica a is
    // killed with SIGKILL (and restarted after 2 s, as systemd would).
    let mut daemon = device_run(d, "c.toml");
    std::thread::sleep(Duration::from_millis(300));
    let left = store(d).outbox_stats().unwrap().rows;
    assert!(left > 0, "the broker restarts during delivery");
    broker.restart().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut a = replica(d, &database, port_a, &url, "replica-a");
    assert!(daemon.wait().unwrap().success());
    let s = store(d);
    assert_eq!(s.outbox_stats().unwrap().rows, 0, "everything delivered");
    assert_eq!(s.outbox_stats().unwrap().set_aside, 0);

    // Every transition the device knows of arrives, through either replica, once.
    let known = s.alarms(false).unwrap();
    assert!(!known.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let stored = alarms(port_b, &reader);
        let all_opened = known.iter().all(|k| {
            stored
                .iter()
                .any(|a| a["alarm_id"] == k.id && a["state"] == "opened")
        });
        if all_opened || Instant::now() > deadline {
            break stored;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut seen = HashSet::new();
    for a in &stored {
        let key = (
            a["alarm_id"].as_u64().unwrap(),
            a["state"].to_string(),
            a["outlier_stage"].as_u64().unwrap(),
            a["time"].to_string(),
        );
        assert!(seen.insert(key.clone()), "{key:?} stored twice");
    }
    for k in &known {
        assert!(
            stored
                .iter()
                .any(|a| a["alarm_id"] == k.id && a["state"] == "opened"),
            "alarm {} lost",
            k.id
        );
    }
    // Every heartbeat is stored, once. They go after the alarms, and the broker's PUBACK (which
    // emptied the outbox) comes before a replica stores them: wait for the replicas.
    let mut pg = postgres::Client::connect(&database, postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (heartbeats, distinct) = loop {
        let row = pg
            .query_one(
                "SELECT count(*), count(DISTINCT message_id) FROM messages WHERE device_id = 'dma-7' AND kind = 'heartbeat'",
                &[],
            )
            .unwrap();
        let (n, distinct): (i64, i64) = (row.get(0), row.get(1));
        if n >= 3000 || Instant::now() > deadline {
            break (n, distinct);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(heartbeats >= 3000, "{heartbeats} heartbeats stored");
    assert_eq!(heartbeats, distinct, "a heartbeat stored twice");
    // Both replicas answer the same.
    assert_eq!(alarms(port_a, &reader), stored);
    for child in [&mut a, &mut b] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// `hydrowatch bench fleet`'s contract: it starts what it needs and ends with one line
/// `delivered=D lost=L duplicated=U p50_ms=A p99_ms=B`.
#[test]
fn bench_fleet_starts_what_it_needs_and_ends_with_the_contract_line() {
    let dir = tempfile::tempdir().unwrap();
    for transport in ["https", "mqtt"] {
        let out = ok(run(
            dir.path(),
            &[
                "bench",
                "fleet",
                "--devices",
                "20",
                "--transport",
                transport,
                "--seconds",
                "4",
                "--heartbeat-seconds",
                "1",
                "--drain-seconds",
                "60",
            ],
        ));
        let text = super::stdout(&out);
        let last = text.lines().last().unwrap();
        let fields: std::collections::HashMap<&str, u64> = last
            .split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k, v.parse().unwrap())
            })
            .collect();
        let keys: Vec<&str> = last
            .split(' ')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["delivered", "lost", "duplicated", "p50_ms", "p99_ms"],
            "{text}"
        );
        // 20 devices, a heartbeat a second for about 4 s (they come up over the first second).
        assert!(fields["delivered"] >= 40, "{transport}: {text}");
        assert_eq!(
            (fields["lost"], fields["duplicated"]),
            (0, 0),
            "{transport}: {text}"
        );
        assert!(fields["p50_ms"] <= fields["p99_ms"], "{text}");
        assert!(
            text.contains(", 0 still in the outboxes at the end,"),
            "{text}"
        );
    }
}

/// `serve retention` applies --retention-days at once and says what it removed; a span out of
/// range is refused by name.
#[test]
fn serve_retention_says_what_it_kept_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let db = db.to_str().unwrap();
    ok(run(
        dir.path(),
        &["--db", db, "serve", "token", "create", "dma-1"],
    ));
    let out = ok(run(
        dir.path(),
        &["--db", db, "serve", "--retention-days", "30", "retention"],
    ));
    assert_eq!(
        super::stdout(&out).trim(),
        "kept the last 30 days; 0 rows deleted, 0 partitions dropped, 0 made"
    );
    let out = ok(run(
        dir.path(),
        &["--db", db, "serve", "--retention-days", "0", "retention"],
    ));
    assert!(super::stdout(&out).starts_with("kept everything;"));
    let out = run(
        dir.path(),
        &[
            "--db",
            db,
            "serve",
            "--retention-days",
            "40000",
            "retention",
        ],
    );
    let e = super::stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(e.contains("--retention-days") && e.contains("40000"), "{e}");
}
