//! A device's page: each series' newest forecast with its 10-90% band over the actual values,
//! the day-ahead accuracy, and the alarm timeline.
//!
//! Invariants: whatever is stored, a chart draws a bounded number of elements and the timeline
//! lists a bounded number of rows.

use hydrowatch_core::time::DAY;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use hydrowatch_protocol::{ForecastBody, seconds};
use maud::{Markup, html};

use super::{badge, page};
use crate::auth::PageCaller;
use crate::db::AlarmFilter;
use crate::state::{ApiError, AppState};

/// Most day lines drawn on a chart's time axis.
const MAX_DAY_LINES: i64 = 16;
/// Most alarm transitions listed on a device page.
const MAX_TIMELINE_ROWS: usize = 200;

/// A number for an SVG attribute, to a tenth.
fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// An SVG chart of one forecast: the value line over its 10-90% band, and the actual hourly
/// values before and (as they arrive with later messages) during it, with axes.
fn forecast_chart(f: &ForecastBody, actuals: &[(i64, f64)]) -> Markup {
    let points: Vec<(i64, f64, f64, f64)> = f
        .points
        .iter()
        .filter_map(|p| Some((seconds(&p.time)?, p.value, p.lower, p.upper)))
        .collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.none { "no forecast yet" } };
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
    let polyline = |pts: &mut dyn Iterator<Item = (i64, f64)>| -> String {
        pts.map(|(t, v)| format!("{:.1},{:.1} ", x(t), y(v)))
            .collect()
    };
    let band = polyline(
        &mut points
            .iter()
            .map(|p| (p.0, p.3))
            .chain(points.iter().rev().map(|p| (p.0, p.2))),
    );
    let line = polyline(&mut points.iter().map(|p| (p.0, p.1)));
    let actual = polyline(&mut actuals.iter().copied());
    // One line per day, or per several days: bounded whatever span is stored.
    let days = (end - start) / DAY + 1;
    let step = DAY * (days / MAX_DAY_LINES + 1);
    let day_lines: Vec<i64> = (1..=MAX_DAY_LINES)
        .map(|k| start - start.rem_euclid(DAY) + k * step)
        .take_while(|&t| t <= end)
        .collect();
    let series = &f.series;
    html! {
        svg width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img"
            aria-label={ "forecast of " (series) } {
            @for i in 0..=4 {
                @let v = lo + (hi - lo) * f64::from(i) / 4.0;
                line x1=(left) x2=(w - 10.0) y1=(n(y(v))) y2=(n(y(v))) stroke="#e3e8ee" {}
                text x=(left - 6.0) y=(n(y(v) + 4.0)) font-size="11" text-anchor="end" fill="#4a5663" { (format!("{v:.1}")) }
            }
            @for t in &day_lines {
                line x1=(n(x(*t))) x2=(n(x(*t))) y1="10" y2=(h - bottom) stroke="#e3e8ee" {}
                text x=(n(x(*t))) y=(h - bottom + 16.0) font-size="11" text-anchor="middle" fill="#4a5663" {
                    (chrono::DateTime::from_timestamp(*t, 0).map_or(String::new(), |d| d.format("%a %d").to_string()))
                }
            }
            polygon points=(band) fill="#9cc3e6" fill-opacity="0.45" stroke="none" {}
            polyline points=(line) fill="none" stroke="#14589c" stroke-width="2" {}
            polyline points=(actual) fill="none" stroke="#2e2e2e" stroke-width="1.5" {}
            line x1=(n(x(first.0))) x2=(n(x(first.0))) y1="10" y2=(h - bottom) stroke="#7a8794" stroke-dasharray="4 3" {}
        }
        div.legend {
            span style="color:#2e2e2e" { "━ actual (hourly mean)" }
            span style="color:#14589c" { "━ forecast" }
            span style="color:#6d9cc8" { "▇ 10-90% band" }
            span { "issued " (f.issued_at) " by " (f.model) }
        }
    }
}

/// The actual hourly values of `series` around forecast `f`: the week before it and what came
/// since.
fn around(app: &AppState, id: &str, f: &ForecastBody) -> Result<Vec<(i64, f64)>, ApiError> {
    let (series, issued) = (&f.series, seconds(&f.issued_at).unwrap_or(0));
    Ok(tokio::task::block_in_place(|| {
        app.db
            .actuals(id, series, issued - 7 * DAY, issued + 7 * DAY)
    })?)
}

/// `GET /devices/{id}`: the newest forecast of each series, and the alarm timeline; 404 for a
/// device the server does not know.
pub async fn device(
    State(app): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !tokio::task::block_in_place(|| app.db.has_device(&id))? {
        let body = html! {
            nav { a href="/" { "← fleet" } }
            h1 { "no such device" }
            p { "The server has no device " code { (id) } "." }
        };
        return Ok(page(StatusCode::NOT_FOUND, "no such device", &caller, body));
    }
    let (forecasts, alarms, accuracy) = tokio::task::block_in_place(|| {
        let forecasts = app.db.forecasts(&id, None, 50)?;
        let alarms = app.db.alarms(&AlarmFilter {
            device: Some(id.clone()),
            ..AlarmFilter::default()
        })?;
        Ok::<_, crate::sql::DbError>((forecasts, alarms, app.db.accuracy(&id, 7)?))
    })?;
    // The newest forecast of each series (they come newest first).
    let mut newest: Vec<&ForecastBody> = Vec::new();
    for f in &forecasts {
        if !newest.iter().any(|n| n.series == f.series) {
            newest.push(f);
        }
    }
    let mut charts = Vec::with_capacity(newest.len());
    for f in &newest {
        charts.push(forecast_chart(f, &around(&app, &id, f)?));
    }
    let number = |x: Option<f64>, unit: &str| -> Markup {
        match x {
            Some(x) => html! { (format!("{x:.2}{unit}")) },
            None => html! { span.none { "no hours yet" } },
        }
    };
    let body = html! {
        nav { a href="/" { "← fleet" } }
        h1 { (id) }
        @for (f, chart) in newest.iter().zip(&charts) {
            h2 { (f.series) " (" (f.unit) "): the week before and the next 7 days" }
            (chart)
        }
        @if !accuracy.is_empty() {
            h2 { "day-ahead accuracy (last 7 days)" }
            table {
                tr { th { "series" } th { "hours scored" } th { "mean absolute error" } th { "MAPE" } }
                @for a in &accuracy {
                    tr {
                        td { (a.series) } td { (a.hours) }
                        td { (number(a.mae, "")) } td { (number(a.mape, " %")) }
                    }
                }
            }
        }
        @if newest.is_empty() {
            p.none { "no forecast received yet" }
        }
        h2 { "alarm timeline (" (alarms.len()) " transitions, newest first)" }
        @if alarms.is_empty() {
            p.none { "no alarms" }
        } @else {
            table {
                tr {
                    th { "time" } th { "series" } th { "kind" } th { "alarm" } th { "transition" }
                    th { "stage" } th { "value" } th { "expected" }
                }
                @for a in alarms.iter().take(MAX_TIMELINE_ROWS) {
                    @let a = &a.alert;
                    @let stage = usize::from(a.outlier_stage.min(4));
                    tr {
                        td { (a.time) }
                        td { (a.series) }
                        td { (a.kind.name()) " " (a.direction.name()) }
                        td { a href={ "/alarms/" (id) "/" (a.alarm_id) } { "#" (a.alarm_id) } }
                        td { (a.state.name()) }
                        td {
                            @if stage == 0 { span.none { "0" } } @else { (badge(stage - 1, &stage.to_string())) }
                        }
                        td { (a.value.map_or(String::new(), |x| format!("{x:.2}"))) }
                        td { (a.expected.map_or(String::new(), |x| format!("{x:.2}"))) }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, &id, &caller, body))
}
