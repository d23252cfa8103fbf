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
        e.contains("messages[1] (f1): body.points") && e.contains("167") && e.contains("168"),
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
        serde_json::from_str::<Value>(hydrowatch_server::app::openapi()).unwrap()
    );
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = hydrowatch_server::app::ROUTES
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
            "delete" => client.delete(url).send().unwrap(),
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
    second["created_at"] = "2024-07-03T15:00:00Z".into();
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
            .contains("messages[0] (f3): body.actuals[0].value: invalid type: string \"x\""),
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

/// The holes the hardening review found in the ingest contract (issue #15): each is refused
/// with the message and field named, or answered as the contract says.
fn ingest_refuses_out_of_range_mistyped_and_reused_fields(on: On) {
    let s = start(on);
    let a = s.db.create_token("dma-1", 0).unwrap();
    let b = s.db.create_token("dma-2", 0).unwrap();
    let refused = |m: Value| -> String {
        let id = m["message_id"].clone();
        let (code, body) = post(&s, Some(&a), batch("dma-1", vec![m]));
        assert_eq!(code, 422, "{body}");
        assert_eq!(body["invalid"], json!([id]), "{body}");
        body["error"].as_str().unwrap().to_string()
    };
    // Alarm ids past 2^63 - 1 were both stored as 0 (two alarms merged).
    for big in [json!(9_223_372_036_854_775_808u64), json!(u64::MAX)] {
        let mut m = alert("dma-1", "big", 1, "opened", 4, 0);
        m["body"]["alarm_id"] = big;
        let e = refused(m);
        assert!(
            e.contains("messages[0] (big): body.alarm_id: ") && e.contains("out of range"),
            "{e}"
        );
    }
    // "NaN" strings where numbers belong were stored.
    for field in ["value", "expected"] {
        let mut m = alert("dma-1", "nan", 1, "opened", 4, 0);
        m["body"][field] = "NaN".into();
        let e = refused(m);
        assert!(
            e.contains(&format!("body.{field}: invalid type: string \"NaN\"")),
            "{e}"
        );
    }
    // A forecast from year 1 to 9999 drew a gigabyte per page: 168 consecutive hours near its
    // creation, or nothing.
    let mut m = forecast("dma-1", "wide", 168);
    m["body"]["points"][0]["time"] = "0001-01-01T00:00:00Z".into();
    m["body"]["points"][167]["time"] = "9999-12-31T23:00:00Z".into();
    let e = refused(m);
    assert!(
        e.contains("body.points[0].time") && e.contains("1970-2199"),
        "{e}"
    );
    let mut m = forecast("dma-1", "gap", 168);
    m["body"]["points"][100]["time"] = "2024-07-30T00:00:00Z".into();
    let e = refused(m);
    assert!(
        e.contains("body.points[100].time") && e.contains("consecutive"),
        "{e}"
    );
    let mut m = forecast("dma-1", "late", 168);
    for (h, p) in m["body"]["points"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        p["time"] = format!("2030-01-0{}T{:02}:00:00Z", 1 + h / 24, h % 24).into();
    }
    let e = refused(m);
    assert!(
        e.contains("body.points[0].time") && e.contains("two days"),
        "{e}"
    );
    let mut m = alert("dma-1", "future", 1, "opened", 4, 0);
    m["created_at"] = "2199-01-01T00:00:00Z".into();
    let e = refused(m);
    assert!(
        e.contains("created_at") && e.contains("ahead of the server's clock"),
        "{e}"
    );
    // A long value is echoed as a short prefix.
    let mut m = alert("dma-1", "long", 1, "opened", 4, 0);
    m["body"]["time"] = "x".repeat(100_000).into();
    let e = refused(m);
    assert!(e.len() < 400, "{} bytes", e.len());

    // A message id sent again with other content: 409 naming it, nothing of the batch stored.
    assert_eq!(
        post(
            &s,
            Some(&a),
            batch("dma-1", vec![alert("dma-1", "m1", 1, "opened", 4, 0)])
        )
        .0,
        200
    );
    let (code, body) = post(
        &s,
        Some(&a),
        batch(
            "dma-1",
            vec![
                alert("dma-1", "m2", 2, "opened", 4, 1),
                alert("dma-1", "m1", 1, "opened", 3, 0),
            ],
        ),
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["conflicting"], json!(["m1"]));
    assert_eq!(s.db.alarms(&Default::default()).unwrap().len(), 1);
    // Ids are unique per device: another device may use the same one.
    let (code, body) = post(
        &s,
        Some(&b),
        batch("dma-2", vec![alert("dma-2", "m1", 1, "opened", 2, 0)]),
    );
    assert_eq!((code, body), (200, json!({"acknowledged": ["m1"]})));
    assert_eq!(s.db.alarms(&Default::default()).unwrap().len(), 2);

    // Query errors are JSON, as the OpenAPI document promises.
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/alarms?min_stage=lots", s.url))
        .bearer_auth(&s.reader)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("min_stage"),
        "{body}"
    );
}

on_both!(ingest_refuses_out_of_range_mistyped_and_reused_fields);

/// The schema before message ids were unique per device (version 1, as the first releases
/// created it).
const SCHEMA_V1: &str = "
CREATE TABLE devices (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE messages (message_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    created_at BIGINT NOT NULL, received_at BIGINT NOT NULL, envelope TEXT NOT NULL);
CREATE INDEX messages_by_device ON messages (device_id, received_at);
CREATE TABLE alerts (id {id}, message_id TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL,
    alarm_id BIGINT NOT NULL, series TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
    stage BIGINT NOT NULL, created_at BIGINT NOT NULL, body TEXT NOT NULL);
CREATE INDEX alerts_by_alarm ON alerts (device_id, alarm_id, created_at);
CREATE TABLE forecasts (message_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, series TEXT NOT NULL,
    issued_at BIGINT NOT NULL, body TEXT NOT NULL);
CREATE INDEX forecasts_by_series ON forecasts (device_id, series, issued_at);
CREATE TABLE actuals (device_id TEXT NOT NULL, series TEXT NOT NULL, hour BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, series, hour));
INSERT INTO devices VALUES ('dma-1', 'h1', 0), ('dma-2', 'h2', 0);
INSERT INTO messages VALUES ('m1', 'dma-1', 'alert', 1719792000, 1719792000, '{}');
INSERT INTO alerts (message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)
    VALUES ('m1', 'dma-1', 1, 'flow_rate', 'outlier', 'opened', 4, 1719792000,
    '{\"alarm_id\":1,\"series\":\"flow_rate\",\"kind\":\"outlier\",\"state\":\"opened\",\"outlier_stage\":4,\"time\":\"2024-07-01T09:00:00+09:00\"}');
";

/// A database of schema version 1 is migrated when the server opens it: what it held stays,
/// and another device may then use a message id the first one used.
fn a_database_of_the_first_schema_is_migrated_keeping_what_it_held(on: On) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = match on {
        On::Sqlite => {
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(&SCHEMA_V1.replace("{id}", "INTEGER PRIMARY KEY"))
                .unwrap();
            String::new()
        }
        On::Postgres => {
            let url = hydrowatch_pgtest::database();
            postgres::Client::connect(&url, postgres::NoTls)
                .unwrap()
                .batch_execute(&SCHEMA_V1.replace(
                    "{id}",
                    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                ))
                .unwrap();
            url
        }
    };
    let open = || match on {
        On::Sqlite => hydrowatch_server::Db::open(&path).unwrap(),
        On::Postgres => hydrowatch_server::Db::connect(&url).unwrap(),
    };
    let db = open();
    let alarms = db.alarms(&Default::default()).unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0].alert.alarm_id, 1);
    // What the old server stored is history: a rule added now is not told of it.
    let rule = serde_json::from_value(json!({"name": "all", "min_stage": 1, "channel": "webhook",
        "target": "http://127.0.0.1:9/x", "secret": "0123456789abcdef"}))
    .unwrap();
    db.add_rule(&rule, 0).unwrap();
    db.plan_notifications(&db.rules().unwrap(), 0).unwrap();
    assert!(db.due_notifications(i64::MAX, 10).unwrap().is_empty());
    let token = db.create_token("dma-2", 0).unwrap();
    drop(db);
    // Opened again (already migrated), then served: dma-2 reuses the id m1.
    let db = std::sync::Arc::new(open());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = hydrowatch_server::ServerConfig {
        // The fixture's device was last heard from long ago: no silence alarm in this count.
        notify: hydrowatch_server::notify::NotifySettings {
            silent_after: None,
            ..Default::default()
        },
        ..Default::default()
    };
    let _runtime = hydrowatch_server::Server::new(db.clone(), config)
        .spawn(listener)
        .unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/api/v1/ingest"))
        .bearer_auth(&token)
        .json(&json!({"device_id": "dma-2", "messages": [alert("dma-2", "m1", 7, "opened", 2, 0)]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(db.alarms(&Default::default()).unwrap().len(), 2);
}

on_both!(a_database_of_the_first_schema_is_migrated_keeping_what_it_held);

/// Fields the server does not know are not kept (issue #30, finding 4): a device's token padded
/// its alerts with them, and every page read them back. The padded message is stored as its
/// known fields, so sending it again without the padding is the same message, while a change
/// of a known field is still a conflict; a heartbeat's texts are bounded.
fn unknown_fields_of_a_message_are_not_kept(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    let padding = "x".repeat(200_000);
    let mut padded = alert("dma-1", "m1", 1, "opened", 3, 0);
    padded["body"]["padding"] = json!(padding);
    padded["padding"] = json!(padding);
    let (code, body) = post(&s, Some(&device), batch("dma-1", vec![padded]));
    assert_eq!(code, 200, "{body}");
    let plain = alert("dma-1", "m1", 1, "opened", 3, 0);
    let (code, body) = post(&s, Some(&device), batch("dma-1", vec![plain]));
    assert_eq!(code, 200, "the same message without the padding: {body}");
    let changed = alert("dma-1", "m1", 1, "opened", 4, 0);
    assert_eq!(
        post(&s, Some(&device), batch("dma-1", vec![changed])).0,
        409
    );
    let alarms = get(&s, "/api/v1/alarms?device=dma-1");
    assert!(
        alarms.to_string().len() < 2_000,
        "{}",
        alarms.to_string().len()
    );
    let heartbeat = json!({"device_id": "dma-1", "message_id": "h1", "kind": "heartbeat",
        "created_at": "2024-07-01T00:05:00Z", "body": {"version": padding}});
    let (code, body) = post(&s, Some(&device), batch("dma-1", vec![heartbeat]));
    assert_eq!(code, 422, "{body}");
    assert!(body.to_string().contains("body.version"), "{body}");
}

on_both!(unknown_fields_of_a_message_are_not_kept);

/// After retention removed an alert's message, the same alert sent again is a repeat, not a 500
/// for ever (issue #30, finding 7: the device takes a 500 for "try again", and everything
/// queued behind it waited); another alert under that id is still a conflict.
fn an_alert_sent_again_after_retention_is_a_repeat(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    let first = alert("dma-1", "m1", 1, "opened", 3, 0);
    assert_eq!(
        post(&s, Some(&device), batch("dma-1", vec![first.clone()])).0,
        200
    );
    // Seventy days on, keeping one: the message goes (on PostgreSQL with its month's
    // partition), its transition stays.
    let later = chrono::Utc::now().timestamp() + 70 * 86_400;
    let done = s.db.retain(later, Some(1)).unwrap();
    assert!(
        done.rows_deleted >= 1 || !done.partitions_dropped.is_empty(),
        "{done:?}"
    );
    let (code, body) = post(&s, Some(&device), batch("dma-1", vec![first]));
    assert_eq!(code, 200, "{body}");
    let other = alert("dma-1", "m1", 1, "opened", 4, 0);
    assert_eq!(post(&s, Some(&device), batch("dma-1", vec![other])).0, 409);
    // What comes after it is stored, and the transition is there once.
    let next = alert("dma-1", "m2", 1, "cleared", 0, 5);
    assert_eq!(post(&s, Some(&device), batch("dma-1", vec![next])).0, 200);
    let alarms = get(&s, "/api/v1/alarms?device=dma-1");
    assert_eq!(alarms.as_array().unwrap().len(), 2, "{alarms}");
}

on_both!(an_alert_sent_again_after_retention_is_a_repeat);

/// One rule for text from outside, the same on both databases (issue #30, finding 10): NUL,
/// line breaks and bidirectional overrides in a device's names, units and ids, in an operator's
/// comment and in a rule are refused with 422 naming the field (on PostgreSQL a NUL gave 500
/// and a bare "db error"; on SQLite they were stored and shown).
fn control_and_bidirectional_characters_are_refused_with_422(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    let with = |field: &str, value: &str| {
        let mut m = alert("dma-1", "m1", 1, "opened", 3, 0);
        if field == "message_id" {
            m["message_id"] = json!(value);
        } else {
            m["body"][field] = json!(value);
        }
        post(&s, Some(&device), batch("dma-1", vec![m]))
    };
    for (field, value) in [
        ("series", "flow\u{0}rate"),
        ("series", "flow\r\nBcc: x@evil.example"),
        ("unit", "m3/h\u{202E}"),
        ("message_id", "m\u{0}1"),
    ] {
        let (code, body) = with(field, value);
        assert_eq!(code, 422, "{field} {value:?}: {body}");
        assert!(body.to_string().contains(field), "{body}");
    }
    assert_eq!(with("unit", "m³/h").0, 200);
    let ana = common::user(&s, "ana", hydrowatch_server::Role::Operator);
    let (code, body) = common::post_as(
        &s,
        Some(&ana),
        "/api/v1/alarms/dma-1/1/comment",
        json!({"comment": "valve\u{0} shut"}),
    );
    assert_eq!(code, 422, "{body}");
    let admin = common::user(&s, "root", hydrowatch_server::Role::Admin);
    let rule = json!({"name": "night\nshift", "min_stage": 1, "channel": "email", "target": "oncall@utility.example"});
    let (code, body) = common::post_as(&s, Some(&admin), "/api/v1/rules", rule);
    assert_eq!(code, 422, "{body}");
}

on_both!(control_and_bidirectional_characters_are_refused_with_422);

/// A transition stamped a day ahead by a device's clock does not top the newest-first list
/// (issue #30, finding 15): transitions are listed by arrival.
fn transitions_are_listed_by_arrival_not_by_the_devices_clock(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    let ahead = chrono::Utc::now() + chrono::Duration::hours(20);
    let mut future = alert("dma-1", "m1", 1, "opened", 3, 0);
    future["created_at"] = json!(ahead.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    assert_eq!(post(&s, Some(&device), batch("dma-1", vec![future])).0, 200);
    let now = alert("dma-1", "m2", 2, "opened", 3, 0);
    assert_eq!(post(&s, Some(&device), batch("dma-1", vec![now])).0, 200);
    let alarms = get(&s, "/api/v1/alarms?device=dma-1");
    let ids: Vec<u64> = alarms
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alarm_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1], "{alarms}");
}

on_both!(transitions_are_listed_by_arrival_not_by_the_devices_clock);
