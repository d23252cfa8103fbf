//! The MQTT uplink against a real Mosquitto (started here on a free port): the outbox semantics
//! of the HTTPS uplink's tests (oldest first, only what the broker acknowledged leaves, in order;
//! a link cut in the middle of a batch; the broker down and back) and what only MQTT has (no
//! subscriber, a publish the broker's ACL refuses, MQTT 3.1.1, a client certificate as the
//! device's identity).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hydrowatch_config::{ServerConfig, Transport};
use hydrowatch_edge::{Uplink, UplinkConfig, UplinkError};
use hydrowatch_mosquitto::{Broker, Setup};
use hydrowatch_mqtt::{BrokerSettings, Event, Link};
use hydrowatch_store::{OutboxLimits, OutboxMessage, Store};

fn store_with(n: usize, kinds: &[&str]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("device.db"), chrono_tz::UTC).unwrap();
    let messages: Vec<OutboxMessage> = (0..n)
        .map(|i| {
            let id = format!("m-{i:04}");
            OutboxMessage {
                body: format!(r#"{{"message_id":"{id}","n":{i}}}"#),
                message_id: id,
                kind: kinds[i % kinds.len()].into(),
                created_at: i as i64,
            }
        })
        .collect();
    let limits = OutboxLimits {
        max_rows: 10_000,
        max_bytes: 1 << 30,
    };
    store.enqueue(&messages, limits).unwrap();
    (dir, store)
}

fn uplink(url: &str, version: &str, token: &str, batch: usize) -> Uplink {
    let mut server = ServerConfig::new(url, token);
    server.transport = Transport::Mqtt;
    server.mqtt_version = version.into();
    Uplink::new(UplinkConfig {
        batch,
        timeout: Duration::from_secs(5),
        ..UplinkConfig::of(&server, "dma-1")
    })
    .unwrap()
}

/// A subscriber of every device's topics (a persistent session, reconnecting): the payloads it
/// received, in order, by topic.
fn subscriber(url: &str, credentials: Option<(&str, &str)>) -> Arc<Mutex<Vec<(String, String)>>> {
    let mut s = BrokerSettings::from_url(url, "test-subscriber").unwrap();
    s.credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
    subscriber_with(&s)
}

/// [`subscriber`] with `settings` of its own.
fn subscriber_with(settings: &BrokerSettings) -> Arc<Mutex<Vec<(String, String)>>> {
    let link = Link::open(settings, true, false).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        loop {
            match link.next(Duration::from_secs(1)) {
                Some(Event::Connected { .. }) => {
                    link.subscribe("hydrowatch/v1/#").unwrap();
                    // Subscribed once the broker answers; a short wait is enough on loopback.
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = ready_tx.send(());
                }
                Some(Event::Received(r)) => log.lock().unwrap().push((
                    r.topic.clone(),
                    String::from_utf8(r.payload.clone()).unwrap(),
                )),
                _ => {}
            }
        }
    });
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    seen
}

/// The message ids of what a subscriber received, in the order received.
fn ids_in_order(seen: &Mutex<Vec<(String, String)>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(_, p)| {
            serde_json::from_str::<serde_json::Value>(p).unwrap()["message_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The message ids a subscriber received (each once), waiting until `n` arrived.
fn received_ids(seen: &Mutex<Vec<(String, String)>>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut ids = ids_in_order(seen);
        ids.sort();
        ids.dedup();
        if ids.len() >= n || Instant::now() > deadline {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn waiting_ids(store: &Store) -> Vec<String> {
    store
        .outbox_batch(100_000)
        .unwrap()
        .into_iter()
        .map(|r| r.message.message_id)
        .collect()
}

#[test]
fn the_outbox_goes_alerts_first_on_one_topic_per_device_and_kind_and_leaves_when_acknowledged() {
    let broker = Broker::start(&Setup::default()).unwrap();
    let seen = subscriber(&broker.url(), None);
    let (_dir, mut store) = store_with(250, &["alert", "forecast", "heartbeat"]);
    let mut up = uplink(&broker.url(), "5", "secret", 100);
    assert_eq!(up.flush(&mut store).unwrap().delivered, 250);
    assert_eq!(store.outbox_stats().unwrap().rows, 0);
    assert_eq!(received_ids(&seen, 250).len(), 250);
    let seen = seen.lock().unwrap();
    // In order, each on its device's and kind's topic, the envelope as stored.
    let order: Vec<i64> = seen
        .iter()
        .map(|(_, p)| {
            serde_json::from_str::<serde_json::Value>(p).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    // Alerts first (every third message), then the rest, each oldest first.
    let alerts = (0..250).filter(|i| i % 3 == 0);
    let expected: Vec<i64> = alerts.chain((0..250).filter(|i| i % 3 != 0)).collect();
    assert_eq!(order, expected);
    assert_eq!(seen[0].0, "hydrowatch/v1/dma-1/alert");
    assert_eq!(seen[84].0, "hydrowatch/v1/dma-1/forecast");
    assert_eq!(seen[85].0, "hydrowatch/v1/dma-1/heartbeat");
    assert_eq!(seen[0].1, r#"{"message_id":"m-0000","n":0}"#);
}

/// A TCP proxy in front of the broker whose first connection is cut once `pubacks` PUBACK
/// packets have gone from the broker to the client; later connections pass untouched.
fn cutting_proxy(broker_port: u16, pubacks: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("mqtt://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let client = client.unwrap();
            let broker = TcpStream::connect(("127.0.0.1", broker_port)).unwrap();
            let (mut c_in, mut b_out) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut b_out);
            });
            let limit = if n == 0 { pubacks } else { usize::MAX };
            std::thread::spawn(move || forward_packets(broker, client, limit));
        }
    });
    url
}

/// Copies MQTT packets from `from` to `to` until `limit` PUBACKs went through, then cuts both.
fn forward_packets(mut from: TcpStream, mut to: TcpStream, limit: usize) {
    let mut pubacks = 0;
    loop {
        // The fixed header: the type byte, then the remaining length (1 to 4 bytes, 7 bits each).
        let mut packet = vec![0u8; 1];
        if from.read_exact(&mut packet).is_err() {
            break;
        }
        let (mut length, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8];
            if from.read_exact(&mut b).is_err() {
                return;
            }
            packet.push(b[0]);
            length |= ((b[0] & 0x7f) as usize) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let start = packet.len();
        packet.resize(start + length, 0);
        if from.read_exact(&mut packet[start..]).is_err() || to.write_all(&packet).is_err() {
            break;
        }
        if packet[0] >> 4 == 4 {
            pubacks += 1;
            if pubacks >= limit {
                break;
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[test]
fn a_link_cut_in_the_middle_of_a_batch_keeps_what_the_broker_did_not_acknowledge_in_order() {
    let broker = Broker::start(&Setup::default()).unwrap();
    let seen = subscriber(&broker.url(), None);
    let url = cutting_proxy(broker.port(), 30);
    let (_dir, mut store) = store_with(100, &["alert"]);
    let mut up = uplink(&url, "5", "secret", 100);
    let e = up.flush(&mut store).unwrap_err();
    assert!(e.is_transient(), "{e}");
    // Exactly the first 30 left; the rest waits, in order.
    let waiting = waiting_ids(&store);
    assert_eq!(waiting.len(), 70, "{e}");
    assert_eq!(waiting[0], "m-0030");
    assert_eq!(waiting[69], "m-0099");
    // The next flush (a new connection) delivers the rest; the broker has every message.
    assert_eq!(up.flush(&mut store).unwrap().delivered, 70);
    assert_eq!(store.outbox_stats().unwrap().rows, 0);
    assert_eq!(received_ids(&seen, 100).len(), 100);
}

#[test]
fn a_broker_that_is_down_leaves_the_outbox_as_it_was_and_gets_everything_once_back() {
    let mut broker = Broker::start(&Setup::default()).unwrap();
    let seen = subscriber(&broker.url(), None);
    let (_dir, mut store) = store_with(20, &["alert", "heartbeat"]);
    let mut up = uplink(&broker.url(), "5", "secret", 100);
    assert_eq!(up.flush(&mut store).unwrap().delivered, 20);
    broker.stop();
    let (_dir2, mut store2) = store_with(40, &["forecast"]);
    let before = waiting_ids(&store2);
    let e = up.flush(&mut store2).unwrap_err();
    assert!(matches!(e, UplinkError::Unreachable { .. }), "{e}");
    assert_eq!(waiting_ids(&store2), before);
    // Back (its persistence kept the subscriber's session): the waiting messages go.
    broker.launch().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let delivered = loop {
        match up.flush(&mut store2) {
            Ok(sent) => break sent.delivered,
            Err(e) if Instant::now() < deadline => {
                assert!(e.is_transient(), "{e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(delivered, 40);
    // The first 20 ids (m-0000..m-0019) came from both stores: 40 distinct ids, each forecast once.
    let ids = received_ids(&seen, 40);
    assert_eq!(ids.len(), 40);
    let forecasts = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.ends_with("/forecast"))
        .count();
    assert_eq!(forecasts, 40);
}

#[test]
fn without_any_subscriber_mqtt5_keeps_the_messages_and_says_why() {
    let broker = Broker::start(&Setup::default()).unwrap();
    let (_dir, mut store) = store_with(10, &["alert"]);
    let mut up = uplink(&broker.url(), "5", "secret", 100);
    let e = up.flush(&mut store).unwrap_err();
    assert!(matches!(e, UplinkError::NoSubscriber { .. }), "{e}");
    assert!(e.is_transient());
    assert!(e.to_string().contains("hydrowatch serve --mqtt"), "{e}");
    assert_eq!(store.outbox_stats().unwrap().rows, 10);
}

/// Mosquitto's own tool writes the password file here (the server's writer is tested against
/// the broker in the command-line tests).
fn password_file(dir: &std::path::Path, users: &[(&str, &str)]) -> std::path::PathBuf {
    let file = dir.join("passwd");
    for (i, (user, password)) in users.iter().enumerate() {
        let mut cmd = std::process::Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let status = cmd
            .arg("-b")
            .arg(&file)
            .arg(user)
            .arg(password)
            .status()
            .unwrap();
        assert!(status.success());
    }
    file
}

/// Flushes until the outbox is through: Mosquitto closes the connection after each publish its
/// ACL refuses, so each flush sets one aside and fails (transiently), the next goes on.
fn flush_past_refusals(up: &mut Uplink, store: &mut Store, broker: &Broker) {
    let mut failures = 0;
    while let Err(e) = up.flush(store) {
        assert!(e.is_transient(), "{e}");
        failures += 1;
        assert!(failures < 10, "{e}\n{}", broker.log());
    }
}

#[test]
fn what_the_brokers_acl_refuses_is_set_aside_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = password_file(dir.path(), &[("dma-1", "right"), ("reader", "r")]);
    let acl = dir.path().join("acl");
    // The device may publish its alerts, not its heartbeats.
    std::fs::write(
        &acl,
        "user reader\ntopic read hydrowatch/v1/#\n\npattern write hydrowatch/v1/%u/alert\n",
    )
    .unwrap();
    let broker = Broker::start(&Setup {
        password_file: Some(passwd),
        acl_file: Some(acl),
        ..Setup::default()
    })
    .unwrap();
    let seen = subscriber(&broker.url(), Some(("reader", "r")));

    // A wrong password: refused at the connection, nothing leaves.
    let (_d1, mut store) = store_with(6, &["alert", "heartbeat"]);
    let e = uplink(&broker.url(), "5", "wrong", 100)
        .flush(&mut store)
        .unwrap_err();
    assert!(e.to_string().contains("refused the connection"), "{e}");
    assert_eq!(store.outbox_stats().unwrap().rows, 6);

    // Mosquitto answers a refused publish with PUBACK "not authorised" and then closes the
    // connection: each flush sets one aside and delivers what came before it; the next goes on.
    let mut up = uplink(&broker.url(), "5", "right", 100);
    flush_past_refusals(&mut up, &mut store, &broker);
    let stats = store.outbox_stats().unwrap();
    assert_eq!((stats.rows, stats.set_aside), (0, 3));
    let ids = received_ids(&seen, 3);
    assert_eq!(ids, ["m-0000", "m-0002", "m-0004"]);
}

#[test]
fn mqtt_3_1_1_delivers_the_same_way() {
    let broker = Broker::start(&Setup::default()).unwrap();
    let seen = subscriber(&broker.url(), None);
    let (_dir, mut store) = store_with(120, &["alert", "forecast"]);
    let mut up = uplink(&broker.url(), "3.1.1", "secret", 50);
    assert_eq!(up.flush(&mut store).unwrap().delivered, 120);
    assert_eq!(received_ids(&seen, 120).len(), 120);
    let by_topic: HashMap<String, usize> =
        seen.lock()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut m, (t, _)| {
                *m.entry(t.clone()).or_default() += 1;
                m
            });
    assert_eq!(by_topic["hydrowatch/v1/dma-1/alert"], 60);
}

#[test]
fn alerts_go_before_older_messages_expired_ones_never_go_and_the_cap_paces_the_rest() {
    let broker = Broker::start(&Setup::default()).unwrap();
    let seen = subscriber(&broker.url(), None);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("device.db"), chrono_tz::UTC).unwrap();
    // Two days offline: forecasts and heartbeats, and an alarm at the end.
    let message = |id: &str, kind: &str, bytes: usize| OutboxMessage {
        body: format!(r#"{{"message_id":"{id}","pad":"{}"}}"#, "x".repeat(bytes)),
        message_id: id.into(),
        kind: kind.into(),
        created_at: 0,
    };
    let limits = OutboxLimits::UNBOUNDED;
    store
        .enqueue(
            &[
                message("h1", "heartbeat", 10),
                message("h2", "heartbeat", 10),
            ],
            limits,
        )
        .unwrap();
    // The heartbeats outlive their time to live of 1 s.
    std::thread::sleep(Duration::from_millis(2100));
    let forecasts: Vec<OutboxMessage> = (0..100)
        .map(|i| message(&format!("f{i:03}"), "forecast", 1000))
        .collect();
    store.enqueue(&forecasts, limits).unwrap();
    store
        .enqueue(
            &[message("a1", "alert", 10), message("a2", "alert", 10)],
            limits,
        )
        .unwrap();

    let mut server = ServerConfig::new(broker.url(), "secret");
    server.transport = Transport::Mqtt;
    let mut up = Uplink::new(UplinkConfig {
        batch: 20,
        timeout: Duration::from_secs(5),
        ttl: vec![("heartbeat".into(), 1)],
        // 8 kbit/s: 60 kB at once, then 1 kB a second.
        bandwidth_kbps: 8,
        ..UplinkConfig::of(&server, "dma-1")
    })
    .unwrap();
    let sent = up.flush(&mut store).unwrap();
    let wait = sent.capped.expect("held back by the cap");
    assert!(wait <= Duration::from_secs(2), "{wait:?}");
    // The alerts and then as many forecasts as a minute's worth of bytes allows.
    assert!((55..=60).contains(&sent.delivered), "{sent:?}");
    let stats = store.outbox_stats().unwrap();
    assert_eq!(stats.expired, [("heartbeat".to_string(), 2)]);
    assert_eq!(stats.rows as usize, 102 - sent.delivered);
    let ids = received_ids(&seen, sent.delivered);
    assert_eq!(ids.len(), sent.delivered);
    let order = ids_in_order(&seen);
    assert_eq!(&order[..3], ["a1", "a2", "f000"], "alerts first");
    assert!(
        !order.iter().any(|id| id.starts_with('h')),
        "expired: never sent"
    );
    // Paced: after the wait, about a second's worth more.
    std::thread::sleep(wait);
    let more = up.flush(&mut store).unwrap();
    assert!((1..=3).contains(&more.delivered), "{more:?}");
}

/// A CA (`ca.pem`), the broker's certificate for localhost signed by it (`broker.pem`,
/// `broker.key`), and one signed for each of `clients` with the name as its common name
/// (`NAME.pem`, `NAME.key`), which Mosquitto's `use_identity_as_username` makes the user name.
fn certificates(dir: &std::path::Path, clients: &[&str]) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "hydrowatch test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let names = std::iter::once(("broker", vec!["localhost".to_string()]))
        .chain(clients.iter().map(|c| (*c, Vec::new())));
    for (name, alt_names) in names {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(alt_names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

#[test]
fn a_client_certificate_is_the_devices_identity_at_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d, &["dma-1", "dma-2", "reader"]);
    let acl = d.join("acl");
    std::fs::write(
        &acl,
        "user reader\ntopic read hydrowatch/v1/#\n\npattern write hydrowatch/v1/%u/+\n",
    )
    .unwrap();
    let broker = Broker::start(&Setup {
        tls: Some((d.join("broker.pem"), d.join("broker.key"))),
        require_certificate: Some(d.join("ca.pem")),
        acl_file: Some(acl),
        ..Setup::default()
    })
    .unwrap();
    let mut reader = BrokerSettings::from_url(&broker.url(), "test-subscriber").unwrap();
    reader.ca_file = Some(d.join("ca.pem"));
    reader.client_cert = Some((d.join("reader.pem"), d.join("reader.key")));
    let seen = subscriber_with(&reader);
    // The device dma-1 with `certificate`'s certificate and key (None: none).
    let device = |certificate: Option<&str>| {
        let mut server = ServerConfig::new(broker.url(), "unused-token");
        server.transport = Transport::Mqtt;
        server.ca_file = Some(d.join("ca.pem"));
        server.client_cert = certificate.map(|c| d.join(format!("{c}.pem")));
        server.client_key = certificate.map(|c| d.join(format!("{c}.key")));
        Uplink::new(UplinkConfig {
            timeout: Duration::from_secs(5),
            ..UplinkConfig::of(&server, "dma-1")
        })
        .unwrap()
    };

    // Without a certificate the broker refuses the connection: nothing leaves.
    let (_d1, mut store) = store_with(4, &["alert", "heartbeat"]);
    assert!(device(None).flush(&mut store).is_err());
    assert_eq!(store.outbox_stats().unwrap().rows, 4);

    // With another device's certificate it is dma-2 at the broker, whose ACL does not let it
    // write under dma-1: each message is refused and set aside, none reaches the reader.
    let mut up = device(Some("dma-2"));
    flush_past_refusals(&mut up, &mut store, &broker);
    let stats = store.outbox_stats().unwrap();
    assert_eq!((stats.rows, stats.set_aside), (0, 4));

    // With its own, all of it is delivered on its topics.
    let (_d2, mut store) = store_with(4, &["alert", "heartbeat"]);
    let sent = device(Some("dma-1")).flush(&mut store).unwrap();
    assert_eq!(sent.delivered, 4);
    assert_eq!(
        received_ids(&seen, 4),
        ["m-0000", "m-0001", "m-0002", "m-0003"]
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|(topic, _)| topic.starts_with("hydrowatch/v1/dma-1/")),
        "{:?}",
        seen.lock().unwrap()
    );
}
