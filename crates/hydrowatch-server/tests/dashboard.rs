//! The dashboard in headless Chromium (Debian's `chromium`; `.ci/run` installs it): the pages
//! render with their content, and screenshots are saved (into `HYDROWATCH_SCREENSHOTS` when set,
//! e.g. `docs/`, else a temporary folder).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{On, alert, batch, forecast, post, start};

fn chromium(args: &[&str]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .output()
        .expect("chromium runs (apt-get install chromium; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(url: &str, path: &Path) {
    chromium(&[
        &format!("--screenshot={}", path.display()),
        "--window-size=1280,1000",
        url,
    ]);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{}: {size} bytes", path.display());
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

    let fleet = chromium(&["--dump-dom", &format!("{}/", s.url)]);
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
        !fleet.contains("stage 3 (warning)"),
        "a cleared alarm is not open"
    );
    let device = chromium(&["--dump-dom", &format!("{}/devices/dma-017", s.url)]);
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

    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf =
        std::env::var_os("HYDROWATCH_SCREENSHOTS").map_or(dir.path().to_path_buf(), PathBuf::from);
    screenshot(&format!("{}/", s.url), &out.join("dashboard-fleet.png"));
    screenshot(
        &format!("{}/devices/dma-017", s.url),
        &out.join("dashboard-device.png"),
    );
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
    let fleet = chromium(&["--dump-dom", &format!("{}/", s.url)]);
    assert!(!fleet.contains("PWNED"), "{fleet}");
    assert!(fleet.contains("dma-9&lt;script&gt;"), "{fleet}");

    let reflected = format!(
        "{}/devices/%3C%2Ftitle%3E%3Cscript%3Edocument.body.setAttribute('data-x','P'%2B'WNED')%3C%2Fscript%3E",
        s.url
    );
    let r = reqwest::blocking::get(&reflected).unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let text = r.text().unwrap();
    assert!(!text.contains("<script"), "{text}");
    assert!(text.contains("&lt;/title&gt;&lt;script&gt;"), "{text}");
    assert!(text.contains("no such device"), "{text}");

    // The device whose id holds markup has its page, escaped.
    let known = format!(
        "{}/devices/dma-9%3Cscript%3Edocument.body.setAttribute('data-x','P'%2B'WNED')%3C%2Fscript%3E",
        s.url
    );
    let r = reqwest::blocking::get(&known).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().unwrap();
    assert!(!text.contains("<script"), "{text}");
    assert!(text.contains("<h1>dma-9&lt;script&gt;"), "{text}");
    assert!(text.contains("no alarms"), "{text}");
}

on_both!(markup_in_a_device_id_or_an_address_is_text_never_script);
