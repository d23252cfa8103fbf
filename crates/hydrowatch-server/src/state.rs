//! What the HTTP handlers share: the application's state and the error every handler answers
//! with (JSON `{"error": ...}`, through the protocol's [`ErrorBody`]).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hydrowatch_protocol::ErrorBody;
use hydrowatch_protocol::check::prefix_error;

use crate::db::Db;
use crate::limit::{Limiter, LoginGuard, RateLimit};

/// How the server runs, beyond its database.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Ingest requests per device.
    pub rate_limit: RateLimit,
    /// How long a login lasts.
    pub session_seconds: i64,
    /// The server speaks TLS (`serve --tls-cert`): session cookies are marked Secure.
    pub tls: bool,
    /// Rules may send webhooks to loopback, link-local and private addresses (`serve
    /// --private-webhooks`; the notifier's `NotifySettings` says the same).
    pub private_webhooks: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rate_limit: RateLimit::default(),
            session_seconds: 12 * 3600,
            tls: false,
            private_webhooks: false,
        }
    }
}

/// What the handlers share.
pub struct AppState {
    /// The storage.
    pub db: Arc<Db>,
    /// The ingest rate limit per device.
    pub limiter: Limiter,
    /// Failed logins.
    pub logins: LoginGuard,
    /// How the server runs.
    pub settings: Settings,
}

/// An API error: a status and what is wrong.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, axum::Json(ErrorBody::new(self.1))).into_response();
        if self.0 == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<crate::sql::DbError> for ApiError {
    fn from(e: crate::sql::DbError) -> Self {
        tracing::error!("{e}");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server's database failed".into(),
        )
    }
}

/// A query string that does not parse: 400 with a JSON error, like every other error.
pub fn bad_query(e: QueryRejection) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        format!("bad query: {}", prefix_error(&e.body_text())),
    )
}
