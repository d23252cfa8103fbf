//! Shared by the server's tests: a real server on 127.0.0.1 over a real SQLite file or a real
//! PostgreSQL database, and messages as devices send them. [`on_both!`] runs a test on each.

#![allow(dead_code)]

use std::sync::Arc;

use hydrowatch_server::Db;
use serde_json::{Value, json};

pub(crate) struct Server {
    pub url: String,
    _dir: tempfile::TempDir,
    pub db: Arc<Db>,
    _runtime: tokio::runtime::Runtime,
}

/// The database a test server runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum On {
    Sqlite,
    Postgres,
}

/// Each named test function (taking an [`On`]) becomes two tests, `NAME::sqlite` and
/// `NAME::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::common::On::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::common::On::Postgres)
            }
        }
    )*};
}

pub(crate) fn start(on: On) -> Server {
    start_with(on, hydrowatch_server::RateLimit::default())
}

pub(crate) fn start_with(on: On, limit: hydrowatch_server::RateLimit) -> Server {
    start_limited(on, limit, hydrowatch_server::Limits::default())
}

/// A server with connection `limits` of its own.
pub(crate) fn start_limited(
    on: On,
    limit: hydrowatch_server::RateLimit,
    limits: hydrowatch_server::Limits,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(match on {
        On::Sqlite => Db::open(&dir.path().join("s.db")).unwrap(),
        On::Postgres => Db::connect(&hydrowatch_pgtest::database()).unwrap(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let runtime =
        hydrowatch_server::serve_in_background(db.clone(), limit, listener, limits).unwrap();
    Server {
        url,
        _dir: dir,
        db,
        _runtime: runtime,
    }
}

pub(crate) fn alert(
    device: &str,
    id: &str,
    alarm: u64,
    state: &str,
    stage: u64,
    minute: i64,
) -> Value {
    json!({
        "device_id": device, "message_id": id, "kind": "alert",
        "created_at": format!("2024-07-01T00:{minute:02}:00Z"),
        "body": {"machine_number": 1, "time": "2024-07-01 09:00", "outlier_stage": stage, "value": 1.0,
                 "series": "flow_rate", "unit": "m3/h", "direction": "high", "expected": 0.5,
                 "percentile": 99.99, "kind": "outlier", "alarm_id": alarm, "state": state}
    })
}

pub(crate) fn forecast(device: &str, id: &str, points: usize) -> Value {
    let p: Vec<Value> = (0..points)
        .map(|h| json!({"time": format!("2024-07-0{}T{:02}:00:00Z", 2 + h / 24, h % 24), "value": 1.0, "lower": 0.5, "upper": 1.5}))
        .collect();
    json!({"device_id": device, "message_id": id, "kind": "forecast", "created_at": "2024-07-01T15:00:00Z",
           "body": {"series": "flow_rate", "unit": "m3/h", "issued_at": "2024-07-01T15:00:00Z", "model": "lstm/mimo", "points": p}})
}

pub(crate) fn post(s: &Server, token: Option<&str>, body: String) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .post(format!("{}/api/v1/ingest", s.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

pub(crate) fn get(s: &Server, path: &str) -> Value {
    reqwest::blocking::get(format!("{}{path}", s.url))
        .unwrap()
        .json()
        .unwrap()
}

pub(crate) fn batch(device: &str, messages: Vec<Value>) -> String {
    json!({"device_id": device, "messages": messages}).to_string()
}
