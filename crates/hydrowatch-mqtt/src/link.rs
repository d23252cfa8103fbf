//! One connection to a broker. rumqttc's synchronous client runs its event loop only while
//! someone iterates its `Connection`, so a thread does that for the link's whole life (keeping
//! the keep-alive pings going while the owner waits) and hands every event over a channel.
//!
//! Invariants: the link's thread never waits for its owner (the channel is unbounded), since the
//! owner may be waiting for it: a publish or an acknowledgement goes through rumqttc's bounded
//! request channel, which only that thread empties. What the channel can hold is bounded by MQTT's
//! flow control instead: at most `inflight` publishes of ours unacknowledged, and (MQTT 5's
//! receive maximum, the broker's `max_inflight_messages` over 3.1.1) at most `inflight` of the
//! broker's unacknowledged.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason};
use rumqttc::{Outgoing, Packet as Packet4, QoS, TlsConfiguration, Transport};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{BrokerSettings, MqttError, Version};

/// Debian's bundle of trusted roots, used when `mqtts://` names no CA file.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the broker said about one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acked {
    /// It holds the message for its subscribers.
    Stored,
    /// MQTT 5: nobody is subscribed, so the broker dropped the message (send it again later).
    NoSubscriber,
    /// MQTT 5: it refused the message (the reason code; e.g. not authorised by its ACL).
    Refused(String),
}

/// An event of the connection, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// Connected (again); whether the broker still had this client's session.
    Connected {
        /// The broker resumed the persistent session.
        session_present: bool,
    },
    /// A publish went out with this packet id (in the order of [`Link::publish`] calls).
    Sent(u16),
    /// The broker answered publish `pkid`.
    Acked {
        /// The packet id.
        pkid: u16,
        /// What it said.
        outcome: Acked,
    },
    /// A message arrived; acknowledge it with [`Link::ack`] once it is safe.
    Received(Box<Received>),
    /// The connection failed (why); a reconnecting link tries again.
    Down(String),
}

/// A message received from the broker.
#[derive(Debug)]
pub struct Received {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    publish: Publish,
}

#[derive(Debug)]
enum Publish {
    V5(rumqttc::v5::mqttbytes::v5::Publish),
    V4(rumqttc::Publish),
}

enum Client {
    V5(rumqttc::v5::Client),
    V4(rumqttc::Client),
}

/// A connection to a broker and the thread that runs it.
pub struct Link {
    client: Client,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    /// Connects (in the background: the first event says how it went) with a persistent
    /// session named by the client id. `reconnect`: try again after a failure (with waits from
    /// 1 to 30 s) rather than end; `manual_acks`: received messages are acknowledged only by
    /// [`Link::ack`].
    pub fn open(
        settings: &BrokerSettings,
        reconnect: bool,
        manual_acks: bool,
    ) -> Result<Link, MqttError> {
        let transport = if settings.tls {
            Some(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls_config(settings)?),
            )))
        } else {
            None
        };
        // Unbounded (see the invariants): a bounded one filled by a backlog the broker sent at
        // once left this thread and an owner acknowledging waiting for each other for good.
        let (tx, events) = mpsc::channel();
        let name = format!("mqtt {}", settings.client_id);
        let (client, thread) = match settings.version {
            Version::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(
                    settings.client_id.clone(),
                    settings.host.clone(),
                    settings.port,
                );
                o.set_keep_alive(settings.keep_alive)
                    .set_clean_start(false)
                    // Never expires: messages for an absent server wait for it.
                    .set_session_expiry_interval(Some(u32::MAX))
                    .set_outgoing_inflight_upper_limit(settings.inflight)
                    // Else the broker may send 65,535 messages before the first is acknowledged.
                    .set_receive_maximum(Some(settings.inflight))
                    .set_manual_acks(manual_acks)
                    .set_max_packet_size(Some(8 << 20));
                if let Some((user, password)) = &settings.credentials {
                    o.set_credentials(user.clone(), password.clone());
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (client, mut connection) =
                    rumqttc::v5::Client::new(o, settings.inflight as usize);
                let run = move || {
                    let step = || {
                        Some(match connection.recv().ok()? {
                            Ok(e) => Ok(event5(e)),
                            Err(e) => Err((
                                match e {
                                    rumqttc::v5::ConnectionError::ConnectionRefused(code) => {
                                        format!(
                                            "the broker refused the connection: {code:?} (check the user, the password, and that it speaks MQTT 5; else set mqtt_version = \"3.1.1\")"
                                        )
                                    }
                                    other => other.to_string(),
                                },
                                connection
                                    .eventloop
                                    .state
                                    .events
                                    .drain(..)
                                    .filter_map(event5)
                                    .collect(),
                            )),
                        })
                    };
                    run_loop(step, &tx, reconnect)
                };
                (Client::V5(client), spawn(name, run)?)
            }
            Version::V311 => {
                let mut o = rumqttc::MqttOptions::new(
                    settings.client_id.clone(),
                    settings.host.clone(),
                    settings.port,
                );
                o.set_keep_alive(settings.keep_alive)
                    .set_clean_session(false)
                    .set_inflight(settings.inflight)
                    .set_manual_acks(manual_acks)
                    .set_max_packet_size(8 << 20, 8 << 20);
                if let Some((user, password)) = &settings.credentials {
                    o.set_credentials(user.clone(), password.clone());
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (client, mut connection) = rumqttc::Client::new(o, settings.inflight as usize);
                let run = move || {
                    let step = || {
                        Some(match connection.recv().ok()? {
                            Ok(e) => Ok(event4(e)),
                            Err(e) => Err((
                                match e {
                                    rumqttc::ConnectionError::ConnectionRefused(code) => format!(
                                        "the broker refused the connection: {code:?} (check the user and the password)"
                                    ),
                                    other => other.to_string(),
                                },
                                connection
                                    .eventloop
                                    .state
                                    .events
                                    .drain(..)
                                    .filter_map(event4)
                                    .collect(),
                            )),
                        })
                    };
                    run_loop(step, &tx, reconnect)
                };
                (Client::V4(client), spawn(name, run)?)
            }
        };
        Ok(Link {
            client,
            events,
            thread: Some(thread),
        })
    }

    /// Publishes `payload` on `topic` at QoS 1 (not retained). Its [`Event::Sent`] and
    /// [`Event::Acked`] follow.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), MqttError> {
        let result = match &self.client {
            Client::V5(c) => c
                .publish(topic, QoS5::AtLeastOnce, false, payload)
                .map_err(|e| e.to_string()),
            Client::V4(c) => c
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .map_err(|e| e.to_string()),
        };
        result.map_err(MqttError::Down)
    }

    /// Subscribes to `filter` at QoS 1.
    pub fn subscribe(&self, filter: &str) -> Result<(), MqttError> {
        let result = match &self.client {
            Client::V5(c) => c
                .subscribe(filter, QoS5::AtLeastOnce)
                .map_err(|e| e.to_string()),
            Client::V4(c) => c
                .subscribe(filter, QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
        };
        result.map_err(MqttError::Down)
    }

    /// Acknowledges a received message (the broker may then forget it).
    pub fn ack(&self, received: &Received) -> Result<(), MqttError> {
        let result = match (&self.client, &received.publish) {
            (Client::V5(c), Publish::V5(p)) => c.ack(p).map_err(|e| e.to_string()),
            (Client::V4(c), Publish::V4(p)) => c.ack(p).map_err(|e| e.to_string()),
            _ => Err("a message acknowledged on another link".to_string()),
        };
        result.map_err(MqttError::Down)
    }

    /// The next event, waiting at most `timeout`; `None` when nothing happened meanwhile. A link
    /// whose thread ended answers [`Event::Down`].
    pub fn next(&self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                Some(Event::Down("the connection has ended".into()))
            }
        }
    }

    /// Says goodbye to the broker (the session stays) and ends the thread.
    pub fn close(mut self) {
        let _ = match &self.client {
            Client::V5(c) => c.disconnect().map_err(|e| e.to_string()),
            Client::V4(c) => c.disconnect().map_err(|e| e.to_string()),
        };
        // Drain until the loop ends, at most a second.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            match self.events.recv_timeout(Duration::from_millis(50)) {
                Err(RecvTimeoutError::Disconnected) => break,
                _ => continue,
            }
        }
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}

fn spawn(name: String, run: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, MqttError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(run)
        .map_err(|e| MqttError::Down(format!("cannot start the connection's thread: {e}")))
}

/// One step of a connection: an event (or one of no interest), or a failure with the events
/// it had read before failing; `None` once the link was dropped.
type Step = Option<Result<Option<Event>, (String, Vec<Event>)>>;

/// Hands the events on until the owner goes away (or, without `reconnect`, the first error).
/// The events read just before a failure (a PUBACK followed by the broker closing the
/// connection, as Mosquitto does after refusing a publish) are handed on before it.
fn run_loop(mut step: impl FnMut() -> Step, tx: &Sender<Event>, reconnect: bool) {
    let mut wait = Duration::from_secs(1);
    while let Some(n) = step() {
        match n {
            Ok(None) => {}
            Ok(Some(event)) => {
                if matches!(event, Event::Connected { .. }) {
                    wait = Duration::from_secs(1);
                }
                if tx.send(event).is_err() {
                    return;
                }
            }
            Err((why, before)) => {
                for event in before {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                if tx.send(Event::Down(why)).is_err() || !reconnect {
                    return;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn event5(e: rumqttc::v5::Event) -> Option<Event> {
    match e {
        rumqttc::v5::Event::Incoming(Packet5::ConnAck(c)) => Some(Event::Connected {
            session_present: c.session_present,
        }),
        rumqttc::v5::Event::Incoming(Packet5::PubAck(a)) => Some(Event::Acked {
            pkid: a.pkid,
            outcome: match a.reason {
                PubAckReason::Success => Acked::Stored,
                PubAckReason::NoMatchingSubscribers => Acked::NoSubscriber,
                other => Acked::Refused(format!("{other:?}")),
            },
        }),
        rumqttc::v5::Event::Incoming(Packet5::Publish(p)) => {
            Some(Event::Received(Box::new(Received {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.to_vec(),
                publish: Publish::V5(p),
            })))
        }
        rumqttc::v5::Event::Outgoing(Outgoing::Publish(pkid)) => Some(Event::Sent(pkid)),
        _ => None,
    }
}

fn event4(e: rumqttc::Event) -> Option<Event> {
    match e {
        rumqttc::Event::Incoming(Packet4::ConnAck(c)) => Some(Event::Connected {
            session_present: c.session_present,
        }),
        rumqttc::Event::Incoming(Packet4::PubAck(a)) => Some(Event::Acked {
            pkid: a.pkid,
            outcome: Acked::Stored,
        }),
        rumqttc::Event::Incoming(Packet4::Publish(p)) => {
            Some(Event::Received(Box::new(Received {
                topic: p.topic.clone(),
                payload: p.payload.to_vec(),
                publish: Publish::V4(p),
            })))
        }
        rumqttc::Event::Outgoing(Outgoing::Publish(pkid)) => Some(Event::Sent(pkid)),
        _ => None,
    }
}

/// rustls with ring (as everywhere in hydrowatch): the broker checked against the CA file (or
/// the system's roots), a client certificate when one is given.
pub fn tls_config(settings: &BrokerSettings) -> Result<rustls::ClientConfig, MqttError> {
    let tls = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        MqttError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let ca = settings
        .ca_file
        .as_deref()
        .unwrap_or(Path::new(SYSTEM_ROOTS));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| tls("CA file", ca, &e))? {
        let cert = cert.map_err(|e| tls("CA file", ca, &e))?;
        roots.add(cert).map_err(|e| tls("CA file", ca, &e))?;
    }
    if roots.is_empty() {
        return Err(tls("CA file", ca, &"no certificate in it"));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| MqttError::Tls(e.to_string()))?
    .with_root_certificates(roots);
    match &settings.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| tls("client certificate", cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls("client certificate", cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls("client key", key, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| MqttError::Tls(format!("client certificate: {e}")))
        }
    }
}
