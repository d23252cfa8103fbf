//! Notifications across a kill: `hydrowatch serve` is killed with SIGKILL while a webhook
//! receiver holds its first notification, and started again on the same database; the webhook
//! receiver and an SMTP sink (STARTTLS) end with one delivery per rule and alarm, the webhook's
//! signed (the one cut off comes again under its delivery id, as may an e-mail in flight then).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use hydrowatch_sinks::{SmtpSink, Webhook};
use serde_json::{Value, json};

use super::daemon::{operator_token, start_server_with, unused_port};
use super::{ok, run, write};

fn start(d: &Path, port: u16, smtp: &SmtpSink) -> Child {
    let relay = format!("smtp://localhost:{}", smtp.port);
    let database = ["--db".to_string(), "server.db".to_string()];
    let mail = [
        "--smtp",
        &relay,
        "--smtp-from",
        "hydrowatch@utility.example",
    ];
    start_server_with(
        d,
        port,
        &database,
        // The webhook receiver listens on 127.0.0.1.
        &[&mail[..], &["--smtp-ca", "sink.pem", "--private-webhooks"]].concat(),
    )
}

fn until(what: &str, done: impl FnMut() -> bool) {
    hydrowatch_sinks::wait_until(what, Duration::from_secs(60), done);
}

#[test]
fn notifications_arrive_once_per_rule_and_alarm_across_a_kill_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let database = ["--db".to_string(), "server.db".to_string()];
    let device = super::stdout(&ok(run(
        d,
        &["--db", "server.db", "serve", "token", "create", "dma-1"],
    )));
    let device = device.trim().to_string();
    let admin = operator_token(d, &database, "root", "admin");
    let hook = Webhook::start(0, Duration::from_secs(3));
    let sink = SmtpSink::start();
    write(d, "sink.pem", &sink.cert_pem);
    let port = unused_port();
    let mut server = start(d, port, &sink);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let secret = "hook-secret-0123456789";
    for rule in [
        json!({"name": "hook", "min_stage": 1, "channel": "webhook", "target": hook.url, "secret": secret}),
        json!({"name": "mail", "min_stage": 1, "channel": "email", "target": "oncall@utility.example"}),
    ] {
        let r = client
            .post(format!("{url}/api/v1/rules"))
            .bearer_auth(&admin)
            .json(&rule)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let alarms: Vec<Value> = (1..=3)
        .map(|k| json!({
            "device_id": "dma-1", "message_id": format!("m{k}"), "kind": "alert",
            "created_at": format!("2024-07-01T00:0{k}:00Z"),
            "body": {"machine_number": 1, "time": "2024-07-01 09:00", "outlier_stage": 3, "value": 1.0,
                     "series": "flow_rate", "unit": "m3/h", "direction": "high", "expected": 0.5,
                     "percentile": 99.99, "kind": "outlier", "alarm_id": k, "state": "opened"}
        }))
        .collect();
    let r = client
        .post(format!("{url}/api/v1/ingest"))
        .bearer_auth(&device)
        .json(&json!({"device_id": "dma-1", "messages": alarms}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Killed while the receiver holds the first notification.
    until("the first webhook request", || !hook.received().is_empty());
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = start(d, port, &sink);
    let delivered = || {
        hook.received()
            .iter()
            .map(|r| r.headers["x-hydrowatch-delivery"].clone())
            .collect::<HashSet<_>>()
    };
    until("three webhook deliveries", || delivered().len() >= 3);
    until("three e-mails", || sink.received().len() >= 3);
    // The notification the killed server had taken is sent again once its lease (30 s) ends.
    until("the cut-off notification again", || {
        hook.received().len() >= 4
    });
    std::thread::sleep(Duration::from_secs(4));
    server.kill().unwrap();
    server.wait().unwrap();

    // The webhook: every request signed; one delivery id per alarm, however often it came.
    let mut alarm_of: HashMap<String, u64> = HashMap::new();
    for r in hook.received() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let alarm = body["alarms"][0]["alarm_id"].as_u64().unwrap();
        let id = r.headers["x-hydrowatch-delivery"].clone();
        assert_eq!(*alarm_of.entry(id.clone()).or_insert(alarm), alarm, "{id}");
        assert!(r.signed_with(secret), "{id}");
    }
    let mut alarms: Vec<u64> = alarm_of.values().copied().collect();
    alarms.sort();
    assert_eq!(alarms, [1, 2, 3], "one delivery per alarm: {alarm_of:?}");
    assert_eq!(
        hook.received().len(),
        4,
        "the notification cut off by the kill came again, the others once"
    );
    // The e-mails: one delivery per alarm. E-mail goes out beside the webhook, so one may have
    // been in flight at the kill too: sent again then, under its delivery id.
    let mails = sink.received();
    assert!(mails.iter().all(|m| m.tls));
    let mut mailed: HashMap<String, u64> = HashMap::new();
    for m in &mails {
        let at = m.data.find("alarm ").expect("an alarm line") + 6;
        let alarm: u64 = m.data[at..].split(' ').next().unwrap().parse().unwrap();
        let at = m.data.find("Delivery ").expect("a delivery line") + 9;
        let id = m.data[at..].split('.').next().unwrap().to_string();
        assert_eq!(*mailed.entry(id).or_insert(alarm), alarm, "{mails:?}");
    }
    let mut alarms: Vec<u64> = mailed.values().copied().collect();
    alarms.sort();
    assert_eq!(alarms, [1, 2, 3], "{mails:?}");
    assert!(
        mails.len() <= 4,
        "at most the one in flight again: {mails:?}"
    );
}
