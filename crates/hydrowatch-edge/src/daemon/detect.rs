//! Detection: what the ingest thread committed is judged by the database detector
//! ([`hydrowatch_ops::judge`]), which records the alarm transitions with their messages to the server.
//!
//! Invariants: every committed reading is judged once (the detector keeps its place in the
//! database); after the ingest thread finished, one last pass judges what it committed last.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hydrowatch_core::Timestamp;
use hydrowatch_ops::judge::{DatabaseDetector, JudgeError, observe_row};
use hydrowatch_store::Store;

use super::{Shared, record, refresh_outbox};
use crate::latency::Stage;

/// Judges what is committed; after the ingest thread finished, one last pass.
pub(super) fn detect_thread(
    shared: &Shared,
    store: &mut Store,
    mut detector: DatabaseDetector,
    floor: Timestamp,
) {
    let m = &shared.metrics;
    publish_leaks(m, &detector);
    loop {
        let last = shared.ingest_done.load(Ordering::Acquire);
        let clock = shared.clock.detection_now();
        // Committed before this pass starts, so judged by it.
        let waiting =
            std::mem::take(&mut *shared.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        let result = detector.judge(store, floor, Timestamp::MAX, clock, &mut |r, ts, v| {
            Ok::<_, JudgeError>(observe_row(r, ts, v))
        });
        match result {
            Ok(rec) => {
                let training = m.training_now();
                for w in waiting {
                    m.latency.record(
                        Stage::Verdict,
                        w.training || training,
                        w.arrived,
                        w.readings,
                    );
                }
                m.alarm_transitions
                    .fetch_add(rec.transitions as u64, Ordering::Relaxed);
                if rec.transitions > 0 {
                    if let Ok(open) = store.alarms(true) {
                        m.alarms_open.store(open.len() as u64, Ordering::Relaxed);
                    }
                    refresh_outbox(store, m);
                    shared.uplink_bell.ring();
                }
                let at = shared.clock.now().unwrap_or_default();
                if rec.criteria > 0 {
                    record(
                        store,
                        "criteria",
                        at,
                        true,
                        &format!("{} series refitted", rec.criteria),
                    );
                }
                if rec.nights > 0 {
                    publish_leaks(m, &detector);
                    record(
                        store,
                        "night_flow",
                        at,
                        true,
                        &format!("{} nights summed up", rec.nights),
                    );
                }
            }
            Err(e) => {
                // Judged by a later pass: they wait on.
                shared
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(waiting);
                m.job_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!("detection failed: {e}; trying again");
                shared.sleep(Duration::from_secs(1));
            }
        }
        if last || shared.stopping() && shared.ingest_done.load(Ordering::Acquire) {
            return;
        }
        shared.detect_bell.wait(Duration::from_secs(1));
    }
}

/// Puts the smallest leak each flow series' night test finds within 3 nights where the
/// heartbeat and `/health` read it.
fn publish_leaks(m: &crate::health::Metrics, detector: &DatabaseDetector) {
    *m.detectable_leaks.lock().unwrap_or_else(|e| e.into_inner()) =
        detector.runner.detector.detectable_leaks();
}
