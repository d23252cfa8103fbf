//! Delivery over MQTT: a batch of the outbox is published at QoS 1, one message per publish on
//! `hydrowatch/v1/{device}/{kind}`, the envelope as stored; then the broker's PUBACKs are
//! awaited. In the outbox's order, the acknowledged messages leave it (the refused ones, MQTT 5
//! only, are set aside with the broker's reason) up to the first that was not acknowledged, which
//! stays with everything after it: a message never leaves before an older one, and what is sent
//! again is stored once by the server.
//!
//! The connection stays open between batches (its thread keeps the keep-alive going); after a
//! failure it is dropped and the next flush connects anew (the backoff is the daemon's).

use std::time::{Duration, Instant};

use hydrowatch_mqtt::{Acked, BrokerSettings, Event, Link, Version};
use hydrowatch_store::{OutboxRow, Store};

use super::{UplinkConfig, UplinkError};

/// Delivers the outbox to an MQTT broker.
#[derive(Debug)]
pub(super) struct Mqtt {
    settings: BrokerSettings,
    device_id: String,
    timeout: Duration,
    url: String,
    link: Option<Link>,
}

/// Why a batch stopped before its end.
enum Stop {
    Unreachable(String),
    NoSubscriber,
}

impl Mqtt {
    /// An uplink to the broker of `config` (logging in as the device, its token as password).
    pub(super) fn new(config: UplinkConfig) -> Result<Mqtt, UplinkError> {
        let mut settings = BrokerSettings::from_url(&config.url, &config.device_id)?;
        settings.version = Version::parse(&config.mqtt_version)?;
        settings.credentials = Some((config.device_id.clone(), config.token.clone()));
        settings.ca_file = config.ca_file.clone();
        settings.client_cert = config.client_cert.clone();
        settings.inflight = config.batch.clamp(1, u16::MAX as usize) as u16;
        Ok(Mqtt {
            settings,
            device_id: config.device_id,
            timeout: config.timeout,
            url: config.url,
            link: None,
        })
    }

    fn unreachable(&self, message: String) -> UplinkError {
        UplinkError::Unreachable {
            url: self.url.clone(),
            message,
        }
    }

    /// The open connection, or a new one once the broker accepted it (within the timeout).
    fn connect(&mut self) -> Result<(), UplinkError> {
        // A link that went down while idle says so in its queued events.
        if let Some(link) = &self.link {
            while let Some(event) = link.next(Duration::ZERO) {
                if let Event::Down(why) = event {
                    tracing::info!("MQTT: the connection went down while idle: {why}");
                    self.link = None;
                    break;
                }
            }
        }
        if self.link.is_none() {
            let link = Link::open(&self.settings, false, false)?;
            let deadline = Instant::now() + self.timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match link.next(left) {
                    Some(Event::Connected { session_present }) => {
                        tracing::info!(session_present, "MQTT: connected to {}", self.url);
                        break;
                    }
                    Some(Event::Down(why)) => return Err(self.unreachable(why)),
                    Some(_) => {}
                    None => {
                        return Err(self.unreachable(format!(
                            "no answer to the connection within {} s",
                            self.timeout.as_secs()
                        )));
                    }
                }
            }
            self.link = Some(link);
        }
        Ok(())
    }

    /// Publishes `batch` and waits for the broker's answers; returns how many messages left
    /// the outbox (acknowledged, in order, up to the first that was not; those the broker
    /// refused are set aside). Whatever stopped it early is the error.
    pub(super) fn send(
        &mut self,
        store: &mut Store,
        batch: Vec<OutboxRow>,
    ) -> Result<usize, UplinkError> {
        self.connect()?;
        let link = self.link.as_ref().expect("connected above");
        let (outcomes, mut stop) = publish(link, &self.device_id, &batch, self.timeout);
        if stop.is_some() {
            // Its state is unknown: the next flush starts on a new connection.
            self.link = None;
        }
        // In order, up to the first message without a positive answer.
        let mut acknowledged = Vec::new();
        let mut refused = Vec::new();
        for (row, outcome) in batch.iter().zip(&outcomes) {
            match outcome {
                Some(Acked::Stored) => acknowledged.push(row.message.message_id.clone()),
                Some(Acked::Refused(why)) => {
                    refused.push((row.message.message_id.clone(), why.clone()))
                }
                Some(Acked::NoSubscriber) => {
                    stop.get_or_insert(Stop::NoSubscriber);
                    break;
                }
                None => break,
            }
        }
        for (id, why) in &refused {
            let why = format!("the broker refused it: {why}");
            store.outbox_set_aside(
                std::slice::from_ref(id),
                &why,
                chrono::Utc::now().timestamp(),
            )?;
            tracing::error!(id, "{why} (set aside; see `hydrowatch status`)");
        }
        let removed = store.outbox_ack(&acknowledged)?;
        tracing::info!(
            sent = batch.len(),
            acknowledged = removed,
            refused = refused.len(),
            "outbox batch delivered to the broker"
        );
        match stop {
            None => Ok(removed),
            Some(Stop::NoSubscriber) => Err(UplinkError::NoSubscriber {
                url: self.url.clone(),
            }),
            Some(Stop::Unreachable(why)) => Err(self.unreachable(why)),
        }
    }
}

/// Publishes `batch` and waits for the broker's answers, at most `timeout`: each message's
/// answer (none where it did not come) and why it stopped early.
fn publish(
    link: &Link,
    device_id: &str,
    batch: &[OutboxRow],
    timeout: Duration,
) -> (Vec<Option<Acked>>, Option<Stop>) {
    let n = batch.len();
    let mut stop = None;
    for row in batch {
        let m = &row.message;
        let topic = hydrowatch_mqtt::topic(device_id, &m.kind);
        if let Err(e) = link.publish(&topic, m.body.clone().into_bytes()) {
            stop = Some(Stop::Unreachable(e.to_string()));
            break;
        }
    }
    // The nth Sent is the nth publish; an Acked names the packet id it answers.
    let mut pkids: Vec<u16> = Vec::with_capacity(n);
    let mut outcomes: Vec<Option<Acked>> = vec![None; n];
    let mut answered = 0;
    let deadline = Instant::now() + timeout;
    while stop.is_none() && answered < n {
        match link.next(deadline.saturating_duration_since(Instant::now())) {
            Some(Event::Sent(pkid)) => pkids.push(pkid),
            Some(Event::Acked { pkid, outcome }) => {
                if let Some(i) =
                    (0..pkids.len()).find(|&i| pkids[i] == pkid && outcomes[i].is_none())
                {
                    outcomes[i] = Some(outcome);
                    answered += 1;
                }
            }
            Some(Event::Down(why)) => stop = Some(Stop::Unreachable(why)),
            Some(Event::Connected { .. } | Event::Received(_)) => {}
            None => {
                stop = Some(Stop::Unreachable(format!(
                    "{answered} of {n} messages acknowledged within {} s",
                    timeout.as_secs()
                )))
            }
        }
    }
    (outcomes, stop)
}
