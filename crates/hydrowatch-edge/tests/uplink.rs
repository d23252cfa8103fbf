//! The uplink against a real HTTP server on 127.0.0.1 (a small one written here: it records each
//! request and answers as each test tells it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hydrowatch_config::ServerConfig;
use hydrowatch_edge::{Uplink, UplinkConfig, UplinkError};
use hydrowatch_store::{OutboxLimits, OutboxMessage, Store};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: String,
    body: serde_json::Value,
}

/// A server that answers every request with `answer(request body) -> (status, body)`.
fn server(
    answer: impl Fn(&serde_json::Value) -> (u16, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (mut length, mut authorization) = (0usize, String::new());
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "authorization" => authorization = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let (status, reply) = answer(&body);
            log.lock().unwrap().push(Seen {
                path,
                authorization,
                body,
            });
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
        }
    });
    (url, seen)
}

/// Acknowledges every message of the request.
fn acknowledge_all(body: &serde_json::Value) -> (u16, String) {
    let ids: Vec<&serde_json::Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["message_id"])
        .collect();
    (200, serde_json::json!({ "acknowledged": ids }).to_string())
}

fn store_with(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("o.db"), chrono_tz::UTC).unwrap();
    let messages: Vec<OutboxMessage> = (0..n)
        .map(|i| {
            let id = format!("m{i:04}");
            OutboxMessage {
                body: serde_json::json!({"message_id": id, "kind": "alert", "body": {"i": i}})
                    .to_string(),
                message_id: id,
                kind: "alert".into(),
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

fn uplink(url: &str) -> Uplink {
    Uplink::new(UplinkConfig {
        batch: 100,
        timeout: Duration::from_secs(5),
        ..UplinkConfig::of(&ServerConfig::new(url, "secret"), "dma-1")
    })
    .unwrap()
}

#[test]
fn the_outbox_goes_oldest_first_in_batches_and_leaves_only_when_acknowledged() {
    let (url, seen) = server(acknowledge_all);
    let (_dir, mut store) = store_with(250);
    assert_eq!(uplink(&url).flush(&mut store).unwrap().delivered, 250);
    assert_eq!(store.outbox_stats().unwrap().rows, 0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "batches of 100");
    let sent: Vec<String> = seen
        .iter()
        .flat_map(|s| s.body["messages"].as_array().unwrap().clone())
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..250).map(|i| format!("m{i:04}")).collect();
    assert_eq!(sent, expected, "each once, oldest first");
    assert!(seen.iter().all(|s| s.path == "/api/v1/ingest"
        && s.authorization == "Bearer secret"
        && s.body["device_id"] == "dma-1"));
}

#[test]
fn what_the_server_did_not_acknowledge_stays_for_the_next_time() {
    // The server acknowledges only the even messages.
    let (url, _) = server(|body| {
        let ids: Vec<&serde_json::Value> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["message_id"])
            .filter(|id| id.as_str().unwrap().ends_with(['0', '2', '4', '6', '8']))
            .collect();
        (200, serde_json::json!({ "acknowledged": ids }).to_string())
    });
    let (_dir, mut store) = store_with(10);
    let e = uplink(&url).flush(&mut store).unwrap_err();
    // First batch: 5 acknowledged; the second (the 5 odd ones): none, so it stops.
    assert!(matches!(e, UplinkError::BadAnswer { .. }), "{e}");
    let left: Vec<String> = store
        .outbox_batch(100)
        .unwrap()
        .into_iter()
        .map(|r| r.message.message_id)
        .collect();
    assert_eq!(left, ["m0001", "m0003", "m0005", "m0007", "m0009"]);
}

#[test]
fn a_server_that_is_down_or_refuses_leaves_the_outbox_as_it_was() {
    // Nothing listens on this port once the listener is dropped.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, mut store) = store_with(3);
    let e = uplink(&format!("http://127.0.0.1:{port}"))
        .flush(&mut store)
        .unwrap_err();
    assert!(
        matches!(e, UplinkError::Unreachable { .. }) && e.is_transient(),
        "{e}"
    );
    assert_eq!(store.outbox_stats().unwrap().rows, 3);

    let (url, _) = server(|_| (401, "{\"error\": \"unknown token\"}".into()));
    let e = uplink(&url).flush(&mut store).unwrap_err();
    assert!(
        matches!(e, UplinkError::Refused { status: 401, .. }) && !e.is_transient(),
        "{e}"
    );
    assert!(e.to_string().contains("unknown token"), "{e}");
    let (url, _) = server(|_| (503, "busy".into()));
    assert!(uplink(&url).flush(&mut store).unwrap_err().is_transient());
    assert_eq!(store.outbox_stats().unwrap().rows, 3);
}

/// A message whose id the server holds with other content (409), or that it finds invalid
/// (422), is set aside, counted, and the messages after it are delivered; it is never sent
/// again.
#[test]
fn messages_the_server_refuses_for_good_are_set_aside_and_the_rest_delivered() {
    let (url, seen) = server(|body| {
        let ids: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap())
            .collect();
        if ids.contains(&"m0002") {
            (
                409,
                serde_json::json!({"error": "reused", "conflicting": ["m0002"]}).to_string(),
            )
        } else if ids.contains(&"m0004") {
            (
                422,
                serde_json::json!({"error": "bad time", "invalid": ["m0004"]}).to_string(),
            )
        } else {
            acknowledge_all(body)
        }
    });
    let (_dir, mut store) = store_with(5);
    assert_eq!(uplink(&url).flush(&mut store).unwrap().delivered, 3);
    let stats = store.outbox_stats().unwrap();
    assert_eq!((stats.rows, stats.set_aside), (0, 2));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "the batch refused twice, then the rest");
    assert_eq!(seen[2].body["messages"].as_array().unwrap().len(), 3);
}
