//! The operators' side over real sockets, on SQLite and PostgreSQL: who may read and act (a
//! device's token only ingests), the alarm workflow through the API (acknowledge, shelve,
//! unshelve, comment, assign, with their audit records), logins (sessions, CSRF, the failed-login
//! limit) and TLS.

mod common;

use common::{
    On, alert, batch, browser_like, deliver, get, get_as, log_in, post, post_as, start, user,
};
use hydrowatch_server::Role;
use serde_json::json;

fn people_need_credentials_and_a_device_token_only_ingests(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    deliver(&s, &device, "dma-1", vec![]);
    for path in [
        "/api/v1/devices",
        "/api/v1/alarms",
        "/api/v1/alarms/active",
        "/api/v1/accuracy?device=dma-1",
    ] {
        let (code, body) = get_as(&s, None, path);
        assert_eq!(code, 401, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("--operator"),
            "{body}"
        );
        let (code, body) = get_as(&s, Some(&device), path);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("can only ingest"),
            "{body}"
        );
        assert_eq!(get_as(&s, Some("nonsense"), path).0, 401, "{path}");
        assert_eq!(get_as(&s, Some(&s.reader), path).0, 200, "{path}");
    }
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/devices", s.url))
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"hydrowatch\""
    );
    // An operator's token does not ingest.
    let ana = user(&s, "ana", Role::Operator);
    assert_eq!(post(&s, Some(&ana), batch("dma-1", vec![])).0, 401);
    // Pages send a caller without a session to the login page, and come back after it.
    for path in ["/", "/devices/dma-1", "/alarms/dma-1/1", "/load"] {
        let r = browser_like()
            .get(format!("{}{path}", s.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{path}");
        let to = r.headers()["location"].to_str().unwrap();
        assert_eq!(to, format!("/login?next={path}"), "{path}");
    }
    // The OpenAPI document stays public.
    assert_eq!(get_as(&s, None, "/api/v1/openapi.json").0, 200);
}

on_both!(people_need_credentials_and_a_device_token_only_ingests);

fn the_alarm_workflow_through_the_api(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    let send = |messages| assert_eq!(post(&s, Some(&device), batch("dma-1", messages)).0, 200);
    send(vec![alert("dma-1", "m1", 1, "opened", 2, 0)]);
    let ana = user(&s, "ana", Role::Operator);
    let ben = user(&s, "ben", Role::Admin);
    let act = |token: &str, what: &str, body| {
        post_as(
            &s,
            Some(token),
            &format!("/api/v1/alarms/dma-1/1/{what}"),
            body,
        )
    };
    let active = get(&s, "/api/v1/alarms/active");
    assert_eq!(active.as_array().unwrap().len(), 1, "{active}");
    assert_eq!(active[0]["acknowledged"], false);
    assert_eq!(active[0]["stage"], 2);

    // A viewer may not act; an operator acknowledges once.
    assert_eq!(act(&s.reader, "ack", json!({})).0, 403);
    let (code, status) = act(&ana, "ack", json!({"comment": "looking"}));
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        (
            status["acknowledged"].clone(),
            status["acknowledged_by"].clone()
        ),
        (json!(true), json!("ana"))
    );
    let (code, body) = act(&ben, "ack", json!({}));
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("by ana"), "{body}");
    // A rise of stage asks for a new acknowledgement; a fall does not.
    send(vec![alert("dma-1", "m2", 1, "escalated", 3, 1)]);
    assert_eq!(get(&s, "/api/v1/alarms/active")[0]["acknowledged"], false);
    assert_eq!(act(&ben, "ack", json!({})).0, 200);
    send(vec![alert("dma-1", "m3", 1, "de-escalated", 2, 2)]);
    assert_eq!(get(&s, "/api/v1/alarms/active")[0]["acknowledged"], true);

    // Shelving: a reason is required, the duration bounded; unshelve once.
    assert_eq!(act(&ana, "shelve", json!({"reason": "  "})).0, 422);
    assert_eq!(
        act(&ana, "shelve", json!({"reason": "pump test", "minutes": 0})).0,
        422
    );
    assert_eq!(
        act(
            &ana,
            "shelve",
            json!({"reason": "pump test", "minutes": 50000})
        )
        .0,
        422
    );
    assert_eq!(
        act(&ana, "shelve", json!({"reason": "x", "extra": 1})).0,
        422
    );
    let (code, status) = act(
        &ana,
        "shelve",
        json!({"reason": "pump test", "minutes": 60}),
    );
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["shelved"], true);
    let until = status["shelved_until"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 3590..=now + 3610).contains(&until),
        "{until} vs {now}"
    );
    assert_eq!(status["shelve_reason"], "pump test");
    assert_eq!(act(&ana, "unshelve", json!({})).0, 200);
    assert_eq!(act(&ana, "unshelve", json!({})).0, 409);
    // One-shot: shelved until it clears, then not shelved any more.
    let (_, status) = act(&ana, "shelve", json!({"reason": "known leak, crew booked"}));
    assert_eq!(
        (
            status["shelved"].clone(),
            status.get("shelved_until").cloned()
        ),
        (json!(true), None)
    );
    send(vec![alert("dma-1", "m4", 1, "cleared", 0, 3)]);
    let (_, history) = get_as(&s, Some(&ana), "/api/v1/alarms/dma-1/1");
    assert_eq!(history["status"]["shelved"], false, "{history}");
    assert_eq!(history["status"]["active"], false);
    // Cleared and acknowledged: nothing left to handle.
    assert!(
        get(&s, "/api/v1/alarms/active")
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        act(&ana, "shelve", json!({"reason": "again"})).0,
        422,
        "cleared: only for a time"
    );

    // Comments and assignment.
    assert_eq!(act(&ana, "comment", json!({"comment": ""})).0, 422);
    assert_eq!(
        act(&ana, "comment", json!({"comment": "x".repeat(1001)})).0,
        422
    );
    assert_eq!(
        act(&ana, "comment", json!({"comment": "valve 12 closed"})).0,
        200
    );
    assert_eq!(act(&ana, "assign", json!({"user": "nobody-here"})).0, 422);
    let (code, status) = act(&ana, "assign", json!({"user": "ben"}));
    assert_eq!((code, status["assigned_to"].clone()), (200, json!("ben")));
    assert_eq!(act(&ana, "assign", json!({})).0, 200);

    // The history: the device's transitions and every action, who and what, in order.
    let (_, history) = get_as(&s, Some(&s.reader), "/api/v1/alarms/dma-1/1");
    let states = common::transition_states(&history);
    assert_eq!(states, ["opened", "escalated", "de-escalated", "cleared"]);
    let actions: Vec<(String, String)> = history["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["user"].as_str().unwrap().into(),
                a["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("ana", "acknowledged"),
        ("ben", "acknowledged"),
        ("ana", "shelved"),
        ("ana", "unshelved"),
        ("ana", "shelved"),
        ("ana", "commented"),
        ("ana", "assigned"),
        ("ana", "assigned"),
    ];
    assert_eq!(
        actions,
        expected.map(|(u, a)| (u.to_string(), a.to_string()))
    );
    assert_eq!(history["actions"][0]["comment"], "looking");
    assert_eq!(history["actions"][2]["comment"], "pump test");
    assert_eq!(history["actions"][6]["assignee"], "ben");
    assert!(history["actions"][7].get("assignee").is_none());

    // Unknown alarms and ids that are not numbers.
    assert_eq!(
        post_as(&s, Some(&ana), "/api/v1/alarms/dma-1/99/ack", json!({})).0,
        404
    );
    assert_eq!(
        post_as(&s, Some(&ana), "/api/v1/alarms/dma-1/x/ack", json!({})).0,
        404
    );
    assert_eq!(get_as(&s, Some(&ana), "/api/v1/alarms/dma-2/1").0, 404);
}

on_both!(the_alarm_workflow_through_the_api);

/// Eight acknowledgements of one alarm at once record exactly one.
fn acknowledgements_at_once_record_one(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    deliver(
        &s,
        &device,
        "dma-1",
        vec![alert("dma-1", "m1", 1, "opened", 4, 0)],
    );
    let tokens: Vec<String> = (0..8)
        .map(|i| user(&s, &format!("op{i}"), Role::Operator))
        .collect();
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|t| {
                scope.spawn(|| post_as(&s, Some(t), "/api/v1/alarms/dma-1/1/ack", json!({})).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 409).count(), 7, "{codes:?}");
    let history = s.db.alarm_history("dma-1", 1, 0).unwrap().unwrap();
    assert_eq!(history.actions.len(), 1, "{history:?}");
}

on_both!(acknowledgements_at_once_record_one);

/// A login opens a session (HttpOnly, SameSite=Strict cookie) whose requests that change
/// something need its CSRF token; logout ends it; a login form not from this server is refused;
/// after five failures a name is refused even with its password.
fn logins_sessions_and_their_limits(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    deliver(
        &s,
        &device,
        "dma-1",
        vec![alert("dma-1", "m1", 1, "opened", 2, 0)],
    );
    user(&s, "ana", Role::Operator);
    let (code, cookie) = log_in(&s, "ana", "ana-password");
    assert_eq!(code, 303);
    let (session, line) = cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(line.contains(attribute), "{attribute}: {line}");
    }
    assert!(!line.contains("Secure"), "no TLS here: {line}");
    let page = common::browser_like()
        .get(format!("{}/login", s.url))
        .send()
        .unwrap();
    assert!(page.headers().get("strict-transport-security").is_none());
    let with_session = |csrf: Option<&str>| {
        let mut r = browser_like()
            .post(format!("{}/api/v1/alarms/dma-1/1/comment", s.url))
            .header("cookie", format!("hw_session={session}"))
            .json(&json!({"comment": "from a script with a session"}));
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(with_session(None), 403);
    assert_eq!(with_session(Some("0".repeat(48).as_str())), 403);
    let csrf = common::csrf_of(&s, &session);
    assert_eq!(with_session(Some(&csrf)), 200);
    // Reading needs no CSRF token.
    let r = browser_like()
        .get(format!("{}/api/v1/alarms/active", s.url))
        .header("cookie", format!("hw_session={session}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Logging out ends the session.
    let r = browser_like()
        .post(format!("{}/logout", s.url))
        .header("cookie", format!("hw_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(with_session(Some(&csrf)), 401);

    // A login form whose token is not the page's cookie (another site's form) is refused.
    let r = browser_like()
        .post(format!("{}/login", s.url))
        .header("cookie", "hw_login=aaaa")
        .form(&[
            ("csrf", "bbbb"),
            ("name", "ana"),
            ("password", "ana-password"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(common::set_cookie(&r, "hw_session").is_none());

    // Wrong passwords, then the limit: refused even with the right one.
    for _ in 0..5 {
        let (code, cookie) = log_in(&s, "ana", "wrong-password");
        assert_eq!((code, cookie.is_none()), (401, true));
    }
    assert_eq!(log_in(&s, "ana", "ana-password").0, 429);
    // The owner elsewhere is not locked out (issue #30, finding 9): failures lock a name from
    // the address they came from only.
    let elsewhere = reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = elsewhere.get(format!("{}/login", s.url)).send().unwrap();
    let (csrf, _) = common::set_cookie(&page, "hw_login").unwrap();
    let r = elsewhere
        .post(format!("{}/login", s.url))
        .header("cookie", format!("hw_login={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "ana"),
            ("password", "ana-password"),
            ("next", "/"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // An unknown name is answered like a wrong password.
    assert_eq!(log_in(&s, "nobody", "whatever-it-is").0, 401);
}

on_both!(logins_sessions_and_their_limits);

/// After a login, the browser goes back only to a page of this server, whatever `next` says
/// and however a browser would read it (issue #30, finding 8).
fn a_login_goes_back_only_to_a_page_of_this_server(on: On) {
    let s = start(on);
    user(&s, "ana", Role::Operator);
    let cases = [
        ("/devices/dma-1?x=1", "/devices/dma-1?x=1"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\r\nSet-Cookie: hw_session=forged", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
    ];
    for (next, to) in cases {
        let r = common::log_in_form(&s.url, "ana", "ana-password", next);
        assert_eq!(r.status().as_u16(), 303, "{next:?}");
        assert_eq!(r.headers()["location"], to, "{next:?}");
    }
    // The login page's own form carries only a local path on.
    let page = common::browser_like()
        .get(format!("{}/login?next=/%09/evil.example", s.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("name=\"next\" value=\"/\""), "{page}");
}

on_both!(a_login_goes_back_only_to_a_page_of_this_server);

/// `serve --tls-cert/--tls-key`: the server speaks HTTPS with the given certificate, marks the
/// session cookie Secure, and a plain HTTP request gets no page.
#[test]
fn the_server_speaks_tls_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let tls = hydrowatch_server::tls_config(&cert_path, &key_path).unwrap();
    let db = std::sync::Arc::new(hydrowatch_server::Db::open(&dir.path().join("s.db")).unwrap());
    db.add_user("ana", Role::Operator, "ana-password", 0)
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = hydrowatch_server::ServerConfig {
        tls: Some(tls),
        ..Default::default()
    };
    let server = hydrowatch_server::Server::new(db, config)
        .spawn(listener)
        .unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let page = client.get(format!("{base}/login")).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    // Browsers are told to come back over TLS only (issue #30, finding 14).
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let (csrf, line) = common::set_cookie(&page, "hw_login").unwrap();
    assert!(line.contains("; Secure"), "{line}");
    let r = client
        .post(format!("{base}/login"))
        .header("cookie", format!("hw_login={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "ana"),
            ("password", "ana-password"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (_, line) = common::set_cookie(&r, "hw_session").unwrap();
    assert!(
        line.contains("; Secure") && line.contains("HttpOnly"),
        "{line}"
    );
    // Plain HTTP to the TLS port gets no page; a certificate nobody trusts is refused.
    let plain = reqwest::blocking::get(format!("http://{addr}/login"));
    assert!(!plain.is_ok_and(|r| r.status().is_success()));
    let untrusting = reqwest::blocking::Client::builder()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let e = untrusting.get(format!("{base}/login")).send().unwrap_err();
    assert!(format!("{e:?}").contains("ertificate"), "{e:?}");
    // A key file that is not a key is an error naming the file.
    let e = hydrowatch_server::tls_config(&cert_path, &cert_path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cert.pem"), "{e}");
    drop(server);
}

/// The list to handle (issue #30, findings 12 and 15): ordered by arrival where the device's
/// clock decides nothing (an alarm stamped 1970 by a wrong clock does not top it), read a page at
/// a time with the total in `X-Total-Count`, and an alarm cleared and acknowledged leaves it.
fn the_list_to_handle_is_paged_and_ordered_by_arrival(on: On) {
    let s = start(on);
    let device = s.db.create_token("dma-1", 0).unwrap();
    let send = |messages| assert_eq!(post(&s, Some(&device), batch("dma-1", messages)).0, 200);
    send(vec![alert("dma-1", "m1", 7, "opened", 2, 0)]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut wrong_clock = alert("dma-1", "m2", 3, "opened", 2, 0);
    wrong_clock["created_at"] = json!("1970-01-01T00:00:00Z");
    send(vec![wrong_clock, alert("dma-1", "m3", 9, "opened", 1, 0)]);
    let page = |query: &str| {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/alarms/active{query}", s.url))
            .bearer_auth(&s.reader)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let total = r.headers()["x-total-count"].to_str().unwrap().to_string();
        let body: serde_json::Value = r.json().unwrap();
        let ids: Vec<u64> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["alarm_id"].as_u64().unwrap())
            .collect();
        (total, ids)
    };
    // Stage 2 before stage 1; of the two at stage 2, the first to arrive first.
    assert_eq!(page(""), ("3".to_string(), vec![7, 3, 9]));
    assert_eq!(page("?limit=1&offset=1"), ("3".to_string(), vec![3]));
    assert_eq!(page("?offset=5").1, Vec::<u64>::new());
    assert_eq!(page("?device=dma-2"), ("0".to_string(), vec![]));
    // Cleared and acknowledged: no longer to handle.
    send(vec![alert("dma-1", "m4", 7, "cleared", 0, 1)]);
    assert_eq!(page("").0, "3");
    let ana = user(&s, "ana", Role::Operator);
    assert_eq!(
        post_as(&s, Some(&ana), "/api/v1/alarms/dma-1/7/ack", json!({})).0,
        200
    );
    assert_eq!(page(""), ("2".to_string(), vec![3, 9]));
    // Opened again after that: to handle again, in its place by its first arrival.
    send(vec![alert("dma-1", "m5", 7, "opened", 1, 2)]);
    assert_eq!(page(""), ("3".to_string(), vec![3, 7, 9]));
}

on_both!(the_list_to_handle_is_paged_and_ordered_by_arrival);
