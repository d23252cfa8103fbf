//! `/load?days=`: the alarm load (ISA-18.2) of the last days: alarms per device per day, time
//! to acknowledge, share of time in flood.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{age, page};
use crate::alarm_load::{FLOOD_ALARMS, FLOOD_WINDOW, median_p90};
use crate::auth::PageCaller;
use crate::state::{ApiError, AppState};

/// ISA-18.2's "maximum manageable" alarms per day for one operator (its appendix: about 300;
/// 150 "likely acceptable").
const MANAGEABLE_PER_DAY: f64 = 300.0;

/// Query of `/load`.
#[derive(Debug, Deserialize)]
pub struct LoadQuery {
    days: Option<usize>,
}

/// `GET /load`.
pub async fn load(
    State(app): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    q: Result<Query<LoadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let days = q.ok().and_then(|Query(q)| q.days).unwrap_or(7).clamp(1, 90);
    let now = chrono::Utc::now().timestamp();
    let load = tokio::task::block_in_place(|| app.db.alarm_load(days, now))?;
    let day_names: Vec<String> = (0..load.days)
        .map(|d| {
            chrono::DateTime::from_timestamp(load.from + d as i64 * hydrowatch_core::time::DAY, 0)
                .map_or(String::new(), |t| t.format("%a %d").to_string())
        })
        .collect();
    let total: usize = load.devices.iter().flat_map(|d| &d.per_day).sum();
    let per_day = total as f64 / load.days as f64;
    let mut all_acks: Vec<i64> = load
        .devices
        .iter()
        .flat_map(|d| d.to_acknowledge.iter().copied())
        .collect();
    let body = html! {
        h1 { "alarm load, last " (load.days) " days" }
        table #summary {
            tr { th { "alarms opened" } td { (total) " (" (format!("{per_day:.1}")) " a day fleet-wide; ISA-18.2 calls about " (MANAGEABLE_PER_DAY) " a day the most one operator can manage)" } }
            tr {
                th { "time to acknowledge" }
                td {
                    @match median_p90(&mut all_acks) {
                        Some((m, p)) => { "median " (age(m)) ", 90% within " (age(p)) " (" (all_acks.len()) " acknowledged)" },
                        None => span.none { "nothing acknowledged" },
                    }
                }
            }
            tr {
                th { "time in flood" }
                td {
                    (format!("{:.1} %", 100.0 * load.flood_share()))
                    " (" (load.flood_periods) " of " (load.periods) " periods of " (FLOOD_WINDOW / 60)
                    " min had more than " (FLOOD_ALARMS) " alarms; ISA-18.2 aims at under 1 %)"
                }
            }
        }
        h2 { "alarms opened per device per day (UTC)" }
        @if load.devices.is_empty() {
            p.none { "no alarm opened in these days" }
        } @else {
            table #per-day {
                tr {
                    th { "device" }
                    @for d in &day_names { th { (d) } }
                    th { "time to acknowledge (median, 90%)" }
                }
                @for d in &load.devices {
                    tr {
                        td { a href={ "/devices/" (d.device_id) } { (d.device_id) } }
                        @for n in &d.per_day { td { (n) } }
                        td {
                            @match median_p90(&mut d.to_acknowledge.clone()) {
                                Some((m, p)) => { (age(m)) ", " (age(p)) },
                                None => span.none { "-" },
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, "alarm load", &caller, body))
}
