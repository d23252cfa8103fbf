//! The dashboard, for the people on call: server-rendered HTML with inline SVG charts, nothing
//! to load from elsewhere and no JavaScript. [`fleet`] (`/`) lists the alarms to handle across
//! the fleet and every device; [`device`] one device's forecasts and alarm timeline; [`alarm`]
//! one alarm's history with the forms to acknowledge, shelve, comment and assign; [`load`] the
//! alarm load (ISA-18.2); [`login`] the login page.
//!
//! Invariants: every page is written by the template engine (maud), which escapes every value
//! it interpolates; pages go out with a Content-Security-Policy that allows no script and forms
//! only to this server; every page but the login page needs a session ([`crate::auth`]), and
//! every form carries the session's CSRF token; a viewer's page has no form that acts.

pub mod alarm;
pub mod device;
pub mod fleet;
pub mod load;
pub mod login;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::auth::Caller;

/// Colours of stages 1-4 (interest, caution, warning, critical).
const STAGE_COLOURS: [&str; 4] = ["#2b7bb9", "#c9a400", "#e07000", "#c62828"];
const STAGE_NAMES: [&str; 4] = ["interest", "caution", "warning", "critical"];

/// The pages need their own inline style and nothing else: no script, no frame; forms post
/// only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #1d2733; }
h1 { font-size: 1.4rem; margin: 0 0 1rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; min-width: 40rem; }
th, td { text-align: left; padding: .35rem .8rem; border-bottom: 1px solid #dde3ea; vertical-align: top; }
th { background: #f2f5f8; font-weight: 600; }
.badge { display: inline-block; min-width: 1.4rem; padding: .1rem .45rem; border-radius: .7rem;
  color: #fff; font-weight: 600; text-align: center; margin-right: .25rem; }
.none { color: #7a8794; } .stale { color: #c62828; font-weight: 600; }
.unacked { background: #fff4e5; } .shelved { color: #7a8794; }
a { color: #14589c; } svg { background: #fbfcfd; border: 1px solid #dde3ea; }
.legend span { margin-right: 1rem; }
nav { margin-bottom: 1rem; display: flex; gap: 1.2rem; align-items: center; }
nav .who { margin-left: auto; color: #4a5663; }
form.inline { display: inline; margin: 0; }
button, .button { font: inherit; padding: .2rem .7rem; border: 1px solid #14589c; border-radius: .3rem;
  background: #14589c; color: #fff; cursor: pointer; text-decoration: none; }
button.quiet, .button.quiet { background: #fff; color: #14589c; }
input, select, textarea { font: inherit; padding: .2rem .4rem; }
.error { color: #c62828; font-weight: 600; }
fieldset { border: 1px solid #dde3ea; margin: .8rem 0; max-width: 46rem; }
"#;

/// How a page refreshes itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refresh {
    /// Every 30 s (lists people watch).
    Every30s,
    /// Never (pages with forms people type into).
    Never,
}

/// A whole page of a logged-in person: the navigation with who is logged in and a logout
/// button, `body`, and the security headers every page carries.
fn page(status: StatusCode, title: &str, caller: &Caller, body: Markup) -> Response {
    page_refreshing(status, title, Some(caller), Refresh::Every30s, body)
}

/// A whole page; `caller` None for the login page.
fn page_refreshing(
    status: StatusCode,
    title: &str,
    caller: Option<&Caller>,
    refresh: Refresh,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if refresh == Refresh::Every30s {
                    meta http-equiv="refresh" content="30";
                }
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hydrowatch" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(caller) = caller {
                    nav {
                        a href="/" { "fleet" }
                        a href="/load" { "alarm load" }
                        span.who { (caller.user.name) " (" (caller.user.role.name()) ")" }
                        @if caller.session.is_some() {
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(caller.csrf());
                                button.quiet type="submit" { "log out" }
                            }
                        }
                    }
                }
                (body)
                @if refresh == Refresh::Every30s {
                    p.none { "Refreshes every 30 s. Alarm times are the device's local time; other times UTC." }
                } @else {
                    p.none { "Alarm times are the device's local time; other times UTC." }
                }
            }
        }
    };
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(markup.into_string()),
    )
        .into_response()
}

/// A coloured badge of stage `stage` (0-based) showing `text`.
fn badge(stage: usize, text: &str) -> Markup {
    html! {
        span.badge style={ "background:" (STAGE_COLOURS[stage]) }
            title={ "stage " (stage + 1) " (" (STAGE_NAMES[stage]) ")" } { (text) }
    }
}

/// The badge of stage `stage` (1-4; 0 shows a plain 0).
fn stage_badge(stage: u8) -> Markup {
    let stage = usize::from(stage.min(4));
    if stage == 0 {
        html! { span.none { "0" } }
    } else {
        badge(stage - 1, &stage.to_string())
    }
}

/// Unix seconds as UTC, to the minute.
fn utc(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// A span of seconds for people ("3 h 20 min").
fn age(seconds: i64) -> String {
    hydrowatch_core::time::for_people(seconds.max(0) as f64)
}
