//! Store and forward: the outbox is sent in its order (alerts first, then the rest, each oldest
//! first), in batches, within an optional bandwidth cap, after what outlived its kind's time to
//! live is removed; a message leaves the outbox only once it is acknowledged (by the server over HTTPS, by the broker over MQTT), so a crash,
//! a kill -9 or a link that is down loses nothing and, since the server stores each id once,
//! duplicates nothing.
//!
//! HTTPS, the contract with the server (docs/ARCHITECTURE.md): `POST {url}/api/v1/ingest` with
//! `Authorization: Bearer {token}` and a JSON body `{"device_id": ..., "messages": [envelope,
//! ...]}`; the server answers 200 with `{"acknowledged": [message_id, ...]}`, the ids it holds now
//! (stored by this request or an earlier one); or 409 with `{"conflicting": [message_id, ...]}`
//! (ids it holds with other content) or 422 with `{"invalid": [message_id]}` (a message it will
//! never accept): those are set aside (kept in the database with the server's reason, counted,
//! never sent again) and the rest is sent again. Any other answer leaves the batch in the outbox.
//!
//! MQTT ([`mqtt`]): each envelope is published at QoS 1 on `hydrowatch/v1/{device}/{kind}`; the
//! acknowledged messages leave the outbox in order, up to the first one that was not.

mod https;
mod mqtt;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hydrowatch_config::{ServerConfig, Transport};
use hydrowatch_store::{Store, StoreError};
use rand::RngExt;

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// HTTPS to the server, or MQTT to a broker.
    pub transport: Transport,
    /// Base URL of the central server (of the broker, with MQTT).
    pub url: String,
    /// The device's token (its password at the broker, with MQTT).
    pub token: String,
    /// The device's id.
    pub device_id: String,
    /// Messages per request (per wait for the broker's acknowledgements).
    pub batch: usize,
    /// Time limit of one request (of the broker's acknowledgements of a batch).
    pub timeout: Duration,
    /// MQTT: "5" or "3.1.1".
    pub mqtt_version: String,
    /// MQTT: the CA file for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// MQTT: a client certificate and its key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Time to live of each kind named, in seconds.
    pub ttl: Vec<(String, i64)>,
    /// The bandwidth cap in kilobits per second; 0: none.
    pub bandwidth_kbps: u32,
}

impl UplinkConfig {
    /// Delivery as `server` says, for device `device_id`.
    pub fn of(server: &ServerConfig, device_id: &str) -> UplinkConfig {
        UplinkConfig {
            transport: server.transport,
            url: server.url.clone(),
            token: server.token.clone(),
            device_id: device_id.to_string(),
            batch: server.batch_messages,
            timeout: Duration::from_secs(u64::from(server.timeout_seconds)),
            mqtt_version: server.mqtt_version.clone(),
            ca_file: server.ca_file.clone(),
            client_cert: server.client_cert.clone().zip(server.client_key.clone()),
            ttl: server
                .ttl_hours
                .iter()
                .map(|(kind, hours)| (kind.clone(), i64::from(*hours) * 3600))
                .collect(),
            bandwidth_kbps: server.bandwidth_kbps,
        }
    }
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
    /// MQTT 5: the broker has no subscriber for the messages (no server has ever subscribed),
    /// so it dropped them; they stay in the outbox.
    #[error(
        "the broker {url} has no subscriber for hydrowatch's messages (is `hydrowatch serve --mqtt` running?); they stay in the outbox"
    )]
    NoSubscriber {
        /// The broker.
        url: String,
    },
    /// The broker settings are wrong (a bad URL, an unreadable certificate).
    #[error("MQTT: {0}")]
    Mqtt(#[from] hydrowatch_mqtt::MqttError),
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
            UplinkError::Unreachable { .. } | UplinkError::NoSubscriber { .. } => true,
            UplinkError::Refused { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Delivers the outbox over the configured transport, within the bandwidth cap.
#[derive(Debug)]
pub struct Uplink {
    way: Way,
    batch: usize,
    ttl: Vec<(String, i64)>,
    cap: Option<Cap>,
}

#[derive(Debug)]
enum Way {
    Https(https::Https),
    Mqtt(mqtt::Mqtt),
}

/// What a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Messages that left the outbox, acknowledged.
    pub delivered: usize,
    /// Bytes of message bodies sent.
    pub bytes: u64,
    /// The bandwidth cap stopped it with messages waiting: the next may go after this long.
    pub capped: Option<Duration>,
}

impl Uplink {
    /// An uplink as `config` says (nothing is connected yet).
    pub fn new(config: UplinkConfig) -> Result<Uplink, UplinkError> {
        let (batch, ttl, cap) = (
            config.batch.max(1),
            config.ttl.clone(),
            (config.bandwidth_kbps > 0).then(|| Cap::new(config.bandwidth_kbps)),
        );
        let way = match config.transport {
            Transport::Https => Way::Https(https::Https::new(config)?),
            Transport::Mqtt => Way::Mqtt(mqtt::Mqtt::new(config)?),
        };
        Ok(Uplink {
            way,
            batch,
            ttl,
            cap,
        })
    }

    /// Removes what outlived its time to live, then sends the outbox in its order (alerts
    /// first, oldest first), batch by batch, until it is empty or the bandwidth cap says to
    /// wait. Stops at the first failure, leaving the rest waiting.
    pub fn flush(&mut self, store: &mut Store) -> Result<Sent, UplinkError> {
        let wall_clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        store.outbox_expire(&self.ttl, wall_clock)?;
        let mut sent = Sent::default();
        loop {
            let mut batch = store.outbox_batch(self.batch)?;
            if batch.is_empty() {
                return Ok(sent);
            }
            if let Some(cap) = &mut self.cap {
                let sizes: Vec<u64> = batch.iter().map(|r| r.message.body.len() as u64).collect();
                match cap.take(&sizes, Instant::now()) {
                    Ok(fits) => batch.truncate(fits),
                    Err(wait) => {
                        sent.capped = Some(wait);
                        return Ok(sent);
                    }
                }
            }
            let bytes: u64 = batch.iter().map(|r| r.message.body.len() as u64).sum();
            let delivered = match &mut self.way {
                Way::Https(h) => h.send(store, batch)?,
                Way::Mqtt(m) => m.send(store, batch)?,
            };
            sent.delivered += delivered;
            sent.bytes += bytes;
        }
    }
}

/// The bandwidth cap: a token bucket of bytes, filled at the cap's rate up to a minute's worth.
#[derive(Debug)]
struct Cap {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Cap {
    fn new(kbps: u32) -> Cap {
        let rate = f64::from(kbps) * 1000.0 / 8.0;
        Cap {
            rate,
            burst: rate * 60.0,
            tokens: rate * 60.0,
            last: Instant::now(),
        }
    }

    /// How many of the leading messages (their `sizes`) may go now, taking their bytes; or how
    /// long to wait for the first. A message larger than the burst goes alone when the bucket
    /// is full.
    fn take(&mut self, sizes: &[u64], now: Instant) -> Result<usize, Duration> {
        self.tokens =
            (self.tokens + self.rate * now.duration_since(self.last).as_secs_f64()).min(self.burst);
        self.last = now;
        let (mut fits, mut bytes) = (0, 0.0);
        for &size in sizes {
            if bytes + size as f64 > self.tokens {
                break;
            }
            bytes += size as f64;
            fits += 1;
        }
        if fits == 0 {
            if self.tokens >= self.burst {
                fits = 1;
                bytes = sizes[0] as f64;
            } else {
                let need = (sizes[0] as f64).min(self.burst) - self.tokens;
                return Err(Duration::from_secs_f64((need / self.rate).max(0.001)));
            }
        }
        self.tokens -= bytes;
        Ok(fits)
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
    fn the_bandwidth_cap_lets_a_minutes_worth_go_then_paces_at_its_rate() {
        // 8 kbit/s: 1,000 bytes a second, 60,000 at once.
        let mut cap = Cap::new(8);
        let t0 = cap.last;
        assert_eq!(cap.take(&[20_000, 20_000, 20_000, 20_000], t0), Ok(3));
        let wait = cap.take(&[500], t0).unwrap_err();
        assert!(
            wait <= Duration::from_millis(500) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert_eq!(cap.take(&[500], t0 + Duration::from_millis(500)), Ok(1));
        // Larger than a minute's worth: alone, once the bucket is full again.
        let huge = [100_000];
        assert!(cap.take(&huge, t0 + Duration::from_secs(30)).is_err());
        assert_eq!(cap.take(&huge, t0 + Duration::from_secs(61)), Ok(1));
        assert!(
            cap.take(&[1], t0 + Duration::from_secs(62)).is_err(),
            "in debt"
        );
    }

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
