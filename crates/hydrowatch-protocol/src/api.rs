//! The HTTP API's bodies: the ingest request and its answers, and what the read API returns.
//! The OpenAPI document (`hydrowatch-server/openapi.json`) describes these types and is tested
//! against them.

use serde::{Deserialize, Serialize};

use crate::message::{AlarmKind, AlertBody, Transition};

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
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
    pub const ALL: &'static [OperatorAction] = <OperatorAction as strum::VariantArray>::VARIANTS;

    /// Its name in the API and the database, serde's.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The action named `name`.
    pub fn from_name(name: &str) -> Option<OperatorAction> {
        OperatorAction::ALL
            .iter()
            .copied()
            .find(|a| a.name() == name)
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
    /// When its first transition reached the server (the server's clock, Unix seconds): the
    /// list to handle orders by it, a device's clock being possibly wrong.
    pub arrived_at: i64,
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

/// Where a notification rule sends.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Channel {
    /// A JSON POST to a URL, signed with HMAC-SHA256.
    Webhook,
    /// An e-mail over SMTP.
    Email,
}

impl Channel {
    /// Every channel.
    pub const ALL: &'static [Channel] = <Channel as strum::VariantArray>::VARIANTS;

    /// Its name, serde's.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// `POST /api/v1/rules` (admins): who is told of which alarms, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// A name for people, unique.
    pub name: String,
    /// Only these devices' alarms (empty: every device).
    #[serde(default)]
    pub devices: Vec<String>,
    /// Only on these series (empty: every series).
    #[serde(default)]
    pub series: Vec<String>,
    /// Only these kinds (empty: every kind).
    #[serde(default)]
    pub kinds: Vec<AlarmKind>,
    /// Only at this stage or above (1-4).
    pub min_stage: u8,
    /// How.
    pub channel: Channel,
    /// The webhook's URL (http or https), or the e-mail address.
    pub target: String,
    /// The webhook's HMAC-SHA256 key (required for a webhook; never read back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Notify again once if the alarm is still unacknowledged (and not shelved) this many
    /// minutes after the first notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_minutes: Option<u32>,
    /// Alarms of one device within this many seconds of the first go out as one message
    /// (0: each alone, at once).
    #[serde(default)]
    pub group_seconds: u32,
}

/// `GET /api/v1/rules`: a rule as stored (its secret never read back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRecord {
    /// Its id.
    pub id: i64,
    /// A name for people.
    pub name: String,
    /// Only these devices (empty: every device).
    pub devices: Vec<String>,
    /// Only these series (empty: every series).
    pub series: Vec<String>,
    /// Only these kinds (empty: every kind).
    pub kinds: Vec<AlarmKind>,
    /// Only at this stage or above.
    pub min_stage: u8,
    /// How.
    pub channel: Channel,
    /// The webhook's URL, or the e-mail address.
    pub target: String,
    /// Remind after this many minutes unacknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_minutes: Option<u32>,
    /// Grouping window, seconds.
    pub group_seconds: u32,
}

/// One alarm in a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlarm {
    /// The alarm's id on its device.
    pub alarm_id: u64,
    /// Its kind.
    pub kind: AlarmKind,
    /// Its series.
    pub series: String,
    /// Its stage.
    pub stage: u8,
    /// The transition notified (opened or escalated).
    pub state: Transition,
    /// The device's local time of the transition, as the device wrote it.
    pub time: String,
}

/// What a webhook receives (and what an e-mail says): alarms of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// This delivery's id: a retry of the same notification carries the same id.
    pub delivery: String,
    /// The rule's name.
    pub rule: String,
    /// The device.
    pub device_id: String,
    /// `alarms` (new or escalated alarms) or `reminder` (still unacknowledged).
    pub kind: String,
    /// Alarms in this notification (more than listed when `alarms` is cut at 50).
    pub count: u64,
    /// The alarms, oldest first, at most 50.
    pub alarms: Vec<NotifiedAlarm>,
}
