//! The daemon's counters, and the local endpoint that shows them: `GET /health` (JSON, for a
//! person or a monitoring probe) and `GET /metrics` (Prometheus text format).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::latency::Latencies;
use crate::sources::SourceCounters;

/// Counters the daemon's threads update and the endpoint reads.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The device's id.
    pub device_id: String,
    /// Unix seconds the daemon started.
    pub started: AtomicI64,
    /// Readings committed.
    pub readings_ingested: AtomicU64,
    /// Readings received again with the same value (nothing changed).
    pub readings_duplicate: AtomicU64,
    /// Readings refused (unknown series, from the future, conflicting value).
    pub readings_refused: AtomicU64,
    /// Time of the newest reading committed (Unix seconds, 0: none yet).
    pub last_reading: AtomicI64,
    /// Alarm transitions written.
    pub alarm_transitions: AtomicU64,
    /// Alarms open now.
    pub alarms_open: AtomicU64,
    /// Messages waiting for the server.
    pub outbox_depth: AtomicU64,
    /// Messages dropped by the outbox policy since the database was created.
    pub outbox_dropped: AtomicU64,
    /// Messages the server refused for good, set aside.
    pub outbox_set_aside: AtomicU64,
    /// Messages removed when their kind's time to live ran out, since the database was created.
    pub outbox_expired: AtomicU64,
    /// Bytes of message bodies sent since start.
    pub uplink_bytes: AtomicU64,
    /// Times the bandwidth cap held delivery back since start.
    pub uplink_capped: AtomicU64,
    /// Commits of readings that failed since start (each is tried again).
    pub commit_failures: AtomicU64,
    /// Why the last commit of readings failed, while they keep failing (`None`: the last one
    /// succeeded).
    pub commit_failing: std::sync::Mutex<Option<String>>,
    /// Messages the server acknowledged since start.
    pub delivered: AtomicU64,
    /// Issue time of the newest forecast (Unix seconds, 0: none yet).
    pub last_forecast: AtomicI64,
    /// Jobs that failed since start.
    pub job_failures: AtomicU64,
    /// The sources' counters.
    pub sources: Arc<SourceCounters>,
    /// 1 while a training process runs, else 0.
    pub training: AtomicU64,
    /// Training processes that ended (however they ended).
    pub training_runs: AtomicU64,
    /// Epochs the training processes reported.
    pub training_epochs: AtomicU64,
    /// The last training process's peak resident memory, bytes.
    pub training_peak_bytes: AtomicU64,
    /// How long readings wait for their commit and their verdict.
    pub latency: Latencies,
    /// The smallest leak each flow series' night test finds within 3 nights, as of the last
    /// night judged (sent with the heartbeat).
    pub detectable_leaks: std::sync::Mutex<Vec<hydrowatch_protocol::DetectableLeak>>,
}

impl Metrics {
    /// Whether a training process runs now.
    pub fn training_now(&self) -> bool {
        self.training.load(Ordering::Relaxed) != 0
    }
}

impl Metrics {
    /// The smallest leaks stated now (see [`Metrics::detectable_leaks`]).
    fn leaks(&self) -> Vec<hydrowatch_protocol::DetectableLeak> {
        self.detectable_leaks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The heartbeat message's body: the daemon's counters at `now`.
    pub fn heartbeat(&self, now: i64) -> hydrowatch_protocol::HeartbeatBody {
        let g = |a: &AtomicU64| Some(a.load(Ordering::Relaxed));
        let last = self.last_reading.load(Ordering::Relaxed);
        hydrowatch_protocol::HeartbeatBody {
            version: Some(env!("CARGO_PKG_VERSION").into()),
            uptime_seconds: Some(now - self.started.load(Ordering::Relaxed)),
            readings_ingested: g(&self.readings_ingested),
            alarms_open: g(&self.alarms_open),
            outbox_depth: g(&self.outbox_depth),
            outbox_dropped: g(&self.outbox_dropped),
            last_reading: (last != 0).then(|| hydrowatch_protocol::rfc3339(last)),
            detectable_leaks: Some(self.leaks()).filter(|l| !l.is_empty()),
        }
    }

    /// The counters as JSON.
    pub fn json(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let t = |a: &AtomicI64| {
            let v = a.load(Ordering::Relaxed);
            (v != 0).then(|| hydrowatch_protocol::rfc3339(v))
        };
        let failing = self
            .commit_failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let newest = self.last_reading.load(Ordering::Relaxed);
        let newest_age = (newest != 0).then(|| (chrono::Utc::now().timestamp() - newest).max(0));
        serde_json::json!({
            "status": if failing.is_some() { "degraded" } else { "ok" },
            "reason": failing.map(|why| format!("readings cannot be committed: {why}")),
            "newest_reading_age_seconds": newest_age,
            "commit_failures": g(&self.commit_failures),
            "device_id": self.device_id,
            "started": t(&self.started),
            "readings_ingested": g(&self.readings_ingested),
            "readings_duplicate": g(&self.readings_duplicate),
            "readings_refused": g(&self.readings_refused),
            "bad_input": g(&self.sources.bad_input),
            "device_timeouts": g(&self.sources.timeouts),
            "last_reading": t(&self.last_reading),
            "alarm_transitions": g(&self.alarm_transitions),
            "alarms_open": g(&self.alarms_open),
            "outbox_depth": g(&self.outbox_depth),
            "outbox_dropped": g(&self.outbox_dropped),
            "outbox_set_aside": g(&self.outbox_set_aside),
            "outbox_expired": g(&self.outbox_expired),
            "uplink_bytes": g(&self.uplink_bytes),
            "uplink_capped": g(&self.uplink_capped),
            "delivered": g(&self.delivered),
            "last_forecast": t(&self.last_forecast),
            "job_failures": g(&self.job_failures),
            "detectable_leaks": self.leaks(),
            "training": g(&self.training),
            "training_runs": g(&self.training_runs),
            "training_epochs": g(&self.training_epochs),
            "training_peak_bytes": g(&self.training_peak_bytes),
            "latency": self.latency.json(),
        })
    }

    /// The counters in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP hydrowatch_{name} {help}\n# TYPE hydrowatch_{name} {kind}\nhydrowatch_{name} {value}\n"
            ));
        };
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let t = |a: &AtomicI64| a.load(Ordering::Relaxed).to_string();
        metric(
            "readings_ingested_total",
            "counter",
            "Readings committed.",
            g(&self.readings_ingested),
        );
        metric(
            "readings_duplicate_total",
            "counter",
            "Readings received again with the same value.",
            g(&self.readings_duplicate),
        );
        metric(
            "readings_refused_total",
            "counter",
            "Readings refused (unknown series, future, conflicting).",
            g(&self.readings_refused),
        );
        metric(
            "bad_input_total",
            "counter",
            "Lines, rows or polls that could not be read.",
            g(&self.sources.bad_input),
        );
        metric(
            "device_timeouts_total",
            "counter",
            "Polls of a device that did not answer.",
            g(&self.sources.timeouts),
        );
        metric(
            "last_reading_timestamp_seconds",
            "gauge",
            "Time of the newest reading committed.",
            t(&self.last_reading),
        );
        metric(
            "alarm_transitions_total",
            "counter",
            "Alarm transitions written.",
            g(&self.alarm_transitions),
        );
        metric(
            "alarms_open",
            "gauge",
            "Alarms open now.",
            g(&self.alarms_open),
        );
        metric(
            "outbox_depth",
            "gauge",
            "Messages waiting for the central server.",
            g(&self.outbox_depth),
        );
        metric(
            "outbox_dropped_total",
            "counter",
            "Messages dropped by the outbox policy.",
            g(&self.outbox_dropped),
        );
        metric(
            "outbox_set_aside",
            "gauge",
            "Messages the central server refused for good, set aside.",
            g(&self.outbox_set_aside),
        );
        metric(
            "outbox_expired_total",
            "counter",
            "Messages removed when their kind's time to live ran out.",
            g(&self.outbox_expired),
        );
        metric(
            "uplink_bytes_total",
            "counter",
            "Bytes of messages sent to the central server or broker.",
            g(&self.uplink_bytes),
        );
        metric(
            "uplink_capped_total",
            "counter",
            "Times the bandwidth cap held delivery back.",
            g(&self.uplink_capped),
        );
        metric(
            "commit_failures_total",
            "counter",
            "Commits of readings that failed (each is tried again).",
            g(&self.commit_failures),
        );
        metric(
            "degraded",
            "gauge",
            "1 while readings cannot be committed (a full disk), else 0.",
            u8::from(
                self.commit_failing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some(),
            )
            .to_string(),
        );
        metric(
            "delivered_total",
            "counter",
            "Messages acknowledged by the central server.",
            g(&self.delivered),
        );
        metric(
            "last_forecast_timestamp_seconds",
            "gauge",
            "Issue time of the newest forecast.",
            t(&self.last_forecast),
        );
        metric(
            "job_failures_total",
            "counter",
            "Scheduled jobs that failed.",
            g(&self.job_failures),
        );
        metric(
            "training",
            "gauge",
            "1 while a training process runs.",
            g(&self.training),
        );
        metric(
            "training_runs_total",
            "counter",
            "Training processes that ended.",
            g(&self.training_runs),
        );
        metric(
            "training_epochs_total",
            "counter",
            "Epochs the training processes reported.",
            g(&self.training_epochs),
        );
        metric(
            "training_peak_bytes",
            "gauge",
            "Peak resident memory of the last training process.",
            g(&self.training_peak_bytes),
        );
        self.latency.prometheus(&mut out);
        out
    }
}

/// The bounds of the health endpoint's connections: a few scrapers and people at once, each
/// request's headers within 10 s (idle connections cannot use up the daemon's file handles).
pub const LIMITS: hydrowatch_listen::Limits = hydrowatch_listen::Limits {
    max_connections: 32,
    max_per_address: 8,
    header_timeout: std::time::Duration::from_secs(10),
    request_timeout: std::time::Duration::from_secs(30),
    trusted_proxies: hydrowatch_listen::TrustedProxies::NONE,
};

/// The health endpoint's routes: `/health` and `/metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .with_state(metrics)
}

/// 200 while healthy, 503 while degraded (a probe needs no JSON to tell).
async fn health(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let body = m.json();
    let status = if body["status"] == "ok" {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

async fn prometheus(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.prometheus(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_states_the_smallest_leaks_once_there_are_some() {
        let m = Metrics::default();
        assert_eq!(m.heartbeat(10).detectable_leaks, None);
        let leak = hydrowatch_protocol::DetectableLeak {
            series: "flow_rate".into(),
            rise: 3.8,
            night_minimum: 47.5,
        };
        *m.detectable_leaks.lock().unwrap() = vec![leak.clone()];
        assert_eq!(m.heartbeat(10).detectable_leaks, Some(vec![leak]));
        assert_eq!(m.json()["detectable_leaks"][0]["rise"], 3.8);
    }
}
