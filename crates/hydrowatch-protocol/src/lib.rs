//! The wire protocol between a hydrowatch device and the central server, one definition for
//! both sides: the [`Envelope`] of every message and its typed [`Body`] ([`message`]), the
//! server's checks of what it receives ([`check`]), and the HTTP API's request and answer bodies
//! ([`api`]).
//!
//! Invariants: every time on the wire is RFC 3339 text, every number a JSON number; a message id
//! is the idempotency key, unique per device; a body that passes [`check::check`] satisfies every
//! bound written there, so nothing after it checks again.

pub mod api;
pub mod check;
pub mod message;

pub use api::{
    Accuracy, Acknowledged, AlarmActionRecord, AlarmHistory, AlarmRecord, AlarmStatus,
    AssignRequest, Channel, CommentRequest, DeviceSummary, ErrorBody, IngestRequest, NoteRequest,
    Notification, NotifiedAlarm, OperatorAction, RuleRecord, RuleRequest, ShelveRequest,
};
pub use check::{
    Checked, CheckedBody, FORECAST_POINTS, Invalid, MAX_ACTUALS, MAX_DETECTABLE_LEAKS,
    MAX_MESSAGE_ID, check,
};
pub use message::{
    Actual, AlarmKind, AlertBody, Body, DetectableLeak, Direction, Envelope, ForecastBody,
    ForecastPoint, HeartbeatBody, Kind, SERVER_ALARM_IDS, Transition, rfc3339, seconds,
};
