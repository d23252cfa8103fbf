//! Delivery over HTTPS: `POST {url}/api/v1/ingest`, batch by batch (the contract in the
//! module above).

use hydrowatch_core::cut;
use hydrowatch_protocol::{Acknowledged, ErrorBody, IngestRequest};
use hydrowatch_store::{OutboxRow, Store};
use serde_json::value::RawValue;

use super::{UplinkConfig, UplinkError};

/// What the server answered a batch.
enum Answer {
    /// These ids are stored.
    Acknowledged(Vec<String>),
    /// These ids are refused for good (the HTTP status, why); nothing of the batch was stored.
    RefusedForGood(Vec<String>, u16, String),
}

/// Delivers the outbox over HTTPS.
#[derive(Debug)]
pub(super) struct Https {
    client: reqwest::blocking::Client,
    config: UplinkConfig,
    endpoint: String,
}

impl Https {
    /// An uplink to `config.url`.
    pub(super) fn new(config: UplinkConfig) -> Result<Https, UplinkError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("hydrowatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UplinkError::Unreachable {
                url: config.url.clone(),
                message: e.to_string(),
            })?;
        let endpoint = format!("{}/api/v1/ingest", config.url.trim_end_matches('/'));
        Ok(Https {
            client,
            config,
            endpoint,
        })
    }

    /// Sends `batch`; returns how many of its messages the server acknowledged (they left the
    /// outbox). Those it refuses for good are set aside (0 returned: the caller sends the rest
    /// again); a batch it acknowledged none of is an error, so as not to send it in a loop.
    pub(super) fn send(
        &self,
        store: &mut Store,
        batch: Vec<OutboxRow>,
    ) -> Result<usize, UplinkError> {
        // Sent as stored: checked to be JSON, not parsed into values again, not copied.
        let mut ids = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.len());
        for row in batch {
            let m = row.message;
            let raw = RawValue::from_string(m.body).map_err(|source| UplinkError::Corrupt {
                id: m.message_id.clone(),
                source,
            })?;
            ids.push(m.message_id);
            messages.push(raw);
        }
        // Only ids of this batch count; anything else the server says is ignored.
        let of_batch = |answered: &[String]| -> Vec<String> {
            ids.iter()
                .filter(|id| answered.contains(id))
                .cloned()
                .collect()
        };
        let acknowledged = match self.post(&IngestRequest {
            device_id: self.config.device_id.clone(),
            messages,
        })? {
            Answer::Acknowledged(answered) => of_batch(&answered),
            Answer::RefusedForGood(answered, status, why) => {
                // Sending them again would be refused again.
                let refused = of_batch(&answered);
                let moved =
                    store.outbox_set_aside(&refused, &why, chrono::Utc::now().timestamp())?;
                tracing::error!(
                    ids = ?refused,
                    "the server refused these messages for good ({why}): {moved} set aside (see `hydrowatch status`)"
                );
                if moved == 0 {
                    return Err(UplinkError::Refused {
                        url: self.config.url.clone(),
                        status,
                        body: why,
                    });
                }
                return Ok(0);
            }
        };
        let removed = store.outbox_ack(&acknowledged)?;
        tracing::info!(
            sent = ids.len(),
            acknowledged = removed,
            "outbox batch delivered"
        );
        if removed == 0 {
            return Err(UplinkError::BadAnswer {
                url: self.config.url.clone(),
                message: format!("none of the {} messages sent was acknowledged", ids.len()),
            });
        }
        Ok(removed)
    }

    fn post(&self, body: &IngestRequest<Box<RawValue>>) -> Result<Answer, UplinkError> {
        let url = || self.config.url.clone();
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(&self.config.token)
            .json(body)
            .send()
            .map_err(|e| UplinkError::Unreachable {
                url: url(),
                message: e.to_string(),
            })?;
        let status = response.status();
        let text = response.text().map_err(|e| UplinkError::Unreachable {
            url: url(),
            message: e.to_string(),
        })?;
        if matches!(status.as_u16(), 409 | 422)
            && let Ok(r) = serde_json::from_str::<ErrorBody>(&text)
            && !r.refused_ids().is_empty()
        {
            let why = format!("HTTP {}: {}", status.as_u16(), cut(&r.error, 300));
            return Ok(Answer::RefusedForGood(
                r.refused_ids().to_vec(),
                status.as_u16(),
                why,
            ));
        }
        if !status.is_success() {
            return Err(UplinkError::Refused {
                url: url(),
                status: status.as_u16(),
                body: cut(&text, 200),
            });
        }
        serde_json::from_str::<Acknowledged>(&text)
            .map(|a| Answer::Acknowledged(a.acknowledged))
            .map_err(|e| UplinkError::BadAnswer {
                url: url(),
                message: format!("{e}: {}", cut(&text, 200)),
            })
    }
}
