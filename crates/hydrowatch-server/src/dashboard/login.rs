//! `/login` and `/logout`. The login form is protected against forgery by a double submit: its
//! page sets a random cookie and carries the same value in a hidden field, and a login whose
//! two do not match is refused. A good login opens a session (cookie `hw_session`); failures are
//! logged with the name and address, and past the limit refused without checking.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{Refresh, page_refreshing};
use crate::auth::{LOGIN_COOKIE, PageCaller, SESSION_COOKIE, cookie, local_path, peer, set_cookie};
use crate::db::random_token;
use crate::state::{ApiError, AppState};

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The login page, with `problem` said above the form.
fn login_page(app: &AppState, status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let csrf = random_token();
    let body = html! {
        h1 { "hydrowatch: log in" }
        @if let Some(p) = problem { p.error #problem { (p) } }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            p { label { "name " input #name type="text" name="name" required autofocus autocomplete="username"; } }
            p { label { "password " input #password type="password" name="password" required autocomplete="current-password"; } }
            p { button #login type="submit" { "Log in" } }
        }
    };
    let mut r = page_refreshing(status, "log in", None, Refresh::Never, body);
    if let Ok(v) = set_cookie(LOGIN_COOKIE, &csrf, 3600, app.settings.tls).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /login?next=`.
pub async fn form(
    State(app): State<Arc<AppState>>,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = q.ok().and_then(|Query(q)| q.next);
    login_page(&app, StatusCode::OK, local_path(next.as_deref()), None)
}

/// What the login form posts.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf: String,
    next: Option<String>,
    name: String,
    password: String,
}

/// `POST /login`.
pub async fn log_in(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let Ok(Form(form)) = form else {
        return Ok(login_page(
            &app,
            StatusCode::BAD_REQUEST,
            "/",
            Some("The form did not read: try again."),
        ));
    };
    let next = local_path(form.next.as_deref()).to_string();
    if cookie(&headers, LOGIN_COOKIE) != Some(form.csrf.as_str()) {
        return Ok(login_page(
            &app,
            StatusCode::FORBIDDEN,
            &next,
            Some("This login form has expired or did not come from this server: try again."),
        ));
    }
    let from = peer(&extensions);
    let name = hydrowatch_core::prefix(&form.name);
    if let Some(wait) = app.logins.blocked(&form.name, from) {
        tracing::warn!(user = name, address = ?from, "login refused: too many failed logins");
        let minutes = wait.as_secs().div_ceil(60);
        return Ok(login_page(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!(
                "Too many failed logins: try again in {minutes} min."
            )),
        ));
    }
    // A name no user can have is not looked up (nor kept: see the guard).
    let user = if crate::accounts::valid_name(&form.name) {
        tokio::task::block_in_place(|| app.db.check_password(&form.name, &form.password))?
    } else {
        None
    };
    let Some(user) = user else {
        app.logins.failed(&form.name, from);
        tracing::warn!(user = name, address = ?from, "failed login");
        return Ok(login_page(
            &app,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong name or password."),
        ));
    };
    app.logins.succeeded(&user.name, from);
    let now = chrono::Utc::now().timestamp();
    let seconds = app.settings.session_seconds;
    let (token, _) = tokio::task::block_in_place(|| app.db.open_session(&user, now, seconds))?;
    tracing::info!(user = user.name, address = ?from, "logged in");
    let mut r = Redirect::to(&next).into_response();
    let headers = r.headers_mut();
    for value in [
        set_cookie(SESSION_COOKIE, &token, seconds, app.settings.tls),
        set_cookie(LOGIN_COOKIE, "", 0, app.settings.tls),
    ] {
        if let Ok(v) = value.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

/// What the logout form posts.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// `POST /logout`.
pub async fn log_out(
    State(app): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    caller.check_csrf(csrf.as_deref())?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        tokio::task::block_in_place(|| app.db.close_session(token))?;
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, app.settings.tls).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}
