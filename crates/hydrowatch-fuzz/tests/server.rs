//! Fuzz targets of the operators' side and the MQTT ingest (issue #30): the login form and its
//! `next=` return address, a notification rule's body, and an MQTT message's topic and payload.
//! Each case goes through the server's own code path (its router, in process, on a SQLite file;
//! the MQTT ingest's one function), not a copy. `HYDROWATCH_FUZZ_SECONDS=600 cargo test --release
//! -p hydrowatch-fuzz --test server -- --nocapture --test-threads 1` runs each for 10 minutes
//! (docs/ROBUSTNESS.md); CI runs each for 3 seconds.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, header};
use hydrowatch_fuzz::{fuzz, inputs};
use hydrowatch_server::{Db, Role, Settings};
use proptest::prop_assert;

/// The server's database on a fresh SQLite file (kept with its folder) with user `ana`
/// (operator, password `ana-password`), admin `root`, and device `dma-1`.
fn database() -> (tempfile::TempDir, Arc<Db>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("server.db")).unwrap();
    db.add_user("ana", Role::Operator, "ana-password", 0)
        .unwrap();
    db.add_user("root", Role::Admin, "root-password", 0)
        .unwrap();
    db.create_token("dma-1", 0).unwrap();
    (dir, Arc::new(db))
}

/// `request` through `router`: the status, the headers and up to 1 MB of body.
fn call(
    runtime: &tokio::runtime::Runtime,
    router: &axum::Router,
    request: Request<Body>,
) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    runtime.block_on(async {
        let mut router = router.clone();
        let response: Response<Body> = tower_service::Service::call(&mut router, request)
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.status.as_u16(), parts.headers, body.to_vec())
    })
}

fn runtime() -> tokio::runtime::Runtime {
    // Multi-threaded: the handlers move blocking work aside (`block_in_place`).
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Whether `path` is a path a browser would resolve to this server (`http://server.example`):
/// the rule the login's return address must keep, checked here by the URL parser, not by the
/// server's own code.
fn stays_here(path: &str) -> bool {
    let here = reqwest::Url::parse("http://server.example/").unwrap();
    path.starts_with('/')
        && !path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        && here.join(path).is_ok_and(|u| u.origin() == here.origin())
}

/// Seeds of the return address: good paths and the tricks that escaped before.
const RETURNS: &[&str] = &[
    "/",
    "/alarms/dma-1/1",
    "/devices/dma-1?x=1#y",
    "//evil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "/\r\nSet-Cookie: x=1",
    "javascript:alert(1)",
    "/..//evil.example",
    "/%2F%2Fevil.example",
];

#[test]
fn next_parameter() {
    let (_dir, db) = database();
    let router = hydrowatch_server::router_with(db, Settings::default());
    let rt = runtime();
    fuzz("next parameter", inputs(RETURNS), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let kept = hydrowatch_server::auth::local_path(Some(&text));
        prop_assert!(kept == "/" || stays_here(kept), "{text:?} -> {kept:?}");
        // Through the login page: any query that makes a request, whatever it holds, is a page
        // (never a 500) whose form carries only a path of this server.
        let query: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        // A query too long to be a URI never reaches the server.
        let Ok(request) = Request::get(format!("/login?next={query}")).body(Body::empty()) else {
            return Ok(());
        };
        let (status, _, body) = call(&rt, &router, request);
        prop_assert!(status == 200, "{status} for {text:?}");
        let page = String::from_utf8_lossy(&body);
        let carried = page
            .split("name=\"next\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("");
        prop_assert!(
            !carried.contains('<') && !carried.contains('>'),
            "{carried:?}"
        );
        Ok(())
    });
}

#[test]
fn login_form() {
    const CSRF: &str = "0123456789abcdef0123456789abcdef";
    let seeds: Vec<String> = RETURNS
        .iter()
        .map(|next| {
            let next: String = next.bytes().map(|b| format!("%{b:02X}")).collect();
            format!("csrf={CSRF}&name=ana&password=ana-password&next={next}")
        })
        .chain([
            format!("csrf={CSRF}&name=ana&password=wrong"),
            format!("csrf={CSRF}&name=%00ana&password=ana-password"),
            format!("csrf={CSRF}&name=root&password=&next="),
            format!("name=ana&password=ana-password&csrf={CSRF}&csrf=x"),
            format!("csrf={CSRF}&name={}&password=x", "a".repeat(300)),
        ])
        .collect();
    let (_dir, db) = database();
    let rt = runtime();
    fuzz("login form", inputs(&seeds), |bytes| {
        // A fresh router each case: the failed-login counts would otherwise lock every case out
        // after twenty, and the fuzzing would only see the 429.
        let router = hydrowatch_server::router_with(db.clone(), Settings::default());
        let request = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("hw_login={CSRF}"))
            .body(Body::from(bytes.clone()))
            .unwrap();
        let (status, headers, body) = call(&rt, &router, request);
        prop_assert!(
            [303, 400, 401, 403, 429].contains(&status),
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        prop_assert!(body.len() < 64 * 1024);
        let session = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("hw_session="));
        if status == 303 {
            let to = headers[header::LOCATION].to_str().unwrap_or("");
            prop_assert!(to == "/" || stays_here(to), "to {to:?}");
            prop_assert!(session);
            // Only the right password of a real user opens a session.
            let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
            prop_assert!(
                matches!(
                    (get("name"), get("password")),
                    (Some("ana"), Some("ana-password")) | (Some("root"), Some("root-password"))
                ),
                "a session for {fields:?}"
            );
        } else {
            prop_assert!(!session, "a session with {status}");
        }
        Ok(())
    });
}

#[test]
fn rule_body() {
    const SEEDS: &[&str] = &[
        r#"{"name":"all","min_stage":2,"channel":"webhook","target":"https://hooks.example.org/x","secret":"key-0123456789ab"}"#,
        r#"{"name":"night","devices":["dma-1"],"series":["flow_rate"],"kinds":["outlier","night_flow"],"min_stage":3,"channel":"email","target":"ops@example.org","remind_minutes":30,"group_seconds":60}"#,
        r#"{"name":"x","min_stage":4,"channel":"webhook","target":"http://169.254.169.254/latest","secret":"0123456789abcdef"}"#,
        r#"{"name":"y\n","min_stage":1,"channel":"email","target":"a@b.c\r\nBcc: evil@example.org"}"#,
    ];
    let (_dir, db) = database();
    let admin = db.create_operator_token("root", 0).unwrap();
    let router = hydrowatch_server::router_with(db, Settings::default());
    let rt = runtime();
    fuzz("rule body", inputs(SEEDS), |bytes| {
        let request = Request::post("/api/v1/rules")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .body(Body::from(bytes.clone()))
            .unwrap();
        let (status, _, body) = call(&rt, &router, request);
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        prop_assert!(
            [201, 400, 409, 413, 415, 422].contains(&status),
            "{status}: {answer}"
        );
        if status == 201 {
            // What was kept is clean text within bounds; removed again so that its name can
            // come back.
            for field in ["name", "target"] {
                let text = answer[field].as_str().unwrap_or("");
                prop_assert!(!text.is_empty() && text.len() <= 2048, "{field}: {answer}");
                prop_assert!(
                    hydrowatch_core::unsafe_text(text).is_none(),
                    "{field}: {answer}"
                );
            }
            prop_assert!(
                answer.get("secret").is_none(),
                "a secret read back: {answer}"
            );
            let request = Request::delete(format!("/api/v1/rules/{}", answer["id"]))
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap();
            prop_assert!(call(&rt, &router, request).0 == 204);
        } else {
            let error = answer["error"].as_str().unwrap_or("");
            prop_assert!(!error.is_empty() && error.len() < 600, "{status}: {answer}");
        }
        Ok(())
    });
}

#[test]
fn mqtt_message() {
    // The topic is the input's first line, the payload the rest.
    let alert = r#"{"device_id":"dma-1","message_id":"m1","kind":"alert","created_at":"2024-07-01T00:00:00Z","body":{"machine_number":1,"time":"2024-07-01 09:00","outlier_stage":2,"value":1.0,"series":"flow_rate","unit":"m3/h","direction":"high","expected":0.5,"percentile":99.9,"kind":"outlier","alarm_id":1,"state":"opened"}}"#;
    let heartbeat = r#"{"device_id":"dma-1","message_id":"h1","kind":"heartbeat","created_at":"2024-07-01T00:00:00Z","body":{"readings":5}}"#;
    let root = hydrowatch_mqtt::TOPIC_ROOT;
    let seeds = [
        format!("{root}/dma-1/alert\n{alert}"),
        format!("{root}/dma-1/heartbeat\n{heartbeat}"),
        format!("{root}/dma-2/alert\n{alert}"),
        format!("{root}/dma-1/heartbeat\n{alert}"),
        format!("{root}/dma-1\u{0}/alert\n{{}}"),
    ];
    let (dir, db) = database();
    let look = rusqlite::Connection::open(dir.path().join("server.db")).unwrap();
    let count = |table: &str| -> i64 {
        look.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let now = 1_719_800_000;
    fuzz("mqtt message", inputs(&seeds), |bytes| {
        let (topic, payload) = match bytes.iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (&bytes[..], &[][..]),
        };
        let topic = String::from_utf8_lossy(topic);
        let (messages, refused) = (count("messages"), count("refused_messages"));
        let outcome = hydrowatch_server::mqtt::ingest_message(&db, &topic, payload, now);
        prop_assert!(outcome.is_ok(), "{outcome:?}");
        let (messages_after, refused_after) = (count("messages"), count("refused_messages"));
        match outcome.unwrap() {
            hydrowatch_server::mqtt::Outcome::Stored => {
                prop_assert!(topic.starts_with(&format!("{root}/dma-1/")), "{topic:?}");
                prop_assert!((messages_after, refused_after) == (messages + 1, refused));
            }
            hydrowatch_server::mqtt::Outcome::Repeated => {
                prop_assert!((messages_after, refused_after) == (messages, refused));
            }
            hydrowatch_server::mqtt::Outcome::Refused => {
                prop_assert!((messages_after, refused_after) == (messages, refused + 1));
                let (topic, reason, prefix): (String, String, String) = look
                    .query_row(
                        "SELECT topic, reason, payload_prefix FROM refused_messages ORDER BY id DESC LIMIT 1",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .unwrap();
                for text in [&topic, &reason, &prefix] {
                    prop_assert!(hydrowatch_core::unsafe_text(text).is_none(), "{text:?}");
                }
                prop_assert!(reason.len() < 600 && prefix.len() <= 4 * 1024, "{reason}");
            }
        }
        Ok(())
    });
}
