//! Store and forward: the outbox is sent to the central server oldest first, in batches; a message
//! leaves the outbox only after the server acknowledged its id, so a crash, a kill -9 or a server
//! that is down loses nothing and, since the server stores each id once, duplicates nothing.
//!
//! The contract with the server (docs/ARCHITECTURE.md): `POST {url}/api/v1/ingest` with
//! `Authorization: Bearer {token}` and a JSON body `{"device_id": ..., "messages": [envelope,
//! ...]}`; the server answers 200 with `{"acknowledged": [message_id, ...]}`, the ids it holds now
//! (stored by this request or an earlier one); or 409 with `{"conflicting": [message_id, ...]}`
//! (ids it holds with other content) or 422 with `{"invalid": [message_id]}` (a message it will
//! never accept): those are set aside (kept in the database with the server's reason, counted,
//! never sent again) and the rest is sent again. Any other answer leaves the batch in the outbox.

use std::time::Duration;

use hydrowatch_core::cut;
use hydrowatch_protocol::{Acknowledged, ErrorBody, IngestRequest};
use hydrowatch_store::{Store, StoreError};
use rand::RngExt;
use serde_json::value::RawValue;

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// Base URL of the central server.
    pub url: String,
    /// The device's bearer token.
    pub token: String,
    /// The device's id.
    pub device_id: String,
    /// Messages per request.
    pub batch: usize,
    /// Time limit of one request.
    pub timeout: Duration,
}

/// Why a delivery stopped.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// No answer (connection refused, timeout, DNS): try again later.
    #[error("the server {url} is unreachable: {message}")]
    Unreachable {
        /// The server.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered, but not with an acknowledgement.
    #[error("the server {url} refused the batch: HTTP {status}: {body}")]
    Refused {
        /// The server.
        url: String,
        /// Its HTTP status.
        status: u16,
        /// The start of its answer.
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("the server {url} answered something that is not an acknowledgement: {message}")]
    BadAnswer {
        /// The server.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The outbox could not be read or updated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message in the outbox is not JSON (it was written by this program: a bug or damage).
    #[error("outbox message {id} is not JSON: {source}")]
    Corrupt {
        /// Its message id.
        id: String,
        /// The parser's error.
        source: serde_json::Error,
    },
}

impl UplinkError {
    /// Whether waiting and trying again may help.
    pub fn is_transient(&self) -> bool {
        match self {
            UplinkError::Unreachable { .. } => true,
            UplinkError::Refused { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// What the server answered a batch.
enum Answer {
    /// These ids are stored.
    Acknowledged(Vec<String>),
    /// These ids are refused for good (the HTTP status, why); nothing of the batch was stored.
    RefusedForGood(Vec<String>, u16, String),
}

/// Delivers the outbox.
#[derive(Debug)]
pub struct Uplink {
    client: reqwest::blocking::Client,
    config: UplinkConfig,
    endpoint: String,
}

impl Uplink {
    /// An uplink to `config.url`.
    pub fn new(config: UplinkConfig) -> Result<Uplink, UplinkError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("hydrowatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UplinkError::Unreachable {
                url: config.url.clone(),
                message: e.to_string(),
            })?;
        let endpoint = format!("{}/api/v1/ingest", config.url.trim_end_matches('/'));
        Ok(Uplink {
            client,
            config,
            endpoint,
        })
    }

    /// Sends the outbox, oldest first, batch by batch, until it is empty; returns how many
    /// messages were acknowledged. Stops at the first failure, leaving the rest waiting (and at
    /// a batch the server acknowledged none of, so as not to send it in a loop).
    pub fn flush(&self, store: &mut Store) -> Result<usize, UplinkError> {
        let mut delivered = 0;
        loop {
            let batch = store.outbox_batch(self.config.batch.max(1))?;
            if batch.is_empty() {
                return Ok(delivered);
            }
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
                    continue;
                }
            };
            let removed = store.outbox_ack(&acknowledged)?;
            delivered += removed;
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
        }
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

/// Exponential backoff with full jitter while the server is unreachable: the `n`th wait is
/// uniform in `[0, min(max, base · 2ⁿ)]`, so a fleet that lost its server does not come back all
/// at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Waits starting at `base`, never above `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        cap.mul_f64(rand::rng().random_range(0.0..=1.0))
    }

    /// After a success: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let waits: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (n, w) in waits.iter().enumerate() {
            let cap = Duration::from_secs((1u64 << n).min(60));
            assert!(*w <= cap, "wait {n}: {w:?} above {cap:?}");
        }
        assert!(
            waits.iter().any(|w| *w > Duration::from_secs(8)),
            "{waits:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
