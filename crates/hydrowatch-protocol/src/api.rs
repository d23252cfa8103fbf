//! The HTTP API's bodies: the ingest request and its answers, and what the read API returns.
//! The OpenAPI document (`hydrowatch-server/openapi.json`) describes these types and is tested
//! against them.

use serde::{Deserialize, Serialize};

use crate::message::AlertBody;

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
