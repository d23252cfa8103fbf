//! The dashboard: server-rendered HTML with inline SVG charts (nothing to load from elsewhere,
//! nothing that needs JavaScript), refreshing itself every 30 s. `/` is the fleet; `/devices/{id}`
//! one device: each series' newest forecast with its 10-90% band, and the alarm timeline.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Html;
use serde_json::Value;

use crate::api::{ApiError, AppState};
use crate::db::AlarmFilter;
use crate::envelope::seconds;

/// Colours of stages 1-4 (interest, caution, warning, critical).
const STAGE_COLOURS: [&str; 4] = ["#2b7bb9", "#c9a400", "#e07000", "#c62828"];
const STAGE_NAMES: [&str; 4] = ["interest", "caution", "warning", "critical"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · hydrowatch</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #1d2733; }}
h1 {{ font-size: 1.4rem; margin: 0 0 1rem; }} h2 {{ font-size: 1.1rem; margin: 1.5rem 0 .5rem; }}
table {{ border-collapse: collapse; min-width: 40rem; }}
th, td {{ text-align: left; padding: .35rem .8rem; border-bottom: 1px solid #dde3ea; }}
th {{ background: #f2f5f8; font-weight: 600; }}
.badge {{ display: inline-block; min-width: 1.4rem; padding: .1rem .45rem; border-radius: .7rem;
  color: #fff; font-weight: 600; text-align: center; margin-right: .25rem; }}
.none {{ color: #7a8794; }} .stale {{ color: #c62828; font-weight: 600; }}
a {{ color: #14589c; }} svg {{ background: #fbfcfd; border: 1px solid #dde3ea; }}
.legend span {{ margin-right: 1rem; }} nav {{ margin-bottom: 1rem; }}
</style></head><body>{body}
<p class="none">Refreshes every 30 s. Alarm times are the device's local time; other times UTC.</p></body></html>"#
    ))
}

/// A coloured badge of stage `stage` (0-based) showing `text`.
fn badge(stage: usize, text: &str) -> String {
    format!(
        r#"<span class="badge" style="background:{}" title="stage {} ({})">{text}</span>"#,
        STAGE_COLOURS[stage],
        stage + 1,
        STAGE_NAMES[stage]
    )
}

fn utc(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// `GET /`: every device, when it was last seen, its open alarms by stage.
pub async fn fleet(State(app): State<Arc<AppState>>) -> Result<Html<String>, ApiError> {
    let devices = tokio::task::block_in_place(|| app.db.devices())?;
    let now = chrono::Utc::now().timestamp();
    let mut body = String::from("<h1>hydrowatch fleet</h1>\n");
    let _ = write!(
        body,
        "<p>{} devices · {} open alarms</p>\n<table><tr><th>device</th><th>last seen</th><th>open alarms by stage</th></tr>\n",
        devices.len(),
        devices
            .iter()
            .map(|d| d.open_alarms.iter().sum::<u32>())
            .sum::<u32>()
    );
    for d in &devices {
        let seen = match d.last_seen {
            Some(t) if now - t > 3600 => format!(
                r#"<span class="stale">{} (over an hour ago)</span>"#,
                utc(t)
            ),
            Some(t) => utc(t),
            None => r#"<span class="none">never</span>"#.into(),
        };
        let alarms: String = (0..4)
            .rev()
            .filter(|&s| d.open_alarms[s] > 0)
            .map(|s| badge(s, &format!("{} × {}", STAGE_NAMES[s], d.open_alarms[s])))
            .collect();
        let alarms = if alarms.is_empty() {
            r#"<span class="none">none</span>"#.to_string()
        } else {
            alarms
        };
        let id = escape(&d.id);
        let _ = writeln!(
            body,
            r#"<tr><td><a href="/devices/{id}">{id}</a></td><td>{seen}</td><td>{alarms}</td></tr>"#
        );
    }
    body.push_str("</table>\n");
    Ok(page("fleet", &body))
}

/// An SVG chart of one forecast: the value line over its 10-90% band, and the actual hourly
/// values before and (as they arrive with later messages) during it, with axes.
fn forecast_chart(f: &Value, actuals: &[(i64, f64)]) -> String {
    let points: Vec<(i64, f64, f64, f64)> = f["points"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    let t = seconds(&p["time"])?;
                    Some((
                        t,
                        p["value"].as_f64()?,
                        p["lower"].as_f64()?,
                        p["upper"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return r#"<p class="none">no forecast yet</p>"#.into();
    };
    let (w, h, left, bottom) = (900.0, 260.0, 60.0, 30.0);
    let start = actuals.first().map_or(first.0, |a| a.0.min(first.0));
    let end = actuals.last().map_or(last.0, |a| a.0.max(last.0));
    let measured = actuals.iter().map(|a| a.1);
    let lo = points
        .iter()
        .map(|p| p.2.min(p.1))
        .chain(measured.clone())
        .fold(f64::INFINITY, f64::min);
    let hi = points
        .iter()
        .map(|p| p.3.max(p.1))
        .chain(measured)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let span = (end - start).max(1) as f64;
    let x = |t: i64| left + (t - start) as f64 / span * (w - left - 10.0);
    let y = |v: f64| 10.0 + (hi - v) / (hi - lo) * (h - bottom - 10.0);
    let mut band = String::new();
    for p in &points {
        let _ = write!(band, "{:.1},{:.1} ", x(p.0), y(p.3));
    }
    for p in points.iter().rev() {
        let _ = write!(band, "{:.1},{:.1} ", x(p.0), y(p.2));
    }
    let polyline = |pts: &mut dyn Iterator<Item = (i64, f64)>| -> String {
        pts.map(|(t, v)| format!("{:.1},{:.1} ", x(t), y(v)))
            .collect()
    };
    let line = polyline(&mut points.iter().map(|p| (p.0, p.1)));
    let actual = polyline(&mut actuals.iter().copied());
    let mut axes = String::new();
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let _ = write!(
            axes,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e8ee"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#4a5663">{v:.1}</text>"##,
            w - 10.0,
            left - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    let mut t = start - start.rem_euclid(86_400) + 86_400;
    while t <= end {
        let _ = write!(
            axes,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="10" y2="{}" stroke="#e3e8ee"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle" fill="#4a5663">{}</text>"##,
            h - bottom,
            h - bottom + 16.0,
            chrono::DateTime::from_timestamp(t, 0)
                .map_or(String::new(), |d| d.format("%a %d").to_string()),
            x = x(t)
        );
        t += 86_400;
    }
    format!(
        r##"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="forecast of {series}">{axes}
<polygon points="{band}" fill="#9cc3e6" fill-opacity="0.45" stroke="none"/>
<polyline points="{line}" fill="none" stroke="#14589c" stroke-width="2"/>
<polyline points="{actual}" fill="none" stroke="#2e2e2e" stroke-width="1.5"/>
<line x1="{now:.1}" x2="{now:.1}" y1="10" y2="{axis}" stroke="#7a8794" stroke-dasharray="4 3"/></svg>
<div class="legend"><span style="color:#2e2e2e">━ actual (hourly mean)</span><span style="color:#14589c">━ forecast</span><span style="color:#6d9cc8">▇ 10-90% band</span><span>issued {issued} by {model}</span></div>"##,
        series = escape(f["series"].as_str().unwrap_or("")),
        issued = escape(f["issued_at"].as_str().unwrap_or("?")),
        model = escape(f["model"].as_str().unwrap_or("?")),
        now = x(first.0),
        axis = h - bottom,
    )
}

/// The actual hourly values of `series` around forecast `f`: the week before it and what came
/// since.
fn around(app: &AppState, id: &str, series: &str, f: &Value) -> Result<Vec<(i64, f64)>, ApiError> {
    let issued = seconds(&f["issued_at"]).unwrap_or(0);
    Ok(tokio::task::block_in_place(|| {
        app.db
            .actuals(id, series, issued - 7 * 86_400, issued + 7 * 86_400)
    })?)
}

/// `GET /devices/{id}`: the newest forecast of each series, and the alarm timeline.
pub async fn device(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let (forecasts, alarms, accuracy) = tokio::task::block_in_place(|| {
        let forecasts = app.db.forecasts(&id, None, 50)?;
        let alarms = app.db.alarms(&AlarmFilter {
            device: Some(id.clone()),
            ..AlarmFilter::default()
        })?;
        Ok::<_, crate::DbError>((forecasts, alarms, app.db.accuracy(&id, 7)?))
    })?;
    let name = escape(&id);
    let mut body = format!("<nav><a href=\"/\">← fleet</a></nav><h1>{name}</h1>\n");
    let mut seen = Vec::new();
    for f in &forecasts {
        let series = f["series"].as_str().unwrap_or_default().to_string();
        if seen.contains(&series) {
            continue;
        }
        let _ = write!(
            body,
            "<h2>{} ({}): the week before and the next 7 days</h2>\n{}\n",
            escape(&series),
            escape(f["unit"].as_str().unwrap_or("")),
            forecast_chart(f, &around(&app, &id, &series, f)?)
        );
        seen.push(series);
    }
    if !accuracy.is_empty() {
        body.push_str("<h2>day-ahead accuracy (last 7 days)</h2>\n<table><tr><th>series</th><th>hours scored</th><th>mean absolute error</th><th>MAPE</th></tr>\n");
        for a in &accuracy {
            let num = |x: Option<f64>, unit: &str| {
                x.map_or(r#"<span class="none">no hours yet</span>"#.into(), |x| {
                    format!("{x:.2}{unit}")
                })
            };
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.series),
                a.hours,
                num(a.mae, ""),
                num(a.mape, " %")
            );
        }
        body.push_str("</table>\n");
    }
    if seen.is_empty() {
        body.push_str(r#"<p class="none">no forecast received yet</p>"#);
    }
    let _ = writeln!(
        body,
        "<h2>alarm timeline ({} transitions, newest first)</h2>",
        alarms.len()
    );
    if alarms.is_empty() {
        body.push_str(r#"<p class="none">no alarms</p>"#);
    } else {
        body.push_str("<table><tr><th>time</th><th>series</th><th>kind</th><th>alarm</th><th>transition</th><th>stage</th><th>value</th><th>expected</th></tr>\n");
        for a in alarms.iter().take(200) {
            let stage = a["outlier_stage"].as_u64().unwrap_or(0) as usize;
            let stage_cell = if stage == 0 {
                r#"<span class="none">0</span>"#.to_string()
            } else {
                badge(stage.min(4) - 1, &stage.to_string())
            };
            let num = |v: &Value| v.as_f64().map_or("".into(), |x| format!("{x:.2}"));
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>#{}</td><td>{}</td><td>{stage_cell}</td><td>{}</td><td>{}</td></tr>",
                escape(a["time"].as_str().unwrap_or("")),
                escape(a["series"].as_str().unwrap_or("")),
                escape(a["kind"].as_str().unwrap_or("")),
                escape(a["direction"].as_str().unwrap_or("")),
                a["alarm_id"],
                escape(a["state"].as_str().unwrap_or("")),
                num(&a["value"]),
                num(&a["expected"]),
            );
        }
        body.push_str("</table>\n");
    }
    Ok(page(&id, &body))
}
