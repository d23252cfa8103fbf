//! `/?page=N`: the fleet. The alarms people have to handle across every device (unacknowledged
//! first, by stage and arrival), a page of them at a time, with their acknowledge and shelve
//! buttons, then every device with when it was last seen and its open alarms by stage.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use hydrowatch_protocol::AlarmStatus;
use maud::{Markup, html};
use serde::Deserialize;

use super::{STAGE_NAMES, age, badge, page, stage_badge, utc};
use crate::accounts::Role;
use crate::auth::{Caller, PageCaller};
use crate::state::{ApiError, AppState};

/// Alarms listed on one page.
const PER_PAGE: usize = 100;

/// One alarm's state for people: active or cleared, acknowledged by whom, shelved.
pub(super) fn state_words(a: &AlarmStatus) -> Markup {
    html! {
        (if a.active { "active" } else { "cleared" }) ", "
        @if a.acknowledged {
            "acknowledged"
            @if let Some(by) = &a.acknowledged_by { " by " strong { (by) } }
        } @else {
            strong { "unacknowledged" }
        }
        @if a.shelved {
            ", shelved"
            @if let Some(by) = &a.shelved_by { " by " (by) }
            @match a.shelved_until {
                Some(t) => { " until " (utc(t)) },
                None => { " until it clears" },
            }
        }
        @if let Some(to) = &a.assigned_to { ", assigned to " (to) }
    }
}

/// The list of alarms to handle, with buttons for those who may act (coming back to `back`).
fn alarm_list(alarms: &[AlarmStatus], caller: &Caller, back: &str, now: i64) -> Markup {
    let operator = caller.may(Role::Operator);
    html! {
        @if alarms.is_empty() {
            p.none { "Nothing to handle: no active or unacknowledged alarm." }
        } @else {
            table #alarms {
                tr {
                    th { "stage" } th { "device" } th { "alarm" } th { "series" } th { "opened" }
                    th { "state" }
                    @if operator { th { "" } }
                }
                @for a in alarms {
                    @let link = format!("/alarms/{}/{}", a.device_id, a.alarm_id);
                    tr class=(if !a.acknowledged { "unacked" } else if a.shelved { "shelved" } else { "" }) {
                        td { (stage_badge(if a.active { a.stage } else { a.highest_stage })) }
                        td { a href={ "/devices/" (a.device_id) } { (a.device_id) } }
                        td { a href=(link) { "#" (a.alarm_id) " " (a.kind.name()) } }
                        td { (a.series) }
                        td { (age(now - a.opened_at)) " ago" }
                        td.state { (state_words(a)) }
                        @if operator {
                            td {
                                @if !a.acknowledged {
                                    form.inline method="post" action={ (link) "/ack" } {
                                        input type="hidden" name="csrf" value=(caller.csrf());
                                        input type="hidden" name="next" value=(back);
                                        button type="submit" { "Acknowledge" }
                                    }
                                    " "
                                }
                                @if !a.shelved && a.active {
                                    a.button.quiet href={ (link) "#shelve" } { "Shelve…" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Query of `/`: the page of the alarms to handle, from 1.
#[derive(Debug, Deserialize)]
pub struct FleetQuery {
    page: Option<usize>,
}

/// `GET /?page=N`.
pub async fn fleet(
    State(app): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    q: Result<Query<FleetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let page_number = q.ok().and_then(|Query(q)| q.page).unwrap_or(1).max(1);
    let offset = (page_number - 1).saturating_mul(PER_PAGE);
    let (devices, list) = tokio::task::block_in_place(|| {
        Ok::<_, crate::sql::DbError>((
            app.db.devices()?,
            app.db.alarms_to_handle(None, offset, PER_PAGE, now)?,
        ))
    })?;
    let open: u32 = devices
        .iter()
        .map(|d| d.open_alarms.iter().sum::<u32>())
        .sum();
    let pages = list.total.div_ceil(PER_PAGE).max(1);
    let body = html! {
        h1 { "hydrowatch fleet" }
        p { (devices.len()) " devices · " (open) " open alarms · " (list.unacknowledged) " unacknowledged" }
        h2 { "alarms to handle" }
        (alarm_list(&list.alarms, &caller, &format!("/?page={page_number}"), now))
        @if pages > 1 {
            p.pages {
                @if page_number > 1 { a href={ "/?page=" (page_number - 1) } { "← previous" } " " }
                "page " (page_number.min(pages)) " of " (pages) " (" (list.total) " alarms to handle)"
                @if page_number < pages { " " a href={ "/?page=" (page_number + 1) } { "next →" } }
            }
        }
        h2 { "devices" }
        table {
            tr { th { "device" } th { "last seen" } th { "open alarms by stage" } }
            @for d in &devices {
                tr {
                    td { a href={ "/devices/" (d.id) } { (d.id) } }
                    td {
                        @match d.last_seen {
                            Some(t) if now - t > 3600 => span.stale { (utc(t)) " (over an hour ago)" },
                            Some(t) => (utc(t)),
                            None => span.none { "never" },
                        }
                    }
                    td {
                        @if d.open_alarms.iter().all(|&n| n == 0) {
                            span.none { "none" }
                        }
                        @for s in (0..4).rev().filter(|&s| d.open_alarms[s] > 0) {
                            (badge(s, &format!("{} × {}", STAGE_NAMES[s], d.open_alarms[s])))
                        }
                    }
                }
            }
        }
    };
    Ok(page(StatusCode::OK, "fleet", &caller, body))
}
