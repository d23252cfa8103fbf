//! The server's API over a real socket on 127.0.0.1, each test on a real SQLite file and on a
//! real PostgreSQL database.

mod common;

use common::{On, alert, batch, forecast, get, post, start, start_with};
use serde_json::{Value, json};

fn ingest_is_authenticated_checked_and_idempotent(on: On) {
    let s = start(on);
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

fn devices_and_alarms_are_read_back_with_open_alarms_by_stage(on: On) {
    let s = start(on);
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

fn the_openapi_document_lists_exactly_the_routes_and_each_answers(on: On) {
    let s = start(on);
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

fn a_device_over_its_rate_limit_is_told_to_come_back_later(on: On) {
    let s = start_with(
        on,
        hydrowatch_server::RateLimit {
            per_second: 0.5,
            burst: 2.0,
        },
    );
    let token = s.db.create_token("dma-1", 0).unwrap();
    let url = s.url.clone();
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
        s.db.alarms(&Default::default()).unwrap().len(),
        2,
        "the refused batch is not stored"
    );
}

fn day_ahead_accuracy_scores_each_actual_hour_against_the_forecast_of_the_day_before(on: On) {
    let s = start(on);
    let t = s.db.create_token("dma-1", 0).unwrap();
    // Issued 07-01 15:00, values 1.0 from 07-02 00:00 on.
    let first = forecast("dma-1", "f1", 168);
    // Issued 07-03 15:00, carrying the actuals 07-02 20:00-23:00 (3.0 each) and one hour that
    // no forecast issued a day before covers (07-01 20:00).
    let mut second = forecast("dma-1", "f2", 168);
    second["body"]["issued_at"] = "2024-07-03T15:00:00Z".into();
    let mut actuals: Vec<Value> = (20..24)
        .map(|h| json!({"time": format!("2024-07-02T{h}:00:00Z"), "value": 3.0}))
        .collect();
    actuals.push(json!({"time": "2024-07-01T20:00:00Z", "value": 9.0}));
    second["body"]["actuals"] = actuals.into();
    assert_eq!(
        post(&s, Some(&t), batch("dma-1", vec![first, second])).0,
        200
    );
    let acc = get(&s, "/api/v1/accuracy?device=dma-1");
    assert_eq!(acc[0]["series"], "flow_rate");
    assert_eq!(acc[0]["hours"], 4);
    assert_eq!(acc[0]["mae"], 2.0);
    assert!((acc[0]["mape"].as_f64().unwrap() - 200.0 / 3.0).abs() < 1e-9);
    // Actuals that are not numbers are refused with the message and field named.
    let mut bad = forecast("dma-1", "f3", 168);
    bad["body"]["actuals"] = json!([{"time": "2024-07-02T20:00:00Z", "value": "x"}]);
    let (code, body) = post(&s, Some(&t), batch("dma-1", vec![bad]));
    assert_eq!(code, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("actuals[0]: `value` must be a number"),
        "{body}"
    );
}

/// A device that resends a batch while the first try is still being stored (a timeout on its
/// side): every request is acknowledged, every message stored once.
fn the_same_batch_sent_eight_times_at_once_is_stored_once(on: On) {
    let s = start_with(on, hydrowatch_server::RateLimit::OFF);
    let token = s.db.create_token("dma-1", 0).unwrap();
    let messages: Vec<Value> = (0..5)
        .map(|i| alert("dma-1", &format!("m{i}"), i, "opened", 2, i as i64))
        .collect();
    let body = batch("dma-1", messages);
    let barrier = std::sync::Barrier::new(8);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    post(&s, Some(&token), body.clone())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (code, body) in answers {
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["acknowledged"].as_array().unwrap().len(), 5);
    }
    let alarms = get(&s, "/api/v1/alarms");
    assert_eq!(alarms.as_array().unwrap().len(), 5, "{alarms}");
}

on_both!(
    the_same_batch_sent_eight_times_at_once_is_stored_once,
    ingest_is_authenticated_checked_and_idempotent,
    devices_and_alarms_are_read_back_with_open_alarms_by_stage,
    the_openapi_document_lists_exactly_the_routes_and_each_answers,
    a_device_over_its_rate_limit_is_told_to_come_back_later,
    day_ahead_accuracy_scores_each_actual_hour_against_the_forecast_of_the_day_before,
);
