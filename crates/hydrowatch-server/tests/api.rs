//! The server's API over a real socket on 127.0.0.1 with a real SQLite file.

use std::sync::Arc;

use hydrowatch_server::Db;
use serde_json::{Value, json};

struct Server {
    url: String,
    _dir: tempfile::TempDir,
    db: Arc<Db>,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&dir.path().join("s.db")).unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = hydrowatch_server::router(db.clone());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
    });
    Server { url, _dir: dir, db }
}

fn alert(device: &str, id: &str, alarm: u64, state: &str, stage: u64, minute: i64) -> Value {
    json!({
        "device_id": device, "message_id": id, "kind": "alert",
        "created_at": format!("2024-07-01T00:{minute:02}:00Z"),
        "body": {"machine_number": 1, "time": "2024-07-01 09:00", "outlier_stage": stage, "value": 1.0,
                 "series": "flow_rate", "unit": "m3/h", "direction": "high", "expected": 0.5,
                 "percentile": 99.99, "kind": "outlier", "alarm_id": alarm, "state": state}
    })
}

fn forecast(device: &str, id: &str, points: usize) -> Value {
    let p: Vec<Value> = (0..points)
        .map(|h| json!({"time": format!("2024-07-0{}T{:02}:00:00Z", 2 + h / 24, h % 24), "value": 1.0, "lower": 0.5, "upper": 1.5}))
        .collect();
    json!({"device_id": device, "message_id": id, "kind": "forecast", "created_at": "2024-07-01T15:00:00Z",
           "body": {"series": "flow_rate", "unit": "m3/h", "issued_at": "2024-07-01T15:00:00Z", "model": "lstm/mimo", "points": p}})
}

fn post(s: &Server, token: Option<&str>, body: String) -> (u16, Value) {
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

fn get(s: &Server, path: &str) -> Value {
    reqwest::blocking::get(format!("{}{path}", s.url))
        .unwrap()
        .json()
        .unwrap()
}

fn batch(device: &str, messages: Vec<Value>) -> String {
    json!({"device_id": device, "messages": messages}).to_string()
}

#[test]
fn ingest_is_authenticated_checked_and_idempotent() {
    let s = start();
    let a = s.db.create_token("dma-1", 0).unwrap();
    let b = s.db.create_token("dma-2", 0).unwrap();
    let one = batch("dma-1", vec![alert("dma-1", "m1", 1, "opened", 4, 0)]);

    let (code, body) = post(&s, None, one.clone());
    assert_eq!(code, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(post(&s, Some("not-a-token"), one.clone()).0, 401);
    let (code, body) = post(&s, Some(&b), one.clone());
    assert_eq!(code, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("dma-2"), "{body}");
    let (code, body) = post(&s, Some(&a), "{not json".into());
    assert_eq!(code, 400, "{body}");
    let (code, _) = post(
        &s,
        Some(&a),
        format!("{{\"pad\": \"{}\"}}", "x".repeat(5 << 20)),
    );
    assert_eq!(code, 413);
    let (code, body) = post(
        &s,
        Some(&a),
        batch(
            "dma-1",
            vec![
                alert("dma-1", "m9", 9, "opened", 4, 0),
                forecast("dma-1", "f1", 167),
            ],
        ),
    );
    assert_eq!(code, 422, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("messages[1] (f1).body") && e.contains("167") && e.contains("168"),
        "{e}"
    );
    assert!(
        get(&s, "/api/v1/alarms").as_array().unwrap().is_empty(),
        "a refused batch stores nothing"
    );

    // Stored once, acknowledged every time.
    for _ in 0..2 {
        let (code, body) = post(&s, Some(&a), one.clone());
        assert_eq!((code, body), (200, json!({"acknowledged": ["m1"]})));
    }
    assert_eq!(get(&s, "/api/v1/alarms").as_array().unwrap().len(), 1);
    let (code, _) = post(
        &s,
        Some(&a),
        batch("dma-1", vec![forecast("dma-1", "f2", 168)]),
    );
    assert_eq!(code, 200);
    let fc = get(&s, "/api/v1/forecasts?device=dma-1");
    assert_eq!(fc[0]["points"].as_array().unwrap().len(), 168);
}

#[test]
fn devices_and_alarms_are_read_back_with_open_alarms_by_stage() {
    let s = start();
    let a = s.db.create_token("dma-1", 0).unwrap();
    s.db.create_token("dma-2", 0).unwrap();
    let messages = vec![
        alert("dma-1", "m1", 1, "opened", 4, 0),
        alert("dma-1", "m2", 2, "opened", 3, 1),
        alert("dma-1", "m3", 1, "de-escalated", 2, 2),
        alert("dma-1", "m4", 2, "cleared", 0, 3),
    ];
    assert_eq!(post(&s, Some(&a), batch("dma-1", messages)).0, 200);
    let devices = get(&s, "/api/v1/devices");
    assert_eq!(devices[0]["id"], "dma-1");
    assert_eq!(devices[0]["open_alarms"], json!([0, 1, 0, 0]));
    assert!(devices[0]["last_seen"].as_i64().is_some());
    assert_eq!(devices[1]["last_seen"], Value::Null);
    let open = get(&s, "/api/v1/alarms?open=true");
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["state"], "de-escalated");
    let high = get(&s, "/api/v1/alarms?min_stage=3");
    assert_eq!(high.as_array().unwrap().len(), 2);
    let late = get(&s, &format!("/api/v1/alarms?since={}", 1_719_792_000 + 120));
    assert_eq!(late.as_array().unwrap().len(), 2);
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_and_each_answers() {
    let s = start();
    let doc = get(&s, "/api/v1/openapi.json");
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(hydrowatch_server::api::OPENAPI).unwrap()
    );
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = hydrowatch_server::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    // Each route is really there: its documented method is neither 404 nor 405.
    let client = reqwest::blocking::Client::new();
    for (method, path) in &routes {
        let url = format!("{}{path}?device=x", s.url);
        let r = match method.as_str() {
            "get" => client.get(url).send().unwrap(),
            _ => client.post(url).body("{}").send().unwrap(),
        };
        let code = r.status().as_u16();
        assert!(code != 404 && code != 405, "{method} {path}: {code}");
        assert!(
            doc["paths"][path][method]["responses"][code.to_string()].is_object(),
            "{method} {path}: {code} is not documented"
        );
    }
    let missing = client
        .get(format!("{}/api/v1/nothing", s.url))
        .send()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[test]
fn a_device_over_its_rate_limit_is_told_to_come_back_later() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&dir.path().join("s.db")).unwrap());
    let token = db.create_token("dma-1", 0).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let limit = hydrowatch_server::RateLimit {
        per_second: 0.5,
        burst: 2.0,
    };
    let app = hydrowatch_server::router_with(db.clone(), limit);
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
    });
    let client = reqwest::blocking::Client::new();
    let send = |id: &str| {
        client
            .post(format!("{url}/api/v1/ingest"))
            .bearer_auth(&token)
            .json(
                &json!({"device_id": "dma-1", "messages": [alert("dma-1", id, 1, "opened", 4, 0)]}),
            )
            .send()
            .unwrap()
    };
    assert_eq!(send("a").status().as_u16(), 200);
    assert_eq!(send("b").status().as_u16(), 200);
    let r = send("c");
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("too fast"),
        "{body}"
    );
    assert_eq!(
        db.alarms(&Default::default()).unwrap().len(),
        2,
        "the refused batch is not stored"
    );
}
