//! The dashboard in headless Chromium (Debian's `chromium`, driven through its `chromedriver`
//! over WebDriver; `.ci/run` installs both): people log in, the pages render with their content,
//! an operator acknowledges an alarm and a viewer cannot, and screenshots are saved (into
//! `HYDROWATCH_SCREENSHOTS` when set, e.g. `docs/`, else a temporary folder).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{On, Server, alert, batch, forecast, post, start};
use fantoccini::{Client, Locator};
use hydrowatch_server::Role;

/// A chromedriver of this test on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium-driver; .ci/run installs it)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

/// A headless Chromium of `driver`, 1280 x 1000.
async fn chromium(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"]
        }),
    );
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("chromedriver starts a Chromium")
}

/// Runs `test` with a Chromium, closing it afterwards whatever happens.
fn in_chromium<F>(test: impl FnOnce(Client) -> F)
where
    F: std::future::Future<Output = ()>,
{
    let d = driver();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let c = chromium(&d).await;
        test(c).await;
    });
}

/// Waits until the browser shows the page at `path`, whole (its footer, the body's last
/// element, is there): a click that submits a form returns before the next page has loaded.
async fn arrive(c: &Client, path: &str) {
    let started = Instant::now();
    loop {
        let at = c.current_url().await.unwrap();
        if at.path() == path
            && c.find(Locator::Css("body > p.none:last-child"))
                .await
                .is_ok()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still at {at} instead of {path}: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs in through the login page as `name` (password: `NAME-password`, as `common::user`
/// makes it), coming from wherever the browser was sent.
async fn log_in(c: &Client, s: &Server, name: &str) {
    c.goto(&format!("{}/", s.url)).await.unwrap();
    arrive(c, "/login").await;
    c.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(&format!("{name}-password"))
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "/").await;
}

/// Where screenshots go.
fn screenshots() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("HYDROWATCH_SCREENSHOTS") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            (Some(dir), path)
        }
    }
}

async fn screenshot(c: &Client, path: &Path) {
    let png = c.screenshot().await.unwrap();
    assert!(
        png.len() > 10_000,
        "{}: {} bytes",
        path.display(),
        png.len()
    );
    std::fs::write(path, png).unwrap();
}

fn the_fleet_and_device_pages_render_in_chromium(on: On) {
    let s = start(on);
    let a = s.db.create_token("dma-017", 0).unwrap();
    let b = s.db.create_token("dma-022", 0).unwrap();
    s.db.create_token("dma-031", 0).unwrap();
    let mut fc = forecast("dma-017", "f1", 168);
    for (h, p) in fc["body"]["points"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        let v = 120.0 + 40.0 * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
        p["value"] = v.into();
        p["lower"] = (v - 12.0).into();
        p["upper"] = (v + 12.0).into();
    }
    // The week before the forecast, as the daily message carries it.
    let issued = chrono::DateTime::parse_from_rfc3339("2024-07-01T15:00:00Z")
        .unwrap()
        .timestamp();
    let actuals: Vec<serde_json::Value> = (1..=168)
        .map(|k| {
            let t = issued - k * 3600;
            let hour = ((t / 3600) % 24) as f64;
            let v = 118.0 + 42.0 * (hour / 24.0 * std::f64::consts::TAU).sin() + (k % 5) as f64;
            serde_json::json!({"time": chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "value": v})
        })
        .rev()
        .collect();
    fc["body"]["actuals"] = actuals.into();
    let messages = vec![
        alert("dma-017", "m1", 1, "opened", 4, 0),
        alert("dma-017", "m2", 2, "opened", 2, 5),
        alert("dma-017", "m3", 3, "opened", 3, 9),
        alert("dma-017", "m4", 3, "cleared", 0, 20),
        fc,
    ];
    assert_eq!(post(&s, Some(&a), batch("dma-017", messages)).0, 200);
    assert_eq!(post(&s, Some(&b), batch("dma-022", vec![])).0, 200);
    common::user(&s, "vera", Role::Viewer);
    let (_keep, out) = screenshots();
    let s = &s;
    in_chromium(|c| async move {
        log_in(&c, s, "vera").await;
        let fleet = c.source().await.unwrap();
        for needle in [
            "3 devices · 2 open alarms",
            r#"href="/devices/dma-017""#,
            "critical × 1",
            "caution × 1",
            "never",
        ] {
            assert!(fleet.contains(needle), "{needle}: {fleet}");
        }
        assert!(
            !fleet.contains("warning × 1"),
            "a cleared alarm is not open"
        );
        c.goto(&format!("{}/devices/dma-017", s.url)).await.unwrap();
        arrive(&c, "/devices/dma-017").await;
        let device = c.source().await.unwrap();
        for needle in [
            "flow_rate (m3/h): the week before and the next 7 days",
            "<svg",
            "<polygon",
            "actual (hourly mean)",
            "day-ahead accuracy",
            "alarm timeline (4 transitions",
            "cleared",
            "← fleet",
        ] {
            assert!(device.contains(needle), "{needle}: {device}");
        }

        screenshot(&c, &out.join("dashboard-device.png")).await;
        c.goto(&format!("{}/", s.url)).await.unwrap();
        arrive(&c, "/").await;
        screenshot(&c, &out.join("dashboard-fleet.png")).await;
        c.close().await.unwrap();
    });
}

on_both!(the_fleet_and_device_pages_render_in_chromium);

/// Markup in a device's id, or in the address of a device page, is shown as text and never
/// runs (the page would otherwise set `data-x` to the joined word): every page is escaped by
/// the template engine and forbids scripts by its Content-Security-Policy; an unknown device
/// is a 404.
fn markup_in_a_device_id_or_an_address_is_text_never_script(on: On) {
    let s = start(on);
    let script = "<script>document.body.setAttribute('data-x','P'+'WNED')</script>";
    s.db.create_token(&format!("dma-9{script}"), 0).unwrap();
    common::user(&s, "vera", Role::Viewer);
    let url = s.url.clone();
    let s = &s;
    in_chromium(|c| async move {
        log_in(&c, s, "vera").await;
        let fleet = c.source().await.unwrap();
        assert!(!fleet.contains("PWNED"), "{fleet}");
        assert!(fleet.contains("dma-9&lt;script&gt;"), "{fleet}");
        c.close().await.unwrap();
    });
    let (_, session) = common::log_in_to(&url, "vera", "vera-password");
    let (session, _) = session.unwrap();
    let get = |address: &str| {
        common::browser_like()
            .get(address)
            .header("cookie", format!("hw_session={session}"))
            .send()
            .unwrap()
    };

    let reflected = format!(
        "{url}/devices/%3C%2Ftitle%3E%3Cscript%3Edocument.body.setAttribute('data-x','P'%2B'WNED')%3C%2Fscript%3E"
    );
    let r = get(&reflected);
    assert_eq!(r.status().as_u16(), 404);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let text = r.text().unwrap();
    assert!(!text.contains("<script"), "{text}");
    assert!(text.contains("&lt;/title&gt;&lt;script&gt;"), "{text}");
    assert!(text.contains("no such device"), "{text}");

    // The device whose id holds markup has its page, escaped.
    let known = format!(
        "{url}/devices/dma-9%3Cscript%3Edocument.body.setAttribute('data-x','P'%2B'WNED')%3C%2Fscript%3E"
    );
    let r = get(&known);
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().unwrap();
    assert!(!text.contains("<script"), "{text}");
    assert!(text.contains("<h1>dma-9&lt;script&gt;"), "{text}");
    assert!(text.contains("no alarms"), "{text}");
}

on_both!(markup_in_a_device_id_or_an_address_is_text_never_script);

/// The people on call: an operator logs in, sees the unacknowledged alarm at the top of the
/// fleet, opens it, acknowledges it with a comment and sees it acknowledged in her name; a
/// viewer sees no acknowledge button, and a POST forged from the viewer's session (with or
/// without its CSRF token) is refused, as is one from the operator's session without it.
fn an_operator_acknowledges_in_chromium_and_a_viewer_cannot(on: On) {
    let s = start(on);
    let token = s.db.create_token("dma-017", 0).unwrap();
    let messages = vec![
        alert("dma-017", "m1", 1, "opened", 3, 0),
        alert("dma-017", "m2", 2, "opened", 2, 4),
    ];
    assert_eq!(post(&s, Some(&token), batch("dma-017", messages)).0, 200);
    common::user(&s, "ana", Role::Operator);
    common::user(&s, "vera", Role::Viewer);
    let (_keep, out) = screenshots();
    let url = s.url.clone();
    let s = &s;
    in_chromium(|c| async move {
        // Without a session every page sends the browser to the login page.
        c.goto(&format!("{url}/alarms/dma-017/1")).await.unwrap();
        arrive(&c, "/login").await;
        let at = c.current_url().await.unwrap();
        assert_eq!(at.query(), Some("next=/alarms/dma-017/1"));
        screenshot(&c, &out.join("dashboard-login.png")).await;

        log_in(&c, s, "ana").await;
        let fleet = c.source().await.unwrap();
        assert!(fleet.contains("2 unacknowledged"), "{fleet}");
        let buttons = c
            .find_all(Locator::Css("form[action$='/ack'] button"))
            .await
            .unwrap();
        assert_eq!(
            buttons.len(),
            2,
            "an acknowledge button per unacknowledged alarm"
        );
        screenshot(&c, &out.join("dashboard-alarms.png")).await;
        c.find(Locator::Css("a[href='/alarms/dma-017/1']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        arrive(&c, "/alarms/dma-017/1").await;
        c.find(Locator::Css("form[action$='/ack'] input[name='comment']"))
            .await
            .unwrap()
            .send_keys("crew sent to the valve at Elm St")
            .await
            .unwrap();
        c.find(Locator::Id("acknowledge"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The same page again, now with the acknowledgement.
        let started = Instant::now();
        while c.find(Locator::Id("acknowledge")).await.is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "not acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        arrive(&c, "/alarms/dma-017/1").await;
        let state = c
            .find(Locator::Id("state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(state.contains("acknowledged by ana"), "{state}");
        let history = c
            .find(Locator::Id("history"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for needle in [
            "ana",
            "acknowledged",
            "crew sent to the valve at Elm St",
            "opened at stage 3",
        ] {
            assert!(history.contains(needle), "{needle}: {history}");
        }
        screenshot(&c, &out.join("dashboard-alarm.png")).await;
        c.goto(&format!("{url}/load")).await.unwrap();
        arrive(&c, "/load").await;
        let load = c.source().await.unwrap();
        assert!(load.contains("alarms opened per device per day"), "{load}");
        screenshot(&c, &out.join("dashboard-load.png")).await;
        // A form of ana's session without its CSRF token is refused.
        let ana = c
            .get_named_cookie("hw_session")
            .await
            .unwrap()
            .value()
            .to_string();
        // On a thread of its own: the blocking client may not run inside this runtime.
        let forged = |session: &str, csrf: Option<&str>| {
            let mut form = vec![("comment", "forged".to_string())];
            if let Some(t) = csrf {
                form.push(("csrf", t.to_string()));
            }
            let (address, cookie) = (
                format!("{url}/alarms/dma-017/2/comment"),
                format!("hw_session={session}"),
            );
            std::thread::spawn(move || {
                common::browser_like()
                    .post(address)
                    .header("cookie", cookie)
                    .form(&form)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
            .join()
            .unwrap()
        };
        assert_eq!(forged(&ana, None), 403);
        c.find(Locator::Css("nav form button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        arrive(&c, "/login").await;

        log_in(&c, s, "vera").await;
        let fleet = c.source().await.unwrap();
        assert!(fleet.contains("1 unacknowledged"), "{fleet}");
        assert!(
            c.find_all(Locator::Css("form[action$='/ack']"))
                .await
                .unwrap()
                .is_empty()
        );
        c.goto(&format!("{url}/alarms/dma-017/2")).await.unwrap();
        arrive(&c, "/alarms/dma-017/2").await;
        assert!(
            c.find_all(Locator::Css("form[action^='/alarms']"))
                .await
                .unwrap()
                .is_empty()
        );
        let vera = c
            .get_named_cookie("hw_session")
            .await
            .unwrap()
            .value()
            .to_string();
        let csrf = c
            .find(Locator::Css("nav form input[name='csrf']"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(forged(&vera, Some(&csrf)), 403, "a viewer may not act");
        assert_eq!(forged(&vera, None), 403);
        c.close().await.unwrap();
    });
    let history = s.db.alarm_history("dma-017", 2, 0).unwrap().unwrap();
    assert!(
        history.actions.is_empty(),
        "nothing forged was done: {history:?}"
    );
    let history = s.db.alarm_history("dma-017", 1, 0).unwrap().unwrap();
    assert_eq!(history.actions.len(), 1, "{history:?}");
}

on_both!(an_operator_acknowledges_in_chromium_and_a_viewer_cannot);
