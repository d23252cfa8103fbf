//! Notifications, on SQLite and PostgreSQL: a real webhook receiver gets each alarm of each
//! matching rule once, signed, retried after a failure under the same delivery id; an SMTP sink
//! gets the e-mail over STARTTLS, and the relay's password never goes in clear; and the planning of the queue, at chosen times: a flood is one
//! message, a shelved alarm notifies nobody, an unacknowledged alarm is reminded once.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{On, alert, batch, deliver, post, post_as, start_notifying, user};
use hydrowatch_server::notify::NotifySettings;
use hydrowatch_server::{Db, Role, User};
use hydrowatch_sinks::{SmtpSink, Webhook};
use serde_json::{Value, json};

fn until(what: &str, done: impl FnMut() -> bool) {
    hydrowatch_sinks::wait_until(what, Duration::from_secs(30), done);
}

fn webhooks_get_each_alarm_of_each_rule_once_signed(on: On) {
    let s = start_notifying(on, NotifySettings::default());
    let device = s.db.create_token("dma-1", 0).unwrap();
    let admin = user(&s, "root", Role::Admin);
    let operator = user(&s, "ana", Role::Operator);
    // The first attempt at `a` fails: it is retried under the same delivery id.
    let (a, b) = (
        Webhook::start(1, Duration::ZERO),
        Webhook::start(0, Duration::ZERO),
    );
    let rule = |name: &str, url: &str, secret: &str, more: Value| {
        let mut r = json!({"name": name, "min_stage": 2, "channel": "webhook", "target": url, "secret": secret});
        r.as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        r
    };
    // Only admins manage rules; a webhook needs its key.
    assert_eq!(
        post_as(
            &s,
            Some(&operator),
            "/api/v1/rules",
            rule("a", &a.url, "key-a-0123456789", json!({}))
        )
        .0,
        403
    );
    assert_eq!(
        post_as(
            &s,
            Some(&admin),
            "/api/v1/rules",
            rule("a", &a.url, "short", json!({}))
        )
        .0,
        422
    );
    let (code, made) = post_as(
        &s,
        Some(&admin),
        "/api/v1/rules",
        rule("a", &a.url, "key-a-0123456789", json!({})),
    );
    assert_eq!(code, 201, "{made}");
    assert_eq!(
        post_as(
            &s,
            Some(&admin),
            "/api/v1/rules",
            rule("a", &a.url, "key-a-0123456789", json!({}))
        )
        .0,
        409
    );
    let (code, _) = post_as(
        &s,
        Some(&admin),
        "/api/v1/rules",
        rule(
            "b",
            &b.url,
            "key-b-0123456789",
            json!({"devices": ["dma-1"], "min_stage": 3}),
        ),
    );
    assert_eq!(code, 201);
    let (code, listed) = common::get_as(&s, Some(&admin), "/api/v1/rules");
    assert_eq!(code, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        !listed.to_string().contains("key-a"),
        "secrets are never read back: {listed}"
    );

    let messages = vec![
        alert("dma-1", "m1", 1, "opened", 3, 0),
        alert("dma-1", "m2", 2, "opened", 2, 1),
        alert("dma-1", "m3", 1, "de-escalated", 2, 2),
        alert("dma-1", "m4", 3, "opened", 1, 3),
    ];
    assert_eq!(post(&s, Some(&device), batch("dma-1", messages)).0, 200);
    // a: alarms 1 and 2 (stage 2 and above), one failure first; b: alarm 1 (stage 3).
    until("a's deliveries", || a.received().len() >= 3);
    until("b's delivery", || !b.received().is_empty());
    std::thread::sleep(Duration::from_secs(2));
    let (got_a, got_b) = (a.received(), b.received());
    assert_eq!(got_a.len(), 3, "one failure, two deliveries");
    assert_eq!(got_b.len(), 1);
    assert!(got_a.iter().all(|r| r.signed_with("key-a-0123456789")));
    assert!(got_b[0].signed_with("key-b-0123456789"));
    assert!(!got_b[0].signed_with("key-a-0123456789"));
    // The failed delivery came again under its id; each alarm once otherwise.
    let ids: Vec<&str> = got_a
        .iter()
        .map(|r| r.headers["x-hydrowatch-delivery"].as_str())
        .collect();
    assert_eq!(
        ids.iter().filter(|&&id| id == ids[0]).count(),
        2,
        "the retry: {ids:?}"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 2, "{ids:?}");
    let mut alarms_of = HashMap::new();
    for r in got_a.iter().skip(1) {
        let n: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (
                n["rule"].as_str(),
                n["device_id"].as_str(),
                n["kind"].as_str()
            ),
            (Some("a"), Some("dma-1"), Some("alarms"))
        );
        alarms_of.insert(
            n["alarms"][0]["alarm_id"].as_u64().unwrap(),
            n["count"].as_u64().unwrap(),
        );
    }
    assert_eq!(alarms_of, HashMap::from([(1, 1), (2, 1)]));
    let n: Value = serde_json::from_slice(&got_b[0].body).unwrap();
    assert_eq!(n["alarms"][0]["alarm_id"], 1);
    assert_eq!(n["alarms"][0]["stage"], 3);

    // A removed rule sends nothing more.
    let id = made["id"].as_i64().unwrap();
    let r = reqwest::blocking::Client::new()
        .delete(format!("{}/api/v1/rules/{id}", s.url))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    deliver(
        &s,
        &device,
        "dma-1",
        vec![alert("dma-1", "m5", 4, "opened", 4, 5)],
    );
    until("b's second delivery", || b.received().len() == 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.received().len(), 3);
}

on_both!(webhooks_get_each_alarm_of_each_rule_once_signed);

/// A rule's id is never given twice (issue #30, finding 13): the greatest rule removed, the next
/// rule gets a new id (SQLite before schema 7 gave the removed one again, and with it the
/// delivery ids of its notifications).
fn a_removed_rules_id_is_never_given_again(on: On) {
    let s = start_notifying(on, NotifySettings::default());
    let admin = user(&s, "root", Role::Admin);
    let add = |name: &str| {
        let rule = json!({"name": name, "min_stage": 2, "channel": "webhook",
            "target": "https://hooks.example.org/x", "secret": "key-0123456789ab"});
        let (code, made) = post_as(&s, Some(&admin), "/api/v1/rules", rule);
        assert_eq!(code, 201, "{made}");
        made["id"].as_i64().unwrap()
    };
    let (first, second) = (add("first"), add("second"));
    assert!(second > first);
    let r = reqwest::blocking::Client::new()
        .delete(format!("{}/api/v1/rules/{second}", s.url))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(add("third") > second);
}

on_both!(a_removed_rules_id_is_never_given_again);

/// An e-mail rule: the SMTP sink gets one message per alarm, over STARTTLS.
#[test]
fn an_email_goes_out_over_starttls() {
    let sink = SmtpSink::start();
    let s = start_notifying(
        On::Sqlite,
        NotifySettings {
            mailer: Some(
                hydrowatch_server::notify::Mailer::new(
                    &format!("smtp://localhost:{}", sink.port),
                    "hydrowatch@utility.example",
                    Some(sink.cert_pem.as_bytes()),
                )
                .unwrap(),
            ),
            ..Default::default()
        },
    );
    let device = s.db.create_token("dma-1", 0).unwrap();
    let admin = user(&s, "root", Role::Admin);
    let rule = json!({"name": "night shift", "min_stage": 1, "channel": "email", "target": "oncall@utility.example"});
    assert_eq!(post_as(&s, Some(&admin), "/api/v1/rules", rule).0, 201);
    let bad = json!({"name": "x", "min_stage": 1, "channel": "email", "target": "not an address"});
    assert_eq!(post_as(&s, Some(&admin), "/api/v1/rules", bad).0, 422);
    deliver(
        &s,
        &device,
        "dma-1",
        vec![alert("dma-1", "m1", 7, "opened", 3, 0)],
    );
    until("the e-mail", || !sink.received().is_empty());
    std::thread::sleep(Duration::from_secs(2));
    let mail = sink.received();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].tls, "sent after STARTTLS");
    assert_eq!(mail[0].to, ["oncall@utility.example"]);
    for needle in [
        "Subject: [hydrowatch] dma-1: outlier opened at stage 3",
        "alarm 7 outlier on flow_rate",
        "From: hydrowatch@utility.example",
    ] {
        assert!(mail[0].data.contains(needle), "{needle}: {}", mail[0].data);
    }
}

/// One receiver that never answers delays no other receiver, nor the silence check (issue #30,
/// finding 3): each receiver has its own sender. Before, attempts ran one at a time with a 10 s
/// limit each: a working rule's 20 notifications arrived 200 s late, behind the dead one's.
#[test]
fn a_dead_webhook_delays_no_other_receiver_nor_the_silence_check() {
    let s = start_notifying(
        On::Sqlite,
        NotifySettings {
            silent_after: Some(Duration::from_secs(2)),
            ..Default::default()
        },
    );
    let device = s.db.create_token("dma-1", 0).unwrap();
    let admin = user(&s, "root", Role::Admin);
    // Holds every request for a minute: each attempt ends at its 10 s limit.
    let dead = Webhook::start(0, Duration::from_secs(60));
    let alive = Webhook::start(0, Duration::ZERO);
    for (name, hook) in [("dead", &dead), ("alive", &alive)] {
        let rule = json!({"name": name, "min_stage": 1, "channel": "webhook", "target": hook.url, "secret": "0123456789abcdef"});
        assert_eq!(post_as(&s, Some(&admin), "/api/v1/rules", rule).0, 201);
    }
    let alerts = (1..=20)
        .map(|k| alert("dma-1", &format!("m{k}"), k, "opened", 2, k as i64))
        .collect();
    deliver(&s, &device, "dma-1", alerts);
    until("the live receiver's 20", || alive.received().len() >= 20);
    // The silent device's alarm is raised (2 s of silence) while the dead receiver still holds
    // its first attempt: its second would come 10 s (the limit) + 5 s (the backoff) after it.
    until("the silence alarm", || {
        common::get(&s, "/api/v1/alarms/active")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "device_silent")
    });
    assert_eq!(
        dead.received().len(),
        1,
        "one attempt at a time at the dead receiver"
    );
}

/// One device's flood does not hold another device's notification back (issue #30, finding 6):
/// a receiver's notifications go out device by device in turn. Before, first in first out: the
/// other device's alarm waited behind the whole flood.
#[test]
fn a_flood_of_one_device_does_not_hold_back_another_devices_alarm() {
    let s = start_notifying(On::Sqlite, NotifySettings::default());
    let flooding = s.db.create_token("dma-f", 0).unwrap();
    let other = s.db.create_token("dma-o", 0).unwrap();
    let admin = user(&s, "root", Role::Admin);
    // 20 ms an answer: the flood takes seconds to go out.
    let hook = Webhook::start(0, Duration::from_millis(20));
    let rule = json!({"name": "all", "min_stage": 1, "channel": "webhook", "target": hook.url, "secret": "0123456789abcdef"});
    assert_eq!(post_as(&s, Some(&admin), "/api/v1/rules", rule).0, 201);
    let flood = (1..=300)
        .map(|k| alert("dma-f", &format!("f{k}"), k, "opened", 2, (k % 60) as i64))
        .collect();
    deliver(&s, &flooding, "dma-f", flood);
    deliver(
        &s,
        &other,
        "dma-o",
        vec![alert("dma-o", "o1", 1, "opened", 2, 0)],
    );
    let device_of = |r: &hydrowatch_sinks::Request| -> String {
        let n: Value = serde_json::from_slice(&r.body).unwrap();
        n["device_id"].as_str().unwrap_or_default().to_string()
    };
    until("the other device's alarm", || {
        hook.received().iter().any(|r| device_of(r) == "dma-o")
    });
    let before = hook
        .received()
        .iter()
        .take_while(|r| device_of(r) != "dma-o")
        .count();
    assert!(before < 100, "{before} of the flood went out before it");
    until("the flood", || hook.received().len() >= 301);
}

/// Webhooks go to public addresses only unless the server allows private ones (issue #30,
/// finding 11): a rule to loopback, the cloud metadata address or the internal network is
/// refused, and one whose host name resolves to such an address is never reached.
#[test]
fn webhooks_reach_private_addresses_only_when_the_server_allows_it() {
    use hydrowatch_server::notify::channels::webhook::{private_address, private_target};
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(&dir.path().join("s.db")).unwrap());
    db.add_user("root", Role::Admin, "root-password", 0)
        .unwrap();
    let admin = db.create_operator_token("root", 0).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _server = hydrowatch_server::Server::new(db.clone(), Default::default())
        .spawn(listener)
        .unwrap();
    let hook = Webhook::start(0, Duration::ZERO);
    let add = |target: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{url}/api/v1/rules"))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("r{}", target.len()), "min_stage": 1, "channel": "webhook", "target": target, "secret": "0123456789abcdef"}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    for target in [
        hook.url.as_str(),
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        "http://[::1]:8080/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://2130706433/x",
    ] {
        let (code, body) = add(target);
        assert_eq!(code, 422, "{target}: {body}");
        assert!(body.contains("--private-webhooks"), "{body}");
    }
    assert_eq!(add("https://hooks.utility.example/alarms").0, 201);
    // A name that resolves to loopback only: added, but the notifier never reaches it.
    let port = hook.url.rsplit(':').next().unwrap();
    assert_eq!(add(&format!("http://localhost:{port}")).0, 201);
    let device = db.create_token("dma-1", 0).unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/api/v1/ingest"))
        .bearer_auth(&device)
        .header("content-type", "application/json")
        .body(batch(
            "dma-1",
            vec![alert("dma-1", "m1", 1, "opened", 3, 0)],
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    std::thread::sleep(Duration::from_secs(4));
    assert!(hook.received().is_empty(), "{:?}", hook.received().len());
    for public in ["93.184.215.14", "2606:4700::1111", "8.8.8.8"] {
        assert!(!private_address(public.parse().unwrap()), "{public}");
    }
    for private in [
        "100.64.0.1",
        "fd00::1",
        "fe80::1",
        "192.168.1.1",
        "172.16.0.1",
        "224.0.0.1",
    ] {
        assert!(private_address(private.parse().unwrap()), "{private}");
    }
    assert!(private_target("https://hooks.utility.example/x").is_none());
}

/// A server mailing through `mailer`, with one e-mail rule and one alarm delivered to it.
fn mail_one_alarm(mailer: hydrowatch_server::notify::Mailer) -> common::Server {
    let s = start_notifying(
        On::Sqlite,
        NotifySettings {
            mailer: Some(mailer),
            ..Default::default()
        },
    );
    let device = s.db.create_token("dma-1", 0).unwrap();
    let admin = user(&s, "root", Role::Admin);
    let rule = json!({"name": "night shift", "min_stage": 1, "channel": "email", "target": "oncall@utility.example"});
    assert_eq!(post_as(&s, Some(&admin), "/api/v1/rules", rule).0, 201);
    deliver(
        &s,
        &device,
        "dma-1",
        vec![alert("dma-1", "m1", 7, "opened", 3, 0)],
    );
    s
}

/// The relay's password never goes in clear (issue #30, finding 2): `smtp://` insists on
/// STARTTLS, so a relay that does not offer it gets neither the password nor the mail; in clear
/// only when the URL asks for it by name, and then never with credentials.
#[test]
fn the_relays_password_never_goes_in_clear() {
    use hydrowatch_server::notify::Mailer;
    let from = "hydrowatch@utility.example";
    // A relay without TLS, the password in an smtp:// URL: nothing goes.
    let plain = SmtpSink::start_plain();
    let url = format!("smtp://hydrowatch:s3cret@localhost:{}", plain.port);
    let _s = mail_one_alarm(Mailer::new(&url, from, None).unwrap());
    until("the attempt", || plain.sessions() > 0);
    std::thread::sleep(Duration::from_secs(2));
    assert!(plain.auths().is_empty(), "{:?}", plain.auths());
    assert!(plain.received().is_empty());
    // In clear only by name, and never with credentials.
    let refused = Mailer::new("smtp+insecure://hydrowatch:s3cret@localhost:25", from, None);
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("never sent without TLS")
    );
    let insecure = SmtpSink::start_plain();
    let mailer = Mailer::new(
        &format!("smtp+insecure://localhost:{}", insecure.port),
        from,
        None,
    )
    .unwrap();
    assert!(mailer.insecure());
    let _s = mail_one_alarm(mailer);
    until("the e-mail in clear", || !insecure.received().is_empty());
    assert!(!insecure.received()[0].tls && insecure.auths().is_empty());
    // With STARTTLS the credentials go, percent-decoded, after it only.
    let sink = SmtpSink::start();
    let url = format!("smtp://hydrowatch:s3%40cret@localhost:{}", sink.port);
    let mailer = Mailer::new(&url, from, Some(sink.cert_pem.as_bytes())).unwrap();
    assert!(!mailer.insecure());
    let _s = mail_one_alarm(mailer);
    until("the e-mail", || !sink.received().is_empty());
    let auths = sink.auths();
    assert_eq!(auths.len(), 1, "{auths:?}");
    assert!(auths[0].tls && sink.received()[0].tls);
    use base64::Engine as _;
    let credentials = auths[0].lines.iter().rev().find_map(|l| {
        base64::engine::general_purpose::STANDARD
            .decode(l.rsplit(' ').next()?)
            .ok()
    });
    assert_eq!(credentials.as_deref(), Some(&b"\0hydrowatch\0s3@cret"[..]));
    // Another scheme, no host: refused.
    for bad in ["http://localhost", "smtp://", "smtps://:25"] {
        assert!(Mailer::new(bad, from, None).is_err(), "{bad}");
    }
}

/// Stores `messages` of `device` as the ingest does.
fn ingest(db: &Db, device: &str, messages: Vec<Value>, now: i64) {
    let checked: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| hydrowatch_protocol::check(i, m, device, now).unwrap())
        .collect();
    db.ingest(device, &checked, now).unwrap();
}

fn the_queue_groups_a_flood_skips_the_shelved_and_reminds_once(on: On) {
    let dir = tempfile::tempdir().unwrap();
    let db = match on {
        On::Sqlite => Db::open(&dir.path().join("s.db")).unwrap(),
        On::Postgres => Db::connect(&hydrowatch_pgtest::database()).unwrap(),
    };
    let t0 = chrono::Utc::now().timestamp();
    db.add_user("ana", Role::Operator, "ana-password", 0)
        .unwrap();
    let ana = User {
        name: "ana".into(),
        role: Role::Operator,
    };
    let rule = |name: &str, device: &str, group: u32, remind: Option<u32>| {
        db.add_rule(
            &serde_json::from_value(json!({
                "name": name, "devices": [device], "min_stage": 1, "channel": "webhook",
                "target": "http://127.0.0.1:9/x", "secret": "0123456789abcdef",
                "group_seconds": group, "remind_minutes": remind,
            }))
            .unwrap(),
            0,
        )
        .unwrap()
        .id
    };
    let (flood, remind, shelved) = (
        rule("flood", "dma-f", 60, None),
        rule("remind", "dma-r", 0, Some(30)),
        rule("shelved", "dma-s", 0, None),
    );
    let rules = db.rules().unwrap();
    // A flood: 50 alarms in a minute, one message with all of them.
    let flood_alarms: Vec<Value> = (1..=50)
        .map(|k| alert("dma-f", &format!("f{k}"), k, "opened", 2, (k % 60) as i64))
        .collect();
    ingest(&db, "dma-f", flood_alarms, t0);
    // Shelved before its transition is planned: nothing; its escalation: nothing either.
    ingest(
        &db,
        "dma-s",
        vec![alert("dma-s", "s1", 1, "opened", 2, 0)],
        t0,
    );
    db.act(
        "dma-s",
        1,
        &ana,
        &hydrowatch_server::alarms::Action::Shelve {
            reason: "pump trial".into(),
            minutes: None,
        },
        t0,
    )
    .unwrap();
    ingest(
        &db,
        "dma-s",
        vec![alert("dma-s", "s2", 1, "escalated", 4, 1)],
        t0,
    );
    // Three alarms for the rule with a reminder.
    let r: Vec<Value> = (1..=3)
        .map(|k| alert("dma-r", &format!("r{k}"), k, "opened", 3, k as i64))
        .collect();
    ingest(&db, "dma-r", r, t0);
    db.plan_notifications(&rules, t0).unwrap();

    let of = |rule: i64, now: i64| -> Vec<hydrowatch_server::notify::queue::Queued> {
        db.due_notifications(now, 1000)
            .unwrap()
            .into_iter()
            .filter(|q| q.rule_id == rule)
            .collect()
    };
    assert!(of(flood, t0 + 59).is_empty(), "still gathering");
    let grouped = of(flood, t0 + 60);
    assert_eq!(grouped.len(), 1, "{grouped:?}");
    assert_eq!((grouped[0].count, grouped[0].alarms.len()), (50, 50));
    let ids: HashSet<u64> = grouped[0].alarms.iter().map(|a| a.alarm_id).collect();
    assert_eq!(ids.len(), 50);
    assert!(
        of(shelved, t0 + 3600).is_empty(),
        "a shelved alarm notifies nobody"
    );

    let first = of(remind, t0);
    assert_eq!(first.len(), 3, "one message each without a window");
    for q in &first {
        db.notification_sent(q.id, t0).unwrap();
    }
    db.act(
        "dma-r",
        2,
        &ana,
        &hydrowatch_server::alarms::Action::Acknowledge(None),
        t0 + 10,
    )
    .unwrap();
    db.act(
        "dma-r",
        3,
        &ana,
        &hydrowatch_server::alarms::Action::Shelve {
            reason: "crew on site".into(),
            minutes: Some(60),
        },
        t0 + 10,
    )
    .unwrap();
    db.plan_notifications(&rules, t0 + 30 * 60 - 1).unwrap();
    assert!(of(remind, t0 + 30 * 60).is_empty(), "not yet");
    db.plan_notifications(&rules, t0 + 30 * 60 + 1).unwrap();
    let reminders = of(remind, t0 + 30 * 60 + 1);
    assert_eq!(
        reminders.len(),
        1,
        "only the unacknowledged, unshelved one: {reminders:?}"
    );
    assert_eq!(
        (reminders[0].kind.as_str(), reminders[0].alarms[0].alarm_id),
        ("reminder", 1)
    );
    db.notification_sent(reminders[0].id, t0 + 30 * 60 + 1)
        .unwrap();
    db.plan_notifications(&rules, t0 + 5 * 3600).unwrap();
    assert!(of(remind, t0 + 5 * 3600).is_empty(), "reminded once");

    // A failed attempt waits, then is tried again; after a day it is given up.
    let q = &grouped[0];
    assert!(
        !db.notification_failed(q, "connection refused", t0 + 60)
            .unwrap()
    );
    assert!(of(flood, t0 + 64).is_empty());
    assert_eq!(of(flood, t0 + 65).len(), 1);
    assert!(
        db.notification_failed(q, "connection refused", t0 + 24 * 3600 + 1)
            .unwrap()
    );
    assert!(of(flood, t0 + 48 * 3600).is_empty());
    assert_eq!(db.notification_counts().unwrap(), (4, 0, 1));
}

on_both!(the_queue_groups_a_flood_skips_the_shelved_and_reminds_once);

/// A device silent for longer than the span gets the server's `device_silent` alarm, notified
/// like any; it clears when the device sends again.
fn a_silent_device_raises_device_silent_which_clears_when_it_sends(on: On) {
    let s = start_notifying(
        on,
        NotifySettings {
            silent_after: Some(Duration::from_secs(2)),
            ..Default::default()
        },
    );
    let device = s.db.create_token("dma-1", 0).unwrap();
    s.db.create_token("dma-never", 0).unwrap();
    let admin = user(&s, "root", Role::Admin);
    let hook = Webhook::start(0, Duration::ZERO);
    let rule = json!({"name": "silence", "kinds": ["device_silent"], "min_stage": 1, "channel": "webhook",
                      "target": hook.url, "secret": "0123456789abcdef"});
    assert_eq!(post_as(&s, Some(&admin), "/api/v1/rules", rule).0, 201);
    let heartbeat = |id: &str| {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        json!({"device_id": "dma-1", "message_id": id, "kind": "heartbeat", "created_at": now, "body": {}})
    };
    deliver(&s, &device, "dma-1", vec![heartbeat("h1")]);
    let silent = || -> Option<Value> {
        common::get(&s, "/api/v1/alarms/active")
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "device_silent")
            .cloned()
    };
    until("the silence alarm", || silent().is_some());
    let alarm = silent().unwrap();
    assert_eq!(
        alarm["device_id"], "dma-1",
        "a device never heard from is not silent"
    );
    assert_eq!(
        (alarm["active"].clone(), alarm["stage"].clone()),
        (json!(true), json!(3))
    );
    let id = alarm["alarm_id"].as_u64().unwrap();
    assert!(id >= hydrowatch_protocol::SERVER_ALARM_IDS, "{id}");
    until("its notification", || !hook.received().is_empty());
    let n: Value = serde_json::from_slice(&hook.received()[0].body).unwrap();
    assert_eq!(n["alarms"][0]["kind"], "device_silent");
    // Heard again: cleared (and listed until acknowledged, as every cleared alarm).
    deliver(&s, &device, "dma-1", vec![heartbeat("h2")]);
    until("the clearing", || {
        silent().is_some_and(|a| a["active"] == false)
    });
    let (code, history) = common::get_as(&s, Some(&admin), &format!("/api/v1/alarms/dma-1/{id}"));
    assert_eq!(code, 200);
    let states = common::transition_states(&history);
    assert_eq!(states, ["opened", "cleared"]);
    // (Silent again 2 s later, a new alarm may open: only this alarm's notifications count.)
    let of_this = hook
        .received()
        .iter()
        .filter(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["alarms"][0]["alarm_id"] == id
        })
        .count();
    assert_eq!(of_this, 1, "the clearing notifies nobody");
    // A device may not send the server's alarm, nor use its ids.
    let mut forged = alert("dma-1", "f1", 1, "opened", 3, 0);
    forged["body"]["kind"] = json!("device_silent");
    assert_eq!(post(&s, Some(&device), batch("dma-1", vec![forged])).0, 422);
    let mut high = alert("dma-1", "f2", 1, "opened", 3, 0);
    high["body"]["alarm_id"] = json!(hydrowatch_protocol::SERVER_ALARM_IDS);
    assert_eq!(post(&s, Some(&device), batch("dma-1", vec![high])).0, 422);
}

on_both!(a_silent_device_raises_device_silent_which_clears_when_it_sends);

/// Two server processes' notifiers on one PostgreSQL (each with its own connections, as two
/// replicas have): every alarm is notified once, every delivery id arrives once, and a silent
/// device gets one `device_silent` alarm, not one per replica.
#[test]
fn two_replicas_notify_each_alarm_once_and_raise_one_silence_alarm() {
    let url = hydrowatch_pgtest::database();
    let db = std::sync::Arc::new(Db::connect(&url).unwrap());
    let hook = Webhook::start(0, Duration::ZERO);
    let rule = serde_json::from_value(json!({"name": "all", "min_stage": 1, "channel": "webhook",
        "target": hook.url, "secret": "0123456789abcdef", "group_seconds": 0}))
    .unwrap();
    db.add_rule(&rule, 0).unwrap();
    let now = chrono::Utc::now().timestamp();
    // A device heard from an hour ago: silent.
    db.create_token("dma-quiet", 0).unwrap();
    let heartbeat = json!({"device_id": "dma-quiet", "message_id": "h", "kind": "heartbeat",
        "created_at": hydrowatch_protocol::rfc3339(now - 3600), "body": {}});
    ingest(&db, "dma-quiet", vec![heartbeat], now - 3600);
    let settings = NotifySettings {
        every: Duration::from_millis(100),
        silent_after: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let db = std::sync::Arc::new(Db::connect(&url).unwrap());
            // The receiver listens on 127.0.0.1.
            hydrowatch_server::notify::start(db, settings.clone(), true).unwrap()
        })
        .collect();
    // 5 devices, 40 alarms each, arriving in 8 batches while both notifiers run.
    for d in 0..5 {
        db.create_token(&format!("dma-{d}"), 0).unwrap();
    }
    for round in 0..8 {
        for d in 0..5 {
            let device = format!("dma-{d}");
            let messages: Vec<Value> = (0..5)
                .map(|k| {
                    let alarm = round * 5 + k + 1;
                    let mut m = alert(&device, &format!("m{alarm}"), alarm, "opened", 3, 0);
                    m["created_at"] = json!(hydrowatch_protocol::rfc3339(now));
                    m
                })
                .collect();
            ingest(&db, &device, messages, now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let notified = || -> Vec<(String, u64)> {
        hook.received()
            .iter()
            .flat_map(|r| {
                let n: Value = serde_json::from_slice(&r.body).unwrap();
                n["alarms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        (
                            n["device_id"].as_str().unwrap().to_string(),
                            a["alarm_id"].as_u64().unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    until("201 alarms notified", || notified().len() >= 201);
    std::thread::sleep(Duration::from_secs(1));
    drop(replicas);
    let all = notified();
    let distinct: HashSet<&(String, u64)> = all.iter().collect();
    assert_eq!(all.len(), 201, "each alarm once (200 and the silence)");
    assert_eq!(distinct.len(), 201);
    let deliveries: Vec<String> = hook
        .received()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["delivery"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let unique: HashSet<&String> = deliveries.iter().collect();
    assert_eq!(unique.len(), deliveries.len(), "a delivery id sent twice");
    let silent: Vec<_> = db
        .alarms(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|a| a.alert.kind == hydrowatch_protocol::AlarmKind::DeviceSilent)
        .collect();
    assert_eq!(silent.len(), 1, "{silent:?}");
}
