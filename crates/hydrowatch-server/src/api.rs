//! The HTTP API. Ingest (the contract of docs/ARCHITECTURE.md): `POST /api/v1/ingest` with
//! `Authorization: Bearer <token>` and `{"device_id", "messages": [envelope, ...]}`; 200
//! `{"acknowledged": [ids]}` lists every id of the batch (stored now or before: a repeat is
//! acknowledged, not stored twice; ids are unique per device). A batch with any invalid message
//! is refused whole (422) and nothing of it is stored. Errors are JSON `{"error": "..."}`: 400
//! not JSON or a bad query, 401 no or unknown token, 403 a token of another device, 409 a message
//! id stored before with other content (`"conflicting": [ids]`; nothing of the batch stored), 413
//! a body over 4 MB, 422 an invalid message (`"invalid": [id]`), 429 a device over its rate
//! limit (`Retry-After` says when to come back).
//!
//! The OpenAPI document is served at `/api/v1/openapi.json`. Read: `GET /api/v1/devices`, `GET /api/v1/alarms?device=&open=true&min_stage=&since=&until=`
//! (Unix seconds), `GET /api/v1/forecasts?device=&series=&limit=`,
//! `GET /api/v1/accuracy?device=&days=` (each actual hour against the forecast issued the day
//! before; actuals come with the daily forecast messages).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::{AlarmFilter, Db};
use crate::envelope;
use crate::limit::{Limiter, RateLimit};

/// Largest request body accepted.
pub const MAX_BODY: usize = 4 << 20;

/// An API error: a status and what is wrong.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, axum::Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<crate::DbError> for ApiError {
    fn from(e: crate::DbError) -> Self {
        tracing::error!("{e}");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server's database failed".into(),
        )
    }
}

/// The OpenAPI document of these routes (checked against them by the tests).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/ingest"),
    ("get", "/api/v1/devices"),
    ("get", "/api/v1/alarms"),
    ("get", "/api/v1/forecasts"),
    ("get", "/api/v1/accuracy"),
    ("get", "/api/v1/openapi.json"),
];

/// What the handlers share.
pub struct AppState {
    /// The storage.
    pub db: Arc<Db>,
    limiter: Limiter,
}

/// The API's routes over `db`, with the default rate limit per device.
pub fn router(db: Arc<Db>) -> Router {
    router_with(db, RateLimit::default())
}

/// The API's routes over `db`, with `limit` per device on ingest.
pub fn router_with(db: Arc<Db>, limit: RateLimit) -> Router {
    let state = Arc::new(AppState {
        db,
        limiter: Limiter::new(limit),
    });
    Router::new()
        .route("/", get(crate::dashboard::fleet))
        .route("/devices/{id}", get(crate::dashboard::device))
        .route("/api/v1/ingest", post(ingest))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/forecasts", get(forecasts))
        .route("/api/v1/accuracy", get(accuracy))
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The server on `listener`, run by a runtime of its own (two worker threads) until that
/// runtime is dropped: for a server inside another program (the demo, benchmarks, tests).
pub fn serve_in_background(
    db: Arc<Db>,
    limit: RateLimit,
    listener: std::net::TcpListener,
    limits: crate::Limits,
) -> std::io::Result<tokio::runtime::Runtime> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let app = router_with(db, limit);
    runtime.spawn(crate::listen::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    Ok(runtime)
}

fn device_of(db: &Db, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "send `Authorization: Bearer <token>` (issue one with `hydrowatch serve token create DEVICE_ID`)".into()))?;
    tokio::task::block_in_place(|| db.device_for_token(token.trim()))?
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown token".into()))
}

/// The body of `POST /api/v1/ingest`: the envelopes stay JSON values until each is checked, so
/// that an error names the message it is in.
#[derive(Debug, Deserialize)]
struct IngestBody {
    device_id: String,
    messages: Vec<Value>,
}

async fn ingest(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<axum::Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let db = &app.db;
    let device = device_of(db, &headers)?;
    if let Err(wait) = app.limiter.take(&device) {
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{device} sends too fast: try again in {wait:.1} s"),
        ));
    }
    let axum::Json(body) = body.map_err(|e| match e {
        JsonRejection::BytesRejection(_) => ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} MB", MAX_BODY >> 20),
        ),
        other => ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "the body is not the expected JSON: {}",
                envelope::prefix_error(&other.body_text())
            ),
        ),
    })?;
    let body: IngestBody = serde_path_to_error::deserialize(&body).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            envelope::prefix_error(&e.to_string()),
        )
    })?;
    if body.device_id != device {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "`device_id` = {:?}, but the token is {device:?}'s",
                hydrowatch_core::prefix(&body.device_id)
            ),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        match envelope::check(i, m, &device, now) {
            Ok(message) => messages.push(message),
            // The id of the invalid message, when it has one, lets the device set it aside.
            Err(e) => {
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({
                        "error": e,
                        "invalid": m["message_id"].as_str().map(|id| vec![id]).unwrap_or_default(),
                    })),
                )
                    .into_response());
            }
        }
    }
    let ids: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
    match tokio::task::block_in_place(|| db.ingest(&device, &messages, now)) {
        Ok(stored) => {
            tracing::debug!(device, received = ids.len(), stored, "ingest");
            Ok(axum::Json(json!({ "acknowledged": ids })).into_response())
        }
        Err(crate::DbError::Conflict(conflicting)) => {
            tracing::warn!(
                device,
                ?conflicting,
                "message ids sent again with other content: batch refused"
            );
            Ok((
                StatusCode::CONFLICT,
                axum::Json(json!({
                    "error": format!("{} message id(s) of this batch were stored before with other content; nothing of the batch was stored", conflicting.len()),
                    "conflicting": conflicting,
                })),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// A query string that does not parse: 400 with a JSON error, like every other error.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        format!("bad query: {}", envelope::prefix_error(&e.body_text())),
    )
}

async fn devices(State(app): State<Arc<AppState>>) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!(tokio::task::block_in_place(|| app
        .db
        .devices())?)))
}

async fn alarms(
    State(app): State<Arc<AppState>>,
    filter: Result<Query<AlarmFilter>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(filter) = filter.map_err(bad_query)?;
    Ok(axum::Json(json!(tokio::task::block_in_place(|| app
        .db
        .alarms(&filter))?)))
}

/// Query of `GET /api/v1/forecasts`.
#[derive(Debug, Deserialize)]
pub struct ForecastQuery {
    device: String,
    series: Option<String>,
    limit: Option<usize>,
}

async fn forecasts(
    State(app): State<Arc<AppState>>,
    q: Result<Query<ForecastQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(7).min(100);
    Ok(axum::Json(json!(tokio::task::block_in_place(|| app
        .db
        .forecasts(&q.device, q.series.as_deref(), limit))?)))
}

/// Query of `GET /api/v1/accuracy`.
#[derive(Debug, Deserialize)]
pub struct AccuracyQuery {
    device: String,
    days: Option<i64>,
}

async fn accuracy(
    State(app): State<Arc<AppState>>,
    q: Result<Query<AccuracyQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let days = q.days.unwrap_or(7).clamp(1, 365);
    Ok(axum::Json(json!(tokio::task::block_in_place(|| app
        .db
        .accuracy(&q.device, days))?)))
}
