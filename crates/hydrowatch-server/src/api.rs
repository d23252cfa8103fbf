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
//! The OpenAPI document is served at `/api/v1/openapi.json`. Everything else needs a person:
//! an operator token (`Authorization: Bearer`) or a login's session ([`crate::auth`]); a device
//! token is refused (403). Read: `GET /api/v1/devices`, `GET /api/v1/alarms?device=&open=true&min_stage=&since=&until=`
//! (Unix seconds), `GET /api/v1/forecasts?device=&series=&limit=`,
//! `GET /api/v1/accuracy?device=&days=` (each actual hour against the forecast issued the day
//! before; actuals come with the daily forecast messages), `GET /api/v1/alarms/active` (what
//! people have to handle) and `GET /api/v1/alarms/{device}/{alarm_id}` (one alarm's history).
//! Act (operators and admins; [`crate::alarms`]): `POST /api/v1/alarms/{device}/{alarm_id}/ack`,
//! `/shelve`, `/unshelve`, `/comment`, `/assign`, answered with the alarm's new state; 404 an
//! unknown alarm, 409 nothing to do (acknowledged already, not shelved), 422 a bad request.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hydrowatch_protocol::check::prefix_error;
use hydrowatch_protocol::{
    Accuracy, Acknowledged, AlarmHistory, AlarmRecord, AlarmStatus, AssignRequest, CommentRequest,
    DeviceSummary, ErrorBody, ForecastBody, IngestRequest, NoteRequest, RuleRecord, RuleRequest,
    ShelveRequest,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::accounts::Role;
use crate::alarms::{Action, ActionError};
use crate::auth::{ApiCaller, CSRF_HEADER, Caller};
use crate::db::{AlarmFilter, Db};
use crate::notify::rules::RuleError;
use crate::sql::DbError;
use crate::state::{ApiError, AppState, bad_query};

/// Largest request body accepted.
pub const MAX_BODY: usize = 4 << 20;

fn device_of(db: &Db, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "send `Authorization: Bearer <token>` (issue one with `hydrowatch serve token create DEVICE_ID`)".into()))?;
    tokio::task::block_in_place(|| db.device_for_token(token.trim()))?
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown token".into()))
}

/// `POST /api/v1/ingest`: the envelopes stay JSON values until each is checked, so that an
/// error names the message it is in.
pub async fn ingest(
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
                prefix_error(&other.body_text())
            ),
        ),
    })?;
    let body: IngestRequest<Value> = serde_path_to_error::deserialize(&body).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            prefix_error(&e.to_string()),
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
        match hydrowatch_protocol::check(i, m, &device, now) {
            Ok(message) => messages.push(message),
            // The id of the invalid message, when it has one, lets the device set it aside.
            Err(e) => {
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(ErrorBody {
                        error: e.to_string(),
                        conflicting: None,
                        invalid: Some(
                            m["message_id"]
                                .as_str()
                                .map(|id| vec![id.to_string()])
                                .unwrap_or_default(),
                        ),
                    }),
                )
                    .into_response());
            }
        }
    }
    let ids: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
    match tokio::task::block_in_place(|| db.ingest(&device, &messages, now)) {
        Ok(stored) => {
            tracing::debug!(device, received = ids.len(), stored, "ingest");
            Ok(axum::Json(Acknowledged { acknowledged: ids }).into_response())
        }
        Err(DbError::Conflict(conflicting)) => {
            tracing::warn!(
                device,
                ?conflicting,
                "message ids sent again with other content: batch refused"
            );
            Ok((
                StatusCode::CONFLICT,
                axum::Json(ErrorBody {
                    error: format!("{} message id(s) of this batch were stored before with other content; nothing of the batch was stored", conflicting.len()),
                    conflicting: Some(conflicting),
                    invalid: None,
                }),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/devices`.
pub async fn devices(
    State(app): State<Arc<AppState>>,
    _caller: ApiCaller,
) -> Result<axum::Json<Vec<DeviceSummary>>, ApiError> {
    Ok(axum::Json(tokio::task::block_in_place(|| {
        app.db.devices()
    })?))
}

/// `GET /api/v1/alarms`.
pub async fn alarms(
    State(app): State<Arc<AppState>>,
    _caller: ApiCaller,
    filter: Result<Query<AlarmFilter>, QueryRejection>,
) -> Result<axum::Json<Vec<AlarmRecord>>, ApiError> {
    let Query(filter) = filter.map_err(bad_query)?;
    Ok(axum::Json(tokio::task::block_in_place(|| {
        app.db.alarms(&filter)
    })?))
}

/// Query of `GET /api/v1/forecasts`.
#[derive(Debug, Deserialize)]
pub struct ForecastQuery {
    device: String,
    series: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/forecasts`.
pub async fn forecasts(
    State(app): State<Arc<AppState>>,
    _caller: ApiCaller,
    q: Result<Query<ForecastQuery>, QueryRejection>,
) -> Result<axum::Json<Vec<ForecastBody>>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(7).min(100);
    Ok(axum::Json(tokio::task::block_in_place(|| {
        app.db.forecasts(&q.device, q.series.as_deref(), limit)
    })?))
}

/// Query of `GET /api/v1/accuracy`.
#[derive(Debug, Deserialize)]
pub struct AccuracyQuery {
    device: String,
    days: Option<i64>,
}

/// `GET /api/v1/accuracy`.
pub async fn accuracy(
    State(app): State<Arc<AppState>>,
    _caller: ApiCaller,
    q: Result<Query<AccuracyQuery>, QueryRejection>,
) -> Result<axum::Json<Vec<Accuracy>>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let days = q.days.unwrap_or(7).clamp(1, 365);
    Ok(axum::Json(tokio::task::block_in_place(|| {
        app.db.accuracy(&q.device, days)
    })?))
}

/// Query of `GET /api/v1/alarms/active`.
#[derive(Debug, Deserialize)]
pub struct ActiveQuery {
    device: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Most alarms to handle in one answer of the API.
pub const MAX_ACTIVE_LIMIT: usize = 1000;

/// `GET /api/v1/alarms/active?device=&offset=&limit=`: the alarms people have to handle (active,
/// or cleared and not acknowledged), unacknowledged first; `limit` (at most and by default
/// [`MAX_ACTIVE_LIMIT`]) of them after the first `offset`; `X-Total-Count` says how many there are.
pub async fn alarms_to_handle(
    State(app): State<Arc<AppState>>,
    _caller: ApiCaller,
    q: Result<Query<ActiveQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let now = chrono::Utc::now().timestamp();
    let limit = q.limit.unwrap_or(MAX_ACTIVE_LIMIT).min(MAX_ACTIVE_LIMIT);
    let list = tokio::task::block_in_place(|| {
        app.db
            .alarms_to_handle(q.device.as_deref(), q.offset.unwrap_or(0), limit, now)
    })?;
    Ok((
        [("x-total-count", list.total.to_string())],
        axum::Json(list.alarms),
    )
        .into_response())
}

/// The `{device}/{alarm_id}` of an alarm's path.
fn alarm_key(path: Result<Path<(String, u64)>, PathRejection>) -> Result<(String, u64), ApiError> {
    path.map(|Path(key)| key).map_err(|e| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no such alarm: {}", prefix_error(&e.body_text())),
        )
    })
}

/// `GET /api/v1/alarms/{device}/{alarm_id}`.
pub async fn alarm_history(
    State(app): State<Arc<AppState>>,
    _caller: ApiCaller,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<axum::Json<AlarmHistory>, ApiError> {
    let (device, alarm) = alarm_key(path)?;
    let now = chrono::Utc::now().timestamp();
    tokio::task::block_in_place(|| app.db.alarm_history(&device, alarm, now))?
        .map(axum::Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("device {device:?} has no alarm {alarm}"),
            )
        })
}

/// `caller` does `action` to an alarm: the one path of the API and the dashboard's forms. The
/// caller must be an operator (or admin); `csrf` is what a session's request carried.
pub fn perform(
    app: &AppState,
    caller: &Caller,
    csrf: Option<&str>,
    (device, alarm): (&str, u64),
    action: &Action,
) -> Result<AlarmStatus, ApiError> {
    caller.require(Role::Operator)?;
    caller.check_csrf(csrf)?;
    let now = chrono::Utc::now().timestamp();
    tokio::task::block_in_place(|| app.db.act(device, alarm, &caller.user, action, now)).map_err(
        |e| match e {
            ActionError::NoSuchAlarm(..) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            ActionError::Nothing(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
            ActionError::Invalid(_) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            ActionError::Db(e) => e.into(),
        },
    )
}

/// A JSON request body of type `T` (a missing body reads as `{}` where `T` allows it).
fn body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the body is not the expected JSON: {}",
                prefix_error(&e.to_string())
            ),
        )
    })
}

/// The API's action handlers: the caller, the alarm, the body read as `$request` and made an
/// [`Action`] by `$make`.
macro_rules! action_handler {
    ($(#[$doc:meta])* $name:ident, $request:ty, $make:expr) => {
        $(#[$doc])*
        pub async fn $name(
            State(app): State<Arc<AppState>>,
            ApiCaller(caller): ApiCaller,
            path: Result<Path<(String, u64)>, PathRejection>,
            headers: HeaderMap,
            bytes: axum::body::Bytes,
        ) -> Result<axum::Json<AlarmStatus>, ApiError> {
            let (device, alarm) = alarm_key(path)?;
            let request: $request = body(&bytes)?;
            let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let make: fn($request) -> Action = $make;
            perform(&app, &caller, csrf, (&device, alarm), &make(request)).map(axum::Json)
        }
    };
}

action_handler!(
    /// `POST /api/v1/alarms/{device}/{alarm_id}/ack`.
    acknowledge,
    NoteRequest,
    |r| Action::Acknowledge(r.comment)
);
action_handler!(
    /// `POST /api/v1/alarms/{device}/{alarm_id}/shelve`.
    shelve,
    ShelveRequest,
    |r| Action::Shelve {
        reason: r.reason,
        minutes: r.minutes
    }
);
action_handler!(
    /// `POST /api/v1/alarms/{device}/{alarm_id}/unshelve`.
    unshelve,
    NoteRequest,
    |r| Action::Unshelve(r.comment)
);
action_handler!(
    /// `POST /api/v1/alarms/{device}/{alarm_id}/comment`.
    comment,
    CommentRequest,
    |r| Action::Comment(r.comment)
);
action_handler!(
    /// `POST /api/v1/alarms/{device}/{alarm_id}/assign`.
    assign,
    AssignRequest,
    |r| Action::Assign(r.user)
);

/// `GET /api/v1/rules` (admins): the notification rules, without their secrets.
pub async fn rules(
    State(app): State<Arc<AppState>>,
    ApiCaller(caller): ApiCaller,
) -> Result<axum::Json<Vec<RuleRecord>>, ApiError> {
    caller.require(Role::Admin)?;
    let rules = tokio::task::block_in_place(|| app.db.rules())?;
    Ok(axum::Json(rules.into_iter().map(|r| r.record).collect()))
}

/// `POST /api/v1/rules` (admins): adds a rule; 201 with it as stored, 409 a name taken, 422 a
/// field out of bounds.
pub async fn add_rule(
    State(app): State<Arc<AppState>>,
    ApiCaller(caller): ApiCaller,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
    let request: RuleRequest = body(&bytes)?;
    crate::notify::channels::channel_of(request.channel)
        .reachable(&request.target, app.settings.private_webhooks)
        .map_err(|why| ApiError(StatusCode::UNPROCESSABLE_ENTITY, why))?;
    let now = chrono::Utc::now().timestamp();
    match tokio::task::block_in_place(|| app.db.add_rule(&request, now)) {
        Ok(rule) => {
            tracing::info!(
                user = caller.user.name,
                rule = rule.name,
                "notification rule added"
            );
            Ok((StatusCode::CREATED, axum::Json(rule)).into_response())
        }
        Err(RuleError::Invalid(e)) => Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e)),
        Err(e @ RuleError::Exists(_)) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
        Err(RuleError::Db(e)) => Err(e.into()),
    }
}

/// `DELETE /api/v1/rules/{id}` (admins): removes a rule with what it has not sent yet; 204, or
/// 404.
pub async fn remove_rule(
    State(app): State<Arc<AppState>>,
    ApiCaller(caller): ApiCaller,
    headers: HeaderMap,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
    let Ok(Path(id)) = path else {
        return Err(ApiError(StatusCode::NOT_FOUND, "no such rule".into()));
    };
    if tokio::task::block_in_place(|| app.db.remove_rule(id))? {
        tracing::info!(
            user = caller.user.name,
            rule = id,
            "notification rule removed"
        );
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no rule {id}")))
    }
}
