//! The HTTP API's bodies: the ingest request and its answers, and what the read API returns.
//! The OpenAPI document (`hydrowatch-server/openapi.json`) describes these types and is tested
//! against them.

use serde::{Deserialize, Serialize};

use crate::message::{AlarmKind, AlertBody};

/// `POST /api/v1/ingest`: a batch of envelopes of one device, oldest first. The device sends its
/// stored envelopes as they are (`M` = raw JSON); the server reads each as a JSON value first
/// so that an error names the message it is in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestRequest<M> {
    /// The device (the token's).
    pub device_id: String,
    /// The envelopes.
    pub messages: Vec<M>,
}

/// 200 to an ingest: every id of the batch, stored now or before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The message ids.
    pub acknowledged: Vec<String>,
}

/// Every error of the API: what is wrong, and for a refused batch which ids are refused for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong.
    pub error: String,
    /// 409: ids stored before with other content (nothing of the batch stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicting: Option<Vec<String>>,
    /// 422: the id of the invalid message, when it has one (nothing of the batch stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<Vec<String>>,
}

impl ErrorBody {
    /// An error without ids.
    pub fn new(error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            conflicting: None,
            invalid: None,
        }
    }

    /// The ids refused for good (conflicting or invalid), if any.
    pub fn refused_ids(&self) -> &[String] {
        self.conflicting
            .as_deref()
            .or(self.invalid.as_deref())
            .unwrap_or_default()
    }
}

/// `GET /api/v1/devices`: one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// Its id.
    pub id: String,
    /// When it last delivered (Unix seconds).
    pub last_seen: Option<i64>,
    /// Open alarms by stage 1-4 (index 0: stage 1).
    pub open_alarms: [u32; 4],
}

/// `GET /api/v1/alarms`: one alarm transition as the device sent it, with its device and the
/// message's creation (Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// The device.
    pub device_id: String,
    /// When the device made the message (Unix seconds).
    pub created_at: i64,
    /// The transition.
    #[serde(flatten)]
    pub alert: AlertBody,
}

/// `GET /api/v1/accuracy`: the day-ahead accuracy of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// The series.
    pub series: String,
    /// Hours scored.
    pub hours: usize,
    /// Mean absolute error, in the series' unit.
    pub mae: Option<f64>,
    /// Mean absolute percentage error (hours with a zero actual left out).
    pub mape: Option<f64>,
}

/// What a person did to an alarm (an audit record's action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    /// Acknowledged it (seen, being handled).
    Acknowledged,
    /// Shelved it: it notifies nobody until the shelving ends.
    Shelved,
    /// Ended its shelving.
    Unshelved,
    /// Wrote a comment on it.
    Commented,
    /// Assigned it to a person (or to nobody).
    Assigned,
}

impl OperatorAction {
    /// Every action.
    pub const ALL: [OperatorAction; 5] = [
        OperatorAction::Acknowledged,
        OperatorAction::Shelved,
        OperatorAction::Unshelved,
        OperatorAction::Commented,
        OperatorAction::Assigned,
    ];

    /// Its name in the API and the database.
    pub fn name(self) -> &'static str {
        match self {
            OperatorAction::Acknowledged => "acknowledged",
            OperatorAction::Shelved => "shelved",
            OperatorAction::Unshelved => "unshelved",
            OperatorAction::Commented => "commented",
            OperatorAction::Assigned => "assigned",
        }
    }

    /// The action named `name`.
    pub fn from_name(name: &str) -> Option<OperatorAction> {
        OperatorAction::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The server-side state of one alarm, ISA-18.2's: the device decides whether it is active and
/// at which stage (its transitions); people acknowledge, shelve and assign it on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmStatus {
    /// The device.
    pub device_id: String,
    /// The alarm's id on that device.
    pub alarm_id: u64,
    /// The series it is on.
    pub series: String,
    /// Its kind.
    pub kind: AlarmKind,
    /// The stage of its latest transition (0 once cleared).
    pub stage: u8,
    /// Its highest stage so far.
    pub highest_stage: u8,
    /// Not cleared by the device.
    pub active: bool,
    /// When it opened (the device's clock, Unix seconds).
    pub opened_at: i64,
    /// When its latest transition happened (the device's clock, Unix seconds).
    pub changed_at: i64,
    /// Acknowledged since it last opened or escalated.
    pub acknowledged: bool,
    /// Who acknowledged it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When (the server's clock, Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<i64>,
    /// Shelved now: it notifies nobody.
    pub shelved: bool,
    /// Who shelved it (while shelved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelved_by: Option<String>,
    /// Shelved until then (Unix seconds); shelved without it: until the alarm clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelved_until: Option<i64>,
    /// Why it is shelved (while shelved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelve_reason: Option<String>,
    /// The person it is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// One thing a person did to an alarm: the audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmActionRecord {
    /// When (the server's clock, Unix seconds).
    pub at: i64,
    /// Who.
    pub user: String,
    /// What.
    pub action: OperatorAction,
    /// The comment, or the shelving's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Shelved until then (`shelved` with a duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Assigned to this person (`assigned`; absent: to nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

/// `GET /api/v1/alarms/{device}/{alarm_id}`: an alarm's state, the device's transitions and
/// the people's actions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmHistory {
    /// Its state now.
    pub status: AlarmStatus,
    /// The device's transitions.
    pub transitions: Vec<AlarmRecord>,
    /// The people's actions.
    pub actions: Vec<AlarmActionRecord>,
}

/// `POST .../ack` and `.../unshelve`: an optional comment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// A comment kept with the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `POST .../comment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// The comment.
    pub comment: String,
}

/// `POST .../shelve`: for `minutes`, or (without) until the alarm clears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelveRequest {
    /// Why (required: a shelved alarm is a known nuisance, say which).
    pub reason: String,
    /// For how long; absent: until the alarm clears (one-shot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
}

/// `POST .../assign`: to a user, or (absent) to nobody.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}
