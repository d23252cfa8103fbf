//! Slow and silent clients against the real server (issue #15): connections that send nothing,
//! headers a byte at a time, or a body that never ends are closed within the server's limits,
//! and a request beyond the connection limit is answered at once instead of waiting.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{On, start_limited};

fn limits() -> hydrowatch_server::Limits {
    hydrowatch_server::Limits {
        max_connections: 40,
        max_per_address: 0,
        header_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        trusted_proxies: hydrowatch_server::TrustedProxies::NONE,
    }
}

/// One client cannot hold every slot (issue #30, finding 9): past its own limit, its next
/// connection is answered 503 at once while another address is served.
fn one_client_address_cannot_hold_every_connection(on: On) {
    let s = start_limited(
        on,
        hydrowatch_server::RateLimit::OFF,
        hydrowatch_server::Limits {
            max_per_address: 10,
            ..limits()
        },
    );
    let silent: Vec<TcpStream> = (0..10).map(|_| open(&s.url)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let busy = get(&s.url, "/api/v1/openapi.json");
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    // From 127.0.0.2: served.
    let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().unwrap();
    let client = reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = client
        .get(format!("http://{addr}/api/v1/openapi.json"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(silent);
}

on_both!(one_client_address_cannot_hold_every_connection);

/// Behind a trusted reverse proxy (issue #30, finding 9): its connections are not limited per
/// address, and failed logins count against the client address it forwards, so one client's
/// failures lock out neither the proxy's other clients nor the owner; a header from anybody else
/// is not believed.
fn a_trusted_proxy_forwards_each_clients_address(on: On) {
    let s = start_limited(
        on,
        hydrowatch_server::RateLimit::OFF,
        hydrowatch_server::Limits {
            max_per_address: 10,
            trusted_proxies: hydrowatch_server::TrustedProxies::new(
                vec!["127.0.0.1/32".parse().unwrap()],
                "X-Forwarded-For",
            )
            .unwrap(),
            ..limits()
        },
    );
    let silent: Vec<TcpStream> = (0..12).map(|_| open(&s.url)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let served = get(&s.url, "/api/v1/openapi.json");
    assert!(served.starts_with("HTTP/1.1 200"), "{}", &served[..40]);
    drop(silent);

    common::user(&s, "ana", hydrowatch_server::Role::Operator);
    let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().unwrap();
    // A login through the proxy (from 127.0.0.1), or from 127.0.0.2, which is no proxy, with
    // the header saying `client`.
    let log_in = |from: [u8; 4], client: &str, password: &str| {
        let browser = reqwest::blocking::Client::builder()
            .local_address(std::net::IpAddr::from(from))
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(
                [(
                    "x-forwarded-for".parse().unwrap(),
                    format!("6.6.6.6, {client}").parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap();
        let url = format!("http://{addr}");
        let page = browser.get(format!("{url}/login")).send().unwrap();
        let (csrf, _) = common::set_cookie(&page, "hw_login").unwrap();
        browser
            .post(format!("{url}/login"))
            .header("cookie", format!("hw_login={csrf}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "ana"),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..5 {
        assert_eq!(
            log_in([127, 0, 0, 1], "198.51.100.1", "wrong-password"),
            401
        );
    }
    assert_eq!(log_in([127, 0, 0, 1], "198.51.100.1", "ana-password"), 429);
    // Another client of the same proxy: not locked out.
    assert_eq!(log_in([127, 0, 0, 1], "198.51.100.2", "ana-password"), 303);
    // Not a proxy: its header changes nothing.
    for _ in 0..5 {
        assert_eq!(
            log_in([127, 0, 0, 2], "198.51.100.3", "wrong-password"),
            401
        );
    }
    assert_eq!(log_in([127, 0, 0, 2], "198.51.100.4", "ana-password"), 429);
}

on_both!(a_trusted_proxy_forwards_each_clients_address);

/// A connection to the server at `url` (`http://host:port`), reads timing out after 10 s.
fn open(url: &str) -> TcpStream {
    let s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything the server sends until it closes the connection (or 10 s pass).
fn read_all(mut s: TcpStream) -> String {
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    String::from_utf8_lossy(&text).into_owned()
}

fn get(url: &str, path: &str) -> String {
    let mut s = open(url);
    // A server at its limit answers 503 and closes without reading: the write may fail.
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    read_all(s)
}

fn slow_and_silent_clients_cannot_starve_the_server(on: On) {
    let s = start_limited(on, hydrowatch_server::RateLimit::OFF, limits());
    // Every slot taken by connections that send nothing.
    let silent: Vec<TcpStream> = (0..40).map(|_| open(&s.url)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let busy = get(&s.url, "/api/v1/openapi.json");
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The server closes them after the header timeout.
    let started = Instant::now();
    for c in silent {
        assert_eq!(read_all(c), "");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(get(&s.url, "/api/v1/openapi.json").starts_with("HTTP/1.1 200"));

    // A kept-alive connection that goes quiet after its first request is closed too.
    let mut idle = open(&s.url);
    write!(idle, "GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let started = Instant::now();
    let answer = read_all(idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Headers a byte every 200 ms (slowloris): closed although bytes keep coming.
    let mut slow = open(&s.url);
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in
        b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
    {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = read_all(slow);
    assert!(closed || !answer.contains(" 200 "), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // A body that never ends: 408 after the request timeout.
    let mut stalled = open(&s.url);
    write!(
        stalled,
        "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nAuthorization: Bearer t\r\n\r\n{{\"device_id\""
    )
    .unwrap();
    let started = Instant::now();
    let answer = read_all(stalled);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(get(&s.url, "/api/v1/openapi.json").starts_with("HTTP/1.1 200"));
}

on_both!(slow_and_silent_clients_cannot_starve_the_server);
