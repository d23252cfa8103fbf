//! Server-side retention, on SQLite (rows deleted) and on PostgreSQL (monthly partitions
//! dropped, the default partition's old rows deleted), and a message id stored once however many
//! requests carry it at the same moment (on PostgreSQL a lock per device, not the key, decides).

mod common;

use common::{On, alert, forecast};
use hydrowatch_server::Db;
use serde_json::{Value, json};

const DAY: i64 = 86_400;
/// 2024-07-01T16:00:00Z, just after the fixtures' messages were made.
const JULY: i64 = 1_719_849_600;

fn open(on: On, dir: &std::path::Path) -> Db {
    match on {
        On::Sqlite => Db::open(&dir.join("s.db")).unwrap(),
        On::Postgres => Db::connect(&hydrowatch_pgtest::database()).unwrap(),
    }
}

/// Stores `message` of `device` as arrived at `received_at`.
fn store(db: &Db, device: &str, message: Value, received_at: i64) {
    let checked = hydrowatch_protocol::check(0, &message, device, received_at).unwrap();
    assert_eq!(db.ingest(device, &[checked], received_at).unwrap(), 1);
}

/// A forecast of `device` with the actual values of the 14 hours before it (1 July).
fn forecast_with_actuals(device: &str, id: &str) -> Value {
    let mut f = forecast(device, id, 168);
    f["body"]["actuals"] = (1..=14)
        .map(|h| json!({"time": JULY - 3600 - h * 3600, "value": 2.0}))
        .map(|mut a| {
            let t = a["time"].as_i64().unwrap();
            a["time"] = json!(
                chrono::DateTime::from_timestamp(t, 0)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            a
        })
        .collect();
    f
}

fn retention_removes_what_is_older_and_keeps_alarms_and_who_was_heard(on: On) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(on, dir.path());
    db.create_token("dma-1", 0).unwrap();
    db.create_token("dma-2", 0).unwrap();
    // The months of July 2024 (and the two after) get their partitions first, as a server
    // running then would have made them.
    let july = db.retain(JULY, None).unwrap();
    if let On::Postgres = on {
        for made in [
            "messages_y2024m07",
            "forecasts_y2024m09",
            "actuals_y2024m08",
        ] {
            assert!(july.partitions_made.iter().any(|p| p == made), "{july:?}");
        }
    }
    // dma-1 in July (an alarm, a forecast with two days of actual values), a year before that
    // (a message of a month without a partition: the default one); dma-2 in October.
    store(
        &db,
        "dma-1",
        alert("dma-1", "old-a", 1, "opened", 3, 0),
        JULY,
    );
    store(&db, "dma-1", forecast_with_actuals("dma-1", "old-f"), JULY);
    let mut older = alert("dma-1", "older-a", 2, "opened", 3, 1);
    older["created_at"] = json!("2023-07-01T00:01:00Z");
    store(&db, "dma-1", older, JULY - 365 * DAY);
    let october = JULY + 100 * DAY;
    store(
        &db,
        "dma-2",
        alert("dma-2", "new-a", 1, "opened", 2, 0),
        october,
    );
    let hours = |device: &str| db.actuals(device, "flow_rate", 0, i64::MAX).unwrap().len();
    assert_eq!(hours("dma-1"), 14);

    // Keep 30 days, 120 days after July: July and August go, October stays.
    let now = JULY + 120 * DAY;
    let done = db.retain(now, Some(30)).unwrap();
    match on {
        On::Sqlite => {
            // Three messages, a forecast, 14 hours of actual values.
            assert_eq!(done.rows_deleted, 3 + 1 + 14, "{done:?}");
            assert!(done.partitions_dropped.is_empty() && done.partitions_made.is_empty());
        }
        On::Postgres => {
            for dropped in [
                "messages_y2024m07",
                "messages_y2024m08",
                "forecasts_y2024m07",
                "actuals_y2024m07",
            ] {
                assert!(
                    done.partitions_dropped.iter().any(|p| p == dropped),
                    "{dropped}: {done:?}"
                );
            }
            // September ends after the cut-off (29 September): kept whole.
            assert!(
                !done.partitions_dropped.iter().any(|p| p.ends_with("m09")),
                "{done:?}"
            );
            // The message of a year before, from the default partition.
            assert_eq!(done.rows_deleted, 1, "{done:?}");
            // October's rows are in the default partition already (no partition was made for
            // it): it is left without one, November's and December's are made.
            assert!(
                !done
                    .partitions_made
                    .iter()
                    .any(|p| p == "messages_y2024m10"),
                "{done:?}"
            );
            assert!(
                done.partitions_made
                    .iter()
                    .any(|p| p == "messages_y2024m12"),
                "{done:?}"
            );
        }
    }
    assert_eq!(db.message_counts("old").unwrap().0, 0);
    assert_eq!(db.message_counts("new").unwrap().0, 1);
    assert!(db.forecasts("dma-1", None, 10).unwrap().is_empty());
    assert_eq!(hours("dma-1"), 0);
    // Alarm transitions stay, and so does when dma-1 was heard last.
    let alarms = db
        .alarms(&hydrowatch_server::db::AlarmFilter {
            device: Some("dma-1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    let devices = db.devices().unwrap();
    let seen = |id: &str| devices.iter().find(|d| d.id == id).unwrap().last_seen;
    assert_eq!(seen("dma-1"), Some(JULY));
    assert_eq!(seen("dma-2"), Some(october));
    // Silent since July: both get the server's alarm (a device forgotten would not).
    assert_eq!(db.watch_silence(now, 15 * 60).unwrap(), (2, 0));
    // A second round finds nothing more; keeping everything removes nothing.
    assert_eq!(
        db.retain(now, Some(30)).unwrap(),
        hydrowatch_server::retention::Retained::default()
    );
    assert_eq!(db.retain(now + 400 * DAY, None).unwrap().rows_deleted, 0);
    assert_eq!(db.message_counts("new").unwrap().0, 1);
}

on_both!(retention_removes_what_is_older_and_keeps_alarms_and_who_was_heard);

/// Eight requests carry the same 20 messages at the same moment, and two more carry one id with
/// two contents: each id is stored once, the repeats are acknowledged, the other content is
/// refused (409).
fn a_message_carried_by_many_requests_at_once_is_stored_once(on: On) {
    let s = common::start(on);
    let token = s.db.create_token("dma-1", 0).unwrap();
    let messages: Vec<Value> = (0..20)
        .map(|i| alert("dma-1", &format!("same-{i}"), i, "opened", 2, 0))
        .collect();
    let barrier = std::sync::Barrier::new(10);
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let mut requests = Vec::new();
        for i in 0..10 {
            let (s, token, messages, barrier) = (&s, &token, &messages, &barrier);
            requests.push(scope.spawn(move || {
                let body = match i {
                    0..8 => common::batch("dma-1", messages.clone()),
                    // The same id, another alarm.
                    _ => common::batch(
                        "dma-1",
                        vec![alert("dma-1", "twice", 100 + i, "opened", 2, 0)],
                    ),
                };
                barrier.wait();
                common::post(s, Some(token), body).0
            }));
        }
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(codes[..8].iter().all(|&c| c == 200), "{codes:?}");
    let mut other = codes[8..].to_vec();
    other.sort_unstable();
    assert_eq!(other, [200, 409], "{codes:?}");
    assert_eq!(s.db.message_counts("same-").unwrap(), (20, 20));
    assert_eq!(s.db.message_counts("twice").unwrap(), (1, 1));
    assert_eq!(s.db.alarms(&Default::default()).unwrap().len(), 21);
}

on_both!(a_message_carried_by_many_requests_at_once_is_stored_once);
