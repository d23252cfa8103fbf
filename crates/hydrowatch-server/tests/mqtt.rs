//! MQTT ingest through a real Mosquitto (started here, with the password file and ACL that
//! `hydrowatch serve` writes): devices publish, the server's replicas share the subscription,
//! each message is checked and stored once; on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{On, alert};
use hydrowatch_mosquitto::{Broker, Setup};
use hydrowatch_mqtt::{Acked, BrokerSettings, Event, Link};
use hydrowatch_server::Db;
use hydrowatch_server::mqtt::{MqttIngest, mosquitto_acl, set_mosquitto_password};

const SERVER_PASSWORD: &str = "server-secret";

/// A broker that knows the server's user and `devices` (each with its token), with the ACL.
fn broker(dir: &std::path::Path, db: &Db, devices: &[&str]) -> (Broker, Vec<String>) {
    let passwd = dir.join("passwd");
    set_mosquitto_password(&passwd, "hydrowatch-server", SERVER_PASSWORD).unwrap();
    let tokens: Vec<String> = devices
        .iter()
        .map(|d| {
            let token = db.create_token(d, 0).unwrap();
            set_mosquitto_password(&passwd, d, &token).unwrap();
            token
        })
        .collect();
    let acl = dir.join("acl");
    std::fs::write(&acl, mosquitto_acl("hydrowatch-server")).unwrap();
    let broker = Broker::start(&Setup {
        password_file: Some(passwd),
        acl_file: Some(acl),
        ..Setup::default()
    })
    .unwrap();
    (broker, tokens)
}

fn ingest(db: Arc<Db>, broker: &Broker, client_id: &str) -> MqttIngest {
    let mut s = BrokerSettings::from_url(&broker.url(), client_id).unwrap();
    s.credentials = Some(("hydrowatch-server".into(), SERVER_PASSWORD.into()));
    hydrowatch_server::mqtt::start(db, s).unwrap()
}

/// A device's connection (its id as user name, its token as password), connected.
fn device(broker: &Broker, id: &str, password: &str) -> Link {
    let mut s = BrokerSettings::from_url(&broker.url(), id).unwrap();
    s.credentials = Some((id.into(), password.into()));
    let link = Link::open(&s, false, false).unwrap();
    match link.next(Duration::from_secs(10)) {
        Some(Event::Connected { .. }) => link,
        other => panic!("{id} did not connect: {other:?}\n{}", broker.log()),
    }
}

/// Publishes and returns the broker's answers, in order.
fn publish_all(link: &Link, messages: &[(String, Vec<u8>)]) -> Vec<Acked> {
    for (topic, payload) in messages {
        link.publish(topic, payload.clone()).unwrap();
    }
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers.len() < messages.len() && Instant::now() < deadline {
        match link.next(Duration::from_millis(200)) {
            Some(Event::Acked { outcome, .. }) => answers.push(outcome),
            Some(Event::Down(why)) => panic!("{why}"),
            _ => {}
        }
    }
    answers
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn on(device: &str, kind: &str, message: &serde_json::Value) -> (String, Vec<u8>) {
    (
        hydrowatch_mqtt::topic(device, kind),
        message.to_string().into_bytes(),
    )
}

fn messages_are_checked_stored_once_and_the_refused_recorded(on_db: On) {
    let s = common::start(on_db);
    let dir = tempfile::tempdir().unwrap();
    let (broker, tokens) = broker(dir.path(), &s.db, &["dma-1", "dma-2"]);
    let server = ingest(s.db.clone(), &broker, "replica-a");
    // Wait for its subscription: a publish before it would find no subscriber.
    std::thread::sleep(Duration::from_millis(500));

    let link = device(&broker, "dma-1", &tokens[0]);
    let a1 = alert("dma-1", "a1", 1, "opened", 4, 1);
    let sent = [
        on("dma-1", "alert", &a1),
        on(
            "dma-1",
            "alert",
            &alert("dma-1", "a2", 1, "escalated", 4, 2),
        ),
        on("dma-1", "alert", &alert("dma-1", "a3", 1, "cleared", 0, 3)),
        // The same message again: acknowledged, stored once.
        on("dma-1", "alert", &a1),
        // Refused for good: not JSON; another device's envelope; the wrong topic for its kind;
        // an id stored before with other content.
        (
            "hydrowatch/v1/dma-1/alert".to_string(),
            b"{not json".to_vec(),
        ),
        on("dma-1", "alert", &alert("dma-2", "b1", 1, "opened", 4, 1)),
        on(
            "dma-1",
            "forecast",
            &alert("dma-1", "a4", 2, "opened", 4, 4),
        ),
        on("dma-1", "alert", &alert("dma-1", "a1", 9, "opened", 4, 9)),
    ];
    let answers = publish_all(&link, &sent);
    assert_eq!(answers, vec![Acked::Stored; sent.len()], "{}", broker.log());
    let c = server.counters.clone();
    wait_until("every message handled", || {
        c.stored.load(Ordering::Relaxed)
            + c.repeated.load(Ordering::Relaxed)
            + c.refused.load(Ordering::Relaxed)
            == 8
    });
    assert_eq!(c.stored.load(Ordering::Relaxed), 3);
    assert_eq!(c.repeated.load(Ordering::Relaxed), 1);
    assert_eq!(c.refused.load(Ordering::Relaxed), 4);
    assert_eq!(s.db.refused_messages().unwrap(), 4);
    let alarms = common::get(&s, "/api/v1/alarms?device=dma-1");
    assert_eq!(alarms.as_array().unwrap().len(), 3, "{alarms}");

    // The broker's ACL: a device may not publish under another's id (MQTT 5 says so).
    let answers = publish_all(
        &link,
        &[on(
            "dma-2",
            "alert",
            &alert("dma-2", "b2", 1, "opened", 4, 1),
        )],
    );
    assert!(
        matches!(answers.as_slice(), [Acked::Refused(_)]),
        "{answers:?}"
    );
    // A wrong password is refused at the connection.
    let mut bad = BrokerSettings::from_url(&broker.url(), "dma-2").unwrap();
    bad.credentials = Some(("dma-2".into(), "not-its-token".into()));
    let link = Link::open(&bad, false, false).unwrap();
    match link.next(Duration::from_secs(10)) {
        Some(Event::Down(why)) => assert!(why.contains("refused the connection"), "{why}"),
        other => panic!("{other:?}"),
    }
    server.stop();
}

fn two_replicas_split_one_devices_messages_and_store_each_once(on_db: On) {
    let s = common::start(on_db);
    let dir = tempfile::tempdir().unwrap();
    let (broker, tokens) = broker(dir.path(), &s.db, &["dma-1"]);
    let a = ingest(s.db.clone(), &broker, "replica-a");
    let b = ingest(s.db.clone(), &broker, "replica-b");
    std::thread::sleep(Duration::from_millis(500));
    let link = device(&broker, "dma-1", &tokens[0]);
    let sent: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            on(
                "dma-1",
                "alert",
                &alert("dma-1", &format!("m{i}"), i, "opened", 4, (i % 60) as i64),
            )
        })
        .collect();
    let answers = publish_all(&link, &sent);
    assert_eq!(answers, vec![Acked::Stored; 200]);
    let stored =
        || a.counters.stored.load(Ordering::Relaxed) + b.counters.stored.load(Ordering::Relaxed);
    wait_until("200 stored", || stored() == 200);
    let (by_a, by_b) = (
        a.counters.stored.load(Ordering::Relaxed),
        b.counters.stored.load(Ordering::Relaxed),
    );
    assert!(by_a > 0 && by_b > 0, "split {by_a}/{by_b}");
    let alarms = common::get(&s, "/api/v1/alarms?device=dma-1");
    assert_eq!(alarms.as_array().unwrap().len(), 200);

    // Replica b stops; what the broker routes to it meanwhile waits in its session and is
    // stored when it comes back (as it would after a restart).
    b.stop();
    let more: Vec<(String, Vec<u8>)> = (200..260)
        .map(|i| {
            on(
                "dma-1",
                "alert",
                &alert("dma-1", &format!("m{i}"), i, "opened", 4, 0),
            )
        })
        .collect();
    assert_eq!(publish_all(&link, &more), vec![Acked::Stored; 60]);
    wait_until("a's share", || {
        a.counters.stored.load(Ordering::Relaxed) > by_a
    });
    std::thread::sleep(Duration::from_millis(500));
    let alarms = common::get(&s, "/api/v1/alarms?device=dma-1");
    let before_b_returns = alarms.as_array().unwrap().len();
    assert!(before_b_returns < 260, "b's share waits for it");
    let b = ingest(s.db.clone(), &broker, "replica-b");
    wait_until("every message", || {
        common::get(&s, "/api/v1/alarms?device=dma-1")
            .as_array()
            .unwrap()
            .len()
            == 260
    });
    assert!(b.counters.stored.load(Ordering::Relaxed) > 0);
    a.stop();
    b.stop();
}

on_both!(
    messages_are_checked_stored_once_and_the_refused_recorded,
    two_replicas_split_one_devices_messages_and_store_each_once,
);

/// A replica back to 6,000 messages waiting in its session stores them all. Before, the broker
/// sent the whole backlog at once (no receive maximum), the link's channel filled, and the
/// link's thread and the ingest acknowledging waited for each other for good (found by
/// `bench fleet` at 5,000 messages a second).
#[test]
fn a_replica_back_to_a_backlog_larger_than_its_channel_stores_it_all() {
    let s = common::start(On::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let (broker, tokens) = broker(dir.path(), &s.db, &["dma-1"]);
    // The replica's session subscribes, then the replica goes.
    let a = ingest(s.db.clone(), &broker, "replica-a");
    std::thread::sleep(Duration::from_millis(500));
    a.stop();
    let link = device(&broker, "dma-1", &tokens[0]);
    let n = 6_000;
    let heartbeats: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            on(
                "dma-1",
                "heartbeat",
                &serde_json::json!({
                    "device_id": "dma-1", "message_id": format!("h{i}"), "kind": "heartbeat",
                    "created_at": "2024-07-01T00:00:00Z", "body": {"version": "1", "outbox_depth": 0}
                }),
            )
        })
        .collect();
    // As a device does: a batch at a time, each acknowledged before the next.
    for batch in heartbeats.chunks(200) {
        assert_eq!(publish_all(&link, batch), vec![Acked::Stored; batch.len()]);
    }
    let a = ingest(s.db.clone(), &broker, "replica-a");
    let deadline = Instant::now() + Duration::from_secs(120);
    while a.counters.stored.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} stored",
            a.counters.stored.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.db.message_counts("h").unwrap(), (n, n));
    a.stop();
}

/// A message the database refuses again and again does not stall the replica's intake (issue
/// #30, finding 16): after 5 attempts it is set aside, kept whole in `refused_messages`, and the
/// messages after it are stored; retention removes old refused messages too. Before, it was
/// tried every second for ever, with nothing after it read.
#[test]
fn a_message_the_database_refuses_is_set_aside_and_the_rest_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let db = Arc::new(Db::open(&path).unwrap());
    // The database refuses this one message (a stand-in for whatever a database may refuse).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.message_id = 'p1'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        )
        .unwrap();
    let (broker, tokens) = broker(dir.path(), &db, &["dma-1"]);
    let server = ingest(db.clone(), &broker, "replica-a");
    std::thread::sleep(Duration::from_millis(500));
    let link = device(&broker, "dma-1", &tokens[0]);
    let sent = [
        on("dma-1", "alert", &alert("dma-1", "p1", 1, "opened", 4, 1)),
        on("dma-1", "alert", &alert("dma-1", "a2", 2, "opened", 4, 2)),
        on("dma-1", "alert", &alert("dma-1", "a3", 3, "opened", 4, 3)),
    ];
    publish_all(&link, &sent);
    let c = server.counters.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.stored.load(Ordering::Relaxed) < 2 {
        assert!(
            Instant::now() < deadline,
            "the messages after it were never stored"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.refused.load(Ordering::Relaxed), 1);
    assert!(c.retried.load(Ordering::Relaxed) >= 5);
    assert_eq!(db.refused_messages().unwrap(), 1);
    server.stop();
    // Refused messages go with the messages' retention.
    let later = chrono::Utc::now().timestamp() + 10 * 86_400;
    db.retain(later, Some(1)).unwrap();
    assert_eq!(db.refused_messages().unwrap(), 0);
}
