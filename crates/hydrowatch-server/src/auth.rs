//! Who is calling: a device (its token; it may only ingest, see [`crate::api`]), a person in a
//! browser (the session cookie of a login), or a person's script (an operator API token,
//! `Authorization: Bearer`). Pages send a caller without credentials to the login page; the API
//! answers it 401.
//!
//! Invariants: every route but ingest, the login page and the OpenAPI document goes through
//! [`ApiCaller`] or [`PageCaller`]; a request that changes something and comes with a session
//! cookie carries the session's CSRF token (a form field, or the `X-CSRF-Token` header), so a
//! page of another site cannot act in a person's name; the session cookie is HttpOnly,
//! SameSite=Strict, and Secure when the server speaks TLS; failed logins are counted per name
//! and per address ([`crate::limit::LoginGuard`]), and past the limit refused without checking
//! the password.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::accounts::{Role, Session, User};
use crate::state::{ApiError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hw_session";
/// The login form's CSRF cookie (double submit: the form carries the same value).
pub const LOGIN_COOKIE: &str = "hw_login";
/// The header a script with a session sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Someone allowed in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub user: User,
    /// Their browser's session (None: an API token).
    pub session: Option<Session>,
}

impl Caller {
    /// Whether they may do what `role` may.
    pub fn may(&self, role: Role) -> bool {
        self.user.role >= role
    }

    /// The session's CSRF token ("" for a token, which needs none).
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }

    /// Refuses with 403 unless they may do what `role` may.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.may(role) {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is a {}: this needs an {}",
                    self.user.name,
                    self.user.role.name(),
                    role.name()
                ),
            ))
        }
    }

    /// Refuses with 403 unless a session's request carries its CSRF token (`sent`); a token's
    /// request needs none (a browser never sends it by itself).
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), ApiError> {
        match &self.session {
            None => Ok(()),
            Some(s) if sent.is_some_and(|t| same(t, &s.csrf)) => Ok(()),
            Some(_) => Err(ApiError(
                StatusCode::FORBIDDEN,
                "the request lacks this session's CSRF token (reload the page and try again)"
                    .into(),
            )),
        }
    }
}

/// Compares without stopping at the first difference (a token's time to compare tells nothing).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `name=value` for `max_age` seconds (0: delete it), HttpOnly,
/// SameSite=Strict, Secure when `secure`.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Why nobody is let in.
enum Denied {
    /// No credentials at all.
    Nobody,
    /// A token nobody has.
    UnknownToken,
    /// A device's token on a route for people.
    DeviceToken(String),
    /// The database failed.
    Failed(ApiError),
}

/// The caller of a request: an operator token, or else a session cookie.
fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Caller, Denied> {
    let now = chrono::Utc::now().timestamp();
    let db = &app.db;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    tokio::task::block_in_place(|| {
        if let Some(token) = bearer {
            if let Some(user) = db.operator_for_token(token).map_err(fail)? {
                return Ok(Caller {
                    user,
                    session: None,
                });
            }
            if let Some(device) = db.device_for_token(token).map_err(fail)? {
                return Err(Denied::DeviceToken(device));
            }
            return Err(Denied::UnknownToken);
        }
        match cookie(headers, SESSION_COOKIE) {
            Some(token) => match db.session(token, now).map_err(fail)? {
                Some(session) => Ok(Caller {
                    user: session.user.clone(),
                    session: Some(session),
                }),
                None => Err(Denied::Nobody),
            },
            None => Err(Denied::Nobody),
        }
    })
}

fn fail(e: crate::sql::DbError) -> Denied {
    Denied::Failed(e.into())
}

/// The caller of an API route; without valid credentials, 401 (403 for a device's token).
#[derive(Debug, Clone)]
pub struct ApiCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(app, &parts.headers).map(ApiCaller).map_err(|denied| {
            let (status, message) = match denied {
                Denied::Nobody => (
                    StatusCode::UNAUTHORIZED,
                    "send `Authorization: Bearer <operator token>` (issue one with `hydrowatch serve token create --operator NAME`) or log in".to_string(),
                ),
                Denied::UnknownToken => (StatusCode::UNAUTHORIZED, "unknown token".to_string()),
                Denied::DeviceToken(device) => (
                    StatusCode::FORBIDDEN,
                    format!("that is device {device}'s token: a device token can only ingest"),
                ),
                Denied::Failed(e) => return e.into_response(),
            };
            let mut r = ApiError(status, message).into_response();
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"hydrowatch\""),
                );
            }
            r
        })
    }
}

/// The caller of a page; without a session, a redirect to the login page (which comes back).
#[derive(Debug, Clone)]
pub struct PageCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(app, &parts.headers) {
            Ok(caller) => Ok(PageCaller(caller)),
            Err(Denied::Failed(e)) => Err(e.into_response()),
            Err(_) => {
                let back = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let to = format!("/login?next={}", url_escape(&back));
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// `text` with everything but unreserved characters percent-encoded (a query value).
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where to go after logging in or acting on a page: a path of this server, never another
/// site, `/` otherwise. Read as a browser reads it: a browser drops tabs and line breaks from a
/// URL and takes a backslash for a slash (`/\t/evil.example` is `//evil.example`, another
/// host), so a path with a control character, white space or a backslash is refused, and what
/// is left must resolve to this server. Only visible ASCII is taken (the dashboard's own paths
/// are; a `Location` header carries nothing else, and a browser percent-encodes the rest).
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if is_local(p) => p,
        _ => "/",
    }
}

/// Whether `path` is a path of this server however a browser reads it (see [`local_path`]).
fn is_local(path: &str) -> bool {
    const HERE: &str = "http://this-server.invalid/";
    let plain = path.starts_with('/')
        && !path.starts_with("//")
        && path.chars().all(|c| c.is_ascii_graphic() && c != '\\');
    plain
        && reqwest::Url::parse(HERE)
            .and_then(|here| here.join(path))
            .is_ok_and(|url| url.origin() == reqwest::Url::parse(HERE).expect("a URL").origin())
}

/// The client's address: through the trusted proxies, else the connection's peer (the
/// listener puts both on each request).
pub fn peer(parts_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    parts_extensions
        .get::<hydrowatch_listen::ClientAddress>()
        .map(|c| c.0)
        .or_else(|| {
            parts_extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path(Some("/devices/a?x=1")), "/devices/a?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "x",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: a=b",
            "/ /evil.example",
            "/\u{0}",
            // Found by the login form's fuzzing: a Location header of raw UTF-8.
            "/\u{FFFD}%2F%2Fevil.example",
            "/dma-é",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(url_escape("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
