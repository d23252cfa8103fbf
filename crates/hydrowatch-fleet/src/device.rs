//! The simulated devices of `bench fleet`: each has an outbox of its own with the device's
//! semantics (a message leaves it only once acknowledged: by the server over HTTPS, by the
//! broker's PUBACK over MQTT, in order; a failure keeps it and waits with a growing, jittered
//! backoff) and produces heartbeats every `heartbeat` and alarm transitions and forecasts at
//! random (Poisson) times at the configured daily rates, as real envelopes the server checks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hydrowatch_edge::Backoff;
use rand::RngExt;
use serde_json::json;
use tokio::time::sleep_until;

use crate::watch::Pending;

/// What every device shares.
pub struct Fleet {
    /// This run's prefix of message ids (runs on one database do not collide).
    pub run: String,
    /// Seconds between heartbeats.
    pub heartbeat: Duration,
    /// Mean seconds between alarm transitions of one device.
    pub alarm_every: f64,
    /// Mean seconds between forecasts of one device.
    pub forecast_every: f64,
    /// When the devices stop producing (they go on delivering).
    pub produce_until: Instant,
    /// Set when everything is to stop.
    pub stop: AtomicBool,
    /// Messages not yet seen stored, with their enqueue time.
    pub pending: Arc<Pending>,
    /// Messages sent again after a failure or a lost acknowledgement.
    pub resent: AtomicU64,
    /// Sends (requests or connections) that failed.
    pub failures: AtomicU64,
}

/// One device's identity and outbox.
pub struct Device {
    /// Its id.
    pub id: String,
    /// Its token (its password at the broker).
    pub token: String,
    /// (message id, kind, envelope), oldest first.
    outbox: VecDeque<(String, &'static str, String)>,
    /// How many messages at the front of the outbox were sent at least once.
    sent_once: usize,
    seq: u64,
    alarms: u64,
    open_alarm: Option<u64>,
}

impl Device {
    /// A device with an empty outbox.
    pub fn new(id: String, token: String) -> Device {
        Device {
            id,
            token,
            outbox: VecDeque::new(),
            sent_once: 0,
            seq: 0,
            alarms: 0,
            open_alarm: None,
        }
    }

    fn enqueue(&mut self, fleet: &Fleet, kind: &'static str, body: serde_json::Value) {
        self.seq += 1;
        let message_id = format!("{}-{}-{}", fleet.run, self.id, self.seq);
        let envelope = json!({
            "device_id": self.id, "message_id": message_id, "kind": kind,
            "created_at": hydrowatch_protocol::rfc3339(chrono::Utc::now().timestamp()),
            "body": body,
        });
        fleet.pending.add(&message_id, Instant::now());
        self.outbox
            .push_back((message_id, kind, envelope.to_string()));
    }

    /// The first `n` messages are sent (again, for those sent before).
    fn note_sent(&mut self, fleet: &Fleet, n: usize) {
        fleet
            .resent
            .fetch_add(self.sent_once.min(n) as u64, Ordering::Relaxed);
        self.sent_once = self.sent_once.max(n);
    }

    /// The oldest message was acknowledged: it leaves the outbox.
    fn acknowledged(&mut self, fleet: &Fleet) {
        if let Some((message_id, _, _)) = self.outbox.pop_front() {
            fleet.pending.left_outbox(&message_id);
            self.sent_once = self.sent_once.saturating_sub(1);
        }
    }

    fn heartbeat(&mut self, fleet: &Fleet) {
        let body = json!({"version": env!("CARGO_PKG_VERSION"), "outbox_depth": self.outbox.len()});
        self.enqueue(fleet, "heartbeat", body);
    }

    /// The next alarm transition: a new alarm opens, or the open one clears.
    fn alarm(&mut self, fleet: &Fleet) {
        let (alarm_id, opened) = match self.open_alarm.take() {
            Some(id) => (id, false),
            None => {
                self.alarms += 1;
                self.open_alarm = Some(self.alarms);
                (self.alarms, true)
            }
        };
        let body = json!({"machine_number": 1,
            "time": hydrowatch_protocol::rfc3339(chrono::Utc::now().timestamp()),
            "outlier_stage": if opened { 4 } else { 0 }, "value": 180.0, "series": "flow_rate",
            "unit": "m3/h", "direction": "high", "expected": 120.0, "percentile": 99.9999,
            "kind": "outlier", "alarm_id": alarm_id, "state": if opened { "opened" } else { "cleared" }});
        self.enqueue(fleet, "alert", body);
    }

    fn forecast(&mut self, fleet: &Fleet) {
        let now = chrono::Utc::now().timestamp();
        let hour = now - now % 3600 + 3600;
        let points: Vec<serde_json::Value> = (0..168)
            .map(|h| {
                let v = 120.0 + 40.0 * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
                json!({"time": hydrowatch_protocol::rfc3339(hour + h * 3600), "value": v,
                       "lower": v * 0.85, "upper": v * 1.15})
            })
            .collect();
        let actuals: Vec<serde_json::Value> = (1..=24)
            .map(|h| json!({"time": hydrowatch_protocol::rfc3339(hour - h * 3600), "value": 118.0}))
            .collect();
        let body = json!({"series": "flow_rate", "unit": "m3/h",
            "issued_at": hydrowatch_protocol::rfc3339(now), "model": "combination",
            "points": points, "actuals": actuals});
        self.enqueue(fleet, "forecast", body);
    }
}

/// When each kind of message is next due.
struct Schedule {
    heartbeat: Instant,
    alarm: Instant,
    forecast: Instant,
}

impl Schedule {
    fn new(fleet: &Fleet, start: Instant) -> Schedule {
        let mut rng = rand::rng();
        Schedule {
            // The fleet's heartbeats spread over the period, as real devices' are.
            heartbeat: start + fleet.heartbeat.mul_f64(rng.random_range(0.0..1.0)),
            alarm: start + exponential(fleet.alarm_every),
            forecast: start + exponential(fleet.forecast_every),
        }
    }

    /// Queues what is due at `now`; the next time something is due.
    fn produce(&mut self, fleet: &Fleet, device: &mut Device, now: Instant) -> Instant {
        if now < fleet.produce_until {
            while self.heartbeat <= now {
                device.heartbeat(fleet);
                self.heartbeat += fleet.heartbeat;
            }
            while self.alarm <= now {
                device.alarm(fleet);
                self.alarm += exponential(fleet.alarm_every);
            }
            while self.forecast <= now {
                device.forecast(fleet);
                self.forecast += exponential(fleet.forecast_every);
            }
        }
        self.heartbeat.min(self.alarm).min(self.forecast)
    }
}

fn exponential(mean: f64) -> Duration {
    let u: f64 = rand::rng().random_range(f64::EPSILON..1.0);
    Duration::from_secs_f64((-u.ln() * mean).min(1e9))
}

/// The backoff of a device whose sends fail, the daemon's: 1 s doubling to 30 s, full jitter.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Most messages per request (HTTPS) or in flight (MQTT).
const BATCH: usize = 50;

/// A device delivering over HTTPS to `servers` (starting with `first`, moving to the next
/// after a failure, as a load balancer would), from `start`.
pub async fn https(
    fleet: Arc<Fleet>,
    mut device: Device,
    client: reqwest::Client,
    servers: Arc<Vec<String>>,
    first: usize,
    start: Instant,
) {
    tokio::time::sleep_until(start.into()).await;
    let mut schedule = Schedule::new(&fleet, Instant::now());
    let mut server = first;
    let mut backoff = backoff();
    let mut retry_at = Instant::now();
    while !fleet.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let next = schedule.produce(&fleet, &mut device, now);
        if !device.outbox.is_empty() && now >= retry_at {
            let batch: Vec<&(String, &str, String)> = device.outbox.iter().take(BATCH).collect();
            let body = format!(
                "{{\"device_id\":\"{}\",\"messages\":[{}]}}",
                device.id,
                batch
                    .iter()
                    .map(|(_, _, e)| e.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let n = batch.len();
            device.note_sent(&fleet, n);
            let sent = client
                .post(format!("{}/api/v1/ingest", servers[server]))
                .bearer_auth(&device.token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let acknowledged = match sent {
                Ok(r) if r.status().is_success() => r
                    .json::<hydrowatch_protocol::Acknowledged>()
                    .await
                    .ok()
                    .map(|a| a.acknowledged.len()),
                _ => None,
            };
            match acknowledged {
                Some(k) if k == n => {
                    for _ in 0..n {
                        device.acknowledged(&fleet);
                    }
                    backoff.reset();
                    continue;
                }
                _ => {
                    fleet.failures.fetch_add(1, Ordering::Relaxed);
                    server = (server + 1) % servers.len();
                    retry_at = Instant::now() + backoff.next_delay();
                }
            }
        }
        let wake = if device.outbox.is_empty() {
            next
        } else {
            next.min(retry_at)
        };
        tokio::select! {
            _ = sleep_until(wake.into()) => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// A device delivering over MQTT 5 to the broker of `options` (its persistent session, QoS 1 on
/// `hydrowatch/v1/{device}/{kind}`), from `start`.
pub async fn mqtt(
    fleet: Arc<Fleet>,
    mut device: Device,
    options: rumqttc::v5::MqttOptions,
    start: Instant,
) {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
    use rumqttc::v5::{AsyncClient, Event};

    tokio::time::sleep_until(start.into()).await;
    let mut schedule = Schedule::new(&fleet, Instant::now());
    let mut backoff = backoff();
    'connection: while !fleet.stop.load(Ordering::Relaxed) {
        let (client, mut eventloop) = AsyncClient::new(options.clone(), BATCH * 2);
        let mut connected = false;
        // The front of the outbox published on this connection: (packet id once sent, acked).
        let mut in_flight: VecDeque<(Option<u16>, bool)> = VecDeque::new();
        loop {
            if fleet.stop.load(Ordering::Relaxed) {
                break 'connection;
            }
            let now = Instant::now();
            let next = schedule.produce(&fleet, &mut device, now);
            if connected && in_flight.is_empty() && !device.outbox.is_empty() {
                let n = device.outbox.len().min(BATCH);
                device.note_sent(&fleet, n);
                for (_, kind, envelope) in device.outbox.iter().take(n) {
                    let topic = hydrowatch_mqtt::topic(&device.id, kind);
                    if client
                        .try_publish(
                            topic,
                            QoS::AtLeastOnce,
                            false,
                            envelope.clone().into_bytes(),
                        )
                        .is_err()
                    {
                        break;
                    }
                    in_flight.push_back((None, false));
                }
            }
            tokio::select! {
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        backoff.reset();
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                        if let Some(slot) = in_flight.iter_mut().find(|(p, _)| p.is_none()) {
                            slot.0 = Some(pkid);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let ok = ack.reason == PubAckReason::Success;
                        if let Some(slot) = in_flight
                            .iter_mut()
                            .find(|(p, acked)| *p == Some(ack.pkid) && !acked)
                        {
                            slot.1 = ok;
                        }
                        if !ok {
                            // Nobody subscribed (or refused): keep it, try again later.
                            fleet.failures.fetch_add(1, Ordering::Relaxed);
                            let _ = client.disconnect().await;
                        }
                        // In order: the acknowledged front leaves the outbox.
                        while in_flight.front().is_some_and(|(_, acked)| *acked) {
                            in_flight.pop_front();
                            device.acknowledged(&fleet);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        fleet.failures.fetch_add(1, Ordering::Relaxed);
                        // What was in flight is sent again on a new connection.
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue 'connection;
                    }
                },
                _ = sleep_until(next.into()) => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}
