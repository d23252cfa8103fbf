//! `/alarms/{device}/{alarm_id}`: one alarm's history, the device's transitions and the people's
//! actions interleaved in time, and (for operators) the forms that act on it. The forms post to
//! `/alarms/{device}/{alarm_id}/{ack|shelve|unshelve|comment|assign}`, which does what the API's
//! routes do (the same function) and sends the browser back.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use hydrowatch_protocol::{AlarmActionRecord, AlarmRecord, OperatorAction};
use maud::{Markup, html};
use serde::Deserialize;

use super::fleet::state_words;
use super::{Refresh, page_refreshing, stage_badge, utc};
use crate::accounts::Role;
use crate::alarms::{Action, MAX_COMMENT, MAX_REASON};
use crate::auth::{Caller, PageCaller, local_path};
use crate::state::{ApiError, AppState};

/// The shelving durations offered (minutes, label).
const SHELVE_FOR: [(u32, &str); 5] = [
    (60, "1 hour"),
    (240, "4 hours"),
    (720, "12 hours"),
    (1440, "1 day"),
    (10080, "7 days"),
];

/// One line of an alarm's history.
enum Entry<'a> {
    Transition(&'a AlarmRecord),
    Action(&'a AlarmActionRecord),
}

/// A page that says what went wrong, with the way back.
fn error_page(caller: &Caller, status: StatusCode, message: &str, back: &str) -> Response {
    let body = html! {
        h1 { "not done" }
        p.error { (message) }
        p { a href=(back) { "← back" } }
    };
    page_refreshing(status, "not done", Some(caller), Refresh::Never, body)
}

fn hidden(caller: &Caller) -> Markup {
    html! { input type="hidden" name="csrf" value=(caller.csrf()); }
}

/// `GET /alarms/{device}/{alarm_id}`.
pub async fn alarm(
    State(app): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Path((device, alarm)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let history = match alarm.parse::<u64>() {
        Ok(id) => tokio::task::block_in_place(|| app.db.alarm_history(&device, id, now))?,
        Err(_) => None,
    };
    let Some(h) = history else {
        return Ok(error_page(
            &caller,
            StatusCode::NOT_FOUND,
            &format!("Device {device} has no alarm {alarm}."),
            "/",
        ));
    };
    let users = if caller.may(Role::Operator) {
        tokio::task::block_in_place(|| app.db.users())?
    } else {
        Vec::new()
    };
    let s = &h.status;
    let mut entries: Vec<(i64, Entry)> = h
        .transitions
        .iter()
        .map(|t| (t.created_at, Entry::Transition(t)))
        .chain(h.actions.iter().map(|a| (a.at, Entry::Action(a))))
        .collect();
    entries.sort_by_key(|(t, _)| *t);
    let link = format!("/alarms/{}/{}", s.device_id, s.alarm_id);
    let body = html! {
        h1 { "alarm #" (s.alarm_id) " of " a href={ "/devices/" (s.device_id) } { (s.device_id) } }
        p {
            (stage_badge(if s.active { s.stage } else { s.highest_stage }))
            (s.kind.name()) " on " (s.series) " · highest stage " (s.highest_stage)
            " · opened " (utc(s.opened_at)) " UTC"
        }
        p #state { (state_words(s)) }
        @if let Some(reason) = &s.shelve_reason { p { "Shelved because: " em { (reason) } } }
        @if caller.may(Role::Operator) {
            @if !s.acknowledged {
                form method="post" action={ (link) "/ack" } {
                    fieldset {
                        legend { "acknowledge" }
                        (hidden(&caller))
                        input type="text" name="comment" maxlength=(MAX_COMMENT) size="60"
                            placeholder="comment (optional): what you are doing about it";
                        " " button #acknowledge type="submit" { "Acknowledge" }
                    }
                }
            }
            @if s.shelved {
                form method="post" action={ (link) "/unshelve" } {
                    fieldset {
                        legend { "shelved" }
                        (hidden(&caller))
                        input type="text" name="comment" maxlength=(MAX_COMMENT) size="60" placeholder="comment (optional)";
                        " " button type="submit" { "Unshelve" }
                    }
                }
            } @else {
                form #shelve method="post" action={ (link) "/shelve" } {
                    fieldset {
                        legend { "shelve (it notifies nobody while shelved)" }
                        (hidden(&caller))
                        input type="text" name="reason" required maxlength=(MAX_REASON) size="40" placeholder="reason (required)";
                        " for "
                        select name="minutes" {
                            @if s.active { option value="" { "until it clears" } }
                            @for (m, label) in SHELVE_FOR { option value=(m) { (label) } }
                        }
                        " " button type="submit" { "Shelve" }
                    }
                }
            }
            form method="post" action={ (link) "/comment" } {
                fieldset {
                    legend { "comment" }
                    (hidden(&caller))
                    input type="text" name="comment" required maxlength=(MAX_COMMENT) size="60";
                    " " button.quiet type="submit" { "Comment" }
                }
            }
            form method="post" action={ (link) "/assign" } {
                fieldset {
                    legend { "assign" }
                    (hidden(&caller))
                    select name="user" {
                        option value="" { "nobody" }
                        @for u in &users {
                            option value=(u.name) selected[s.assigned_to.as_deref() == Some(u.name.as_str())] { (u.name) }
                        }
                    }
                    " " button.quiet type="submit" { "Assign" }
                }
            }
        }
        h2 { "history (device transitions and people's actions, oldest first)" }
        table #history {
            tr { th { "time (UTC)" } th { "who" } th { "what" } th { "" } }
            @for (t, e) in &entries {
                tr {
                    td { (utc(*t)) }
                    @match e {
                        Entry::Transition(r) => {
                            td { "device" }
                            td { (r.alert.state.name()) " at stage " (r.alert.outlier_stage) }
                            td {
                                "value " (r.alert.value.map_or("-".into(), |v| format!("{v:.2}")))
                                ", expected " (r.alert.expected.map_or("-".into(), |v| format!("{v:.2}")))
                                " (" (r.alert.time) ")"
                            }
                        }
                        Entry::Action(a) => {
                            td { strong { (a.user) } }
                            td { (a.action.name()) }
                            td {
                                @if let Some(c) = &a.comment { (c) }
                                @if let Some(u) = a.until { " (until " (utc(u)) ")" }
                                @if a.action == OperatorAction::Shelved && a.until.is_none() { " (until it clears)" }
                                @if a.action == OperatorAction::Assigned {
                                    "to " (a.assignee.as_deref().unwrap_or("nobody"))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page_refreshing(
        StatusCode::OK,
        &format!("alarm {} of {}", s.alarm_id, s.device_id),
        Some(&caller),
        Refresh::Never,
        body,
    ))
}

/// What the forms post.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    next: Option<String>,
    comment: Option<String>,
    reason: Option<String>,
    minutes: Option<String>,
    user: Option<String>,
}

/// `POST /alarms/{device}/{alarm_id}/{action}`: does it, then back to the alarm's page (or to
/// `next`, a page of this server).
pub async fn act(
    State(app): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Path((device, alarm, action)): Path<(String, String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let link = format!("/alarms/{device}/{alarm}");
    let fail = |status, message: &str| error_page(&caller, status, message, &link);
    let Ok(Form(form)) = form else {
        return fail(StatusCode::BAD_REQUEST, "The form's fields did not read.");
    };
    let Ok(id) = alarm.parse::<u64>() else {
        return fail(StatusCode::NOT_FOUND, "No such alarm.");
    };
    let minutes = match form.minutes.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) => match m.parse::<u32>() {
            Ok(m) => Some(m),
            Err(_) => {
                return fail(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "The duration is not a number of minutes.",
                );
            }
        },
    };
    let action = match action.as_str() {
        "ack" => Action::Acknowledge(form.comment),
        "shelve" => Action::Shelve {
            reason: form.reason.unwrap_or_default(),
            minutes,
        },
        "unshelve" => Action::Unshelve(form.comment),
        "comment" => Action::Comment(form.comment.unwrap_or_default()),
        "assign" => Action::Assign(form.user),
        _ => return fail(StatusCode::NOT_FOUND, "No such action."),
    };
    match crate::api::perform(&app, &caller, form.csrf.as_deref(), (&device, id), &action) {
        Ok(_) => Redirect::to(local_path(form.next.as_deref().or(Some(&link)))).into_response(),
        Err(ApiError(status, message)) => fail(status, &message),
    }
}
