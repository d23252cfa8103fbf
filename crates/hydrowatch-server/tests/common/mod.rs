//! Shared by the server's tests: a real server on 127.0.0.1 over a real SQLite file or a real
//! PostgreSQL database, and messages as devices send them. [`on_both!`] runs a test on each.

#![allow(dead_code)]

use std::sync::Arc;

use hydrowatch_server::Db;
use serde_json::{Value, json};

pub(crate) struct Server {
    pub url: String,
    /// An API token of user `reader` (a viewer), for the tests' reads.
    pub reader: String,
    _dir: tempfile::TempDir,
    pub db: Arc<Db>,
    _runtime: hydrowatch_server::Background,
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
    start_full(on, limit, limits, Default::default())
}

/// A server whose notifier runs with `notify`.
pub(crate) fn start_notifying(on: On, notify: hydrowatch_server::notify::NotifySettings) -> Server {
    start_full(
        on,
        hydrowatch_server::RateLimit::default(),
        hydrowatch_server::Limits::default(),
        notify,
    )
}

fn start_full(
    on: On,
    limit: hydrowatch_server::RateLimit,
    limits: hydrowatch_server::Limits,
    notify: hydrowatch_server::notify::NotifySettings,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(match on {
        On::Sqlite => Db::open(&dir.path().join("s.db")).unwrap(),
        On::Postgres => Db::connect(&hydrowatch_pgtest::database()).unwrap(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // The tests' webhook receivers listen on 127.0.0.1.
    let settings = hydrowatch_server::Settings {
        rate_limit: limit,
        private_webhooks: true,
        ..hydrowatch_server::Settings::default()
    };
    let config = hydrowatch_server::ServerConfig {
        settings,
        limits,
        notify,
        ..Default::default()
    };
    let runtime = hydrowatch_server::Server::new(db.clone(), config)
        .spawn(listener)
        .unwrap();
    db.add_user(
        "reader",
        hydrowatch_server::Role::Viewer,
        "reader-password",
        0,
    )
    .unwrap();
    let reader = db.create_operator_token("reader", 0).unwrap();
    Server {
        url,
        reader,
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

/// GET `path` as user `reader`; the JSON answer.
pub(crate) fn get(s: &Server, path: &str) -> Value {
    let (code, body) = get_as(s, Some(&s.reader), path);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

/// GET `path` with `token` (as `Authorization: Bearer`); the status and the JSON answer.
pub(crate) fn get_as(s: &Server, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new().get(format!("{}{path}", s.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// POST JSON `body` to `path` with `token`; the status and the JSON answer.
pub(crate) fn post_as(s: &Server, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{}{path}", s.url))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// A user `name` with `role` (password: `NAME-password`) and an API token of theirs.
pub(crate) fn user(s: &Server, name: &str, role: hydrowatch_server::Role) -> String {
    s.db.add_user(name, role, &format!("{name}-password"), 0)
        .unwrap();
    s.db.create_operator_token(name, 0).unwrap()
}

/// A client that keeps cookies and does not follow redirects.
pub(crate) fn browser_like() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of cookie `name` set by response `r`, with the whole `Set-Cookie` line.
pub(crate) fn set_cookie(r: &reqwest::blocking::Response, name: &str) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|line| {
            let value = line[name.len() + 1..]
                .split(';')
                .next()
                .unwrap()
                .to_string();
            (value, line.to_string())
        })
}

/// Logs in as `name` with `password` like a browser (the login page's cookie and field);
/// the status of the login's answer and the session cookie's value and `Set-Cookie` line.
pub(crate) fn log_in(s: &Server, name: &str, password: &str) -> (u16, Option<(String, String)>) {
    log_in_to(&s.url, name, password)
}

/// [`log_in`] to the server at `url`.
pub(crate) fn log_in_to(url: &str, name: &str, password: &str) -> (u16, Option<(String, String)>) {
    let r = log_in_form(url, name, password, "/");
    (r.status().as_u16(), set_cookie(&r, "hw_session"))
}

/// Logs in through the form of the server at `url`, asking to go to `next` afterwards: the
/// response (not followed).
pub(crate) fn log_in_form(
    url: &str,
    name: &str,
    password: &str,
    next: &str,
) -> reqwest::blocking::Response {
    let client = browser_like();
    let page = client.get(format!("{url}/login")).send().unwrap();
    let (csrf, _) = set_cookie(&page, "hw_login").expect("the login page sets its cookie");
    client
        .post(format!("{url}/login"))
        .header("cookie", format!("hw_login={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", name),
            ("password", password),
            ("next", next),
        ])
        .send()
        .unwrap()
}

/// The CSRF token of the session whose cookie is `session`, read from a page's logout form.
pub(crate) fn csrf_of(s: &Server, session: &str) -> String {
    let page = browser_like()
        .get(format!("{}/", s.url))
        .header("cookie", format!("hw_session={session}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let needle = "name=\"csrf\" value=\"";
    let at = page.find(needle).expect("a form with the CSRF token") + needle.len();
    page[at..at + 48].to_string()
}

/// Delivers `messages` of `device` with its `token`; the server must take them (200).
pub(crate) fn deliver(s: &Server, token: &str, device: &str, messages: Vec<Value>) {
    let (code, body) = post(s, Some(token), batch(device, messages));
    assert_eq!(code, 200, "{body}");
}

/// The states of the device's transitions in an alarm's history, oldest first.
pub(crate) fn transition_states(history: &Value) -> Vec<String> {
    history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn batch(device: &str, messages: Vec<Value>) -> String {
    json!({"device_id": device, "messages": messages}).to_string()
}
