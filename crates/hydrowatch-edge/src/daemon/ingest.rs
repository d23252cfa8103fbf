//! Ingest: readings from the sources are admitted or refused ([`Admission`], without I/O, so its
//! rules are unit-tested), committed in one transaction per pass, and each source is answered
//! with every reading's fate.
//!
//! Invariants: every reading of a batch gets exactly one [`Fate`]; nothing is answered before
//! its commit succeeded (a failed commit is retried, never dropped); a refused reading is
//! counted and logged with its reason.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono_tz::Tz;
use hydrowatch_core::time::{FIRST_YEAR, LAST_YEAR, format_local, from_the_future, in_span};
use hydrowatch_core::{Reading, Timestamp};
use hydrowatch_store::{Outcome, SeriesId, Store};
use tokio::sync::mpsc;

use super::Shared;
use crate::clock::Clock;
use crate::latency::{Stage, Waiting};
use crate::sources::{Batch, Fate};

/// Most readings committed in one transaction.
const MAX_COMMIT: usize = 20_000;

/// Which readings may be stored: those of a configured series, in 1970-2199, and (on the wall
/// clock) not ahead of it by more than the allowance.
#[derive(Debug)]
pub struct Admission {
    ids: HashMap<String, SeriesId>,
    tz: Tz,
    /// Seconds a reading may be ahead of the wall clock; `None` when the daemon keeps time by
    /// the readings (a replay), where the wall clock says nothing about them.
    ahead: Option<i64>,
}

impl Admission {
    /// Readings of the series in `ids`, local times in `tz`, at most `ahead` seconds ahead of
    /// the wall clock (`None`: any time in the span).
    pub fn new(ids: HashMap<String, SeriesId>, tz: Tz, ahead: Option<i64>) -> Admission {
        Admission { ids, tz, ahead }
    }

    /// The series id of a reading of `series` at `ts`, or why it is refused, when the wall
    /// clock reads `wall`.
    pub fn admit(&self, series: &str, ts: Timestamp, wall: Timestamp) -> Result<SeriesId, String> {
        let Some(&id) = self.ids.get(series) else {
            let mut names: Vec<&str> = self.ids.keys().map(String::as_str).collect();
            names.sort_unstable();
            return Err(format!(
                "series {series:?} is not configured (configured: {})",
                names.join(", ")
            ));
        };
        if !in_span(ts) {
            return Err(format!(
                "{series} {}: the year is outside {FIRST_YEAR}-{LAST_YEAR} (a mistyped year?)",
                format_local(ts, self.tz),
            ));
        }
        if let Some(ahead) = self.ahead
            && let Some(why) = from_the_future(ts, wall, ahead, self.tz)
        {
            return Err(format!("{series} {why}"));
        }
        Ok(id)
    }
}

/// The batches waiting, up to [`MAX_COMMIT`] readings after the first batch.
fn gather(first: Batch, rx: &mut mpsc::Receiver<Batch>) -> Vec<Batch> {
    let mut n = first.readings.len();
    let mut batches = vec![first];
    while n < MAX_COMMIT {
        match rx.try_recv() {
            Ok(b) => {
                n += b.readings.len();
                batches.push(b);
            }
            Err(_) => break,
        }
    }
    batches
}

/// Commits `rows`, retrying every 5 s while the database refuses (a full disk), with the
/// failure on /health meanwhile.
fn commit(shared: &Shared, store: &mut Store, rows: &[(SeriesId, Reading)]) -> Vec<Outcome> {
    let m = &shared.metrics;
    loop {
        match store.insert_readings(rows) {
            Ok(o) => {
                *m.commit_failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return o;
            }
            Err(e) => {
                m.commit_failures.fetch_add(1, Ordering::Relaxed);
                *m.commit_failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                tracing::error!(
                    readings = rows.len(),
                    "cannot commit readings: {e}; they are held and tried again in 5 s"
                );
                std::thread::sleep(Duration::from_secs(5));
                // Space may have returned: give the write-ahead log's freed pages back.
                store.checkpoint();
            }
        }
    }
}

/// Commits batches: everything waiting goes into one transaction; each source is answered with
/// its readings' fates once the commit succeeded.
pub(super) fn ingest_thread(
    shared: &Shared,
    mut store: Store,
    mut rx: mpsc::Receiver<Batch>,
    admission: &Admission,
) {
    let m = &shared.metrics;
    while let Some(first) = rx.blocking_recv() {
        let batches = gather(first, &mut rx);
        let wall = chrono::Utc::now().timestamp();
        let mut fates: Vec<Vec<Fate>> = Vec::with_capacity(batches.len());
        let mut rows: Vec<(SeriesId, Reading)> = Vec::new();
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let mut f = Vec::with_capacity(batch.readings.len());
            for (i, r) in batch.readings.iter().enumerate() {
                f.push(match admission.admit(&r.series, r.ts, wall) {
                    Ok(id) => {
                        rows.push((
                            id,
                            Reading {
                                ts: r.ts,
                                value: r.value,
                            },
                        ));
                        slots.push((b, i));
                        Fate::Stored
                    }
                    Err(why) => {
                        m.readings_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(source = %batch.origin, "reading refused: {why}");
                        Fate::Refused(why)
                    }
                });
            }
            fates.push(f);
        }
        let outcomes = commit(shared, &mut store, &rows);
        let mut inserted = vec![0u64; batches.len()];
        let mut newest = i64::MIN;
        for (((b, i), outcome), (_, r)) in slots.iter().zip(outcomes).zip(&rows) {
            let batch = &batches[*b];
            let series = &batch.readings[*i].series;
            fates[*b][*i] = match outcome {
                Outcome::Inserted => {
                    m.readings_ingested.fetch_add(1, Ordering::Relaxed);
                    inserted[*b] += 1;
                    newest = newest.max(r.ts);
                    shared.newest.stored(series, r.ts);
                    Fate::Stored
                }
                Outcome::Duplicate => {
                    m.readings_duplicate.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(source = %batch.origin, "duplicate reading {series} {} ignored (already stored)", format_local(r.ts, shared.tz));
                    Fate::Duplicate
                }
                Outcome::Conflict { stored } => {
                    m.readings_refused.fetch_add(1, Ordering::Relaxed);
                    let why = format!(
                        "{series} {} = {} conflicts with the stored {stored}: the stored value is kept",
                        format_local(r.ts, shared.tz),
                        r.value
                    );
                    tracing::warn!(source = %batch.origin, "{why}");
                    Fate::Refused(why)
                }
            };
        }
        if newest > i64::MIN {
            m.last_reading.fetch_max(newest, Ordering::Relaxed);
            shared.clock.committed(newest);
        }
        let training = m.training_now();
        let mut waiting = shared.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for (batch, &readings) in batches.iter().zip(&inserted) {
            m.latency
                .record(Stage::Commit, training, batch.arrived, readings);
            if readings > 0 {
                waiting.push(Waiting {
                    arrived: batch.arrived,
                    readings,
                    training,
                });
            }
        }
        drop(waiting);
        for (batch, f) in batches.into_iter().zip(fates) {
            if let Some(reply) = batch.reply {
                let _ = reply.send(f);
            }
        }
        shared.detect_bell.ring();
        shared.jobs_bell.ring();
    }
}

/// The admission of a daemon on `clock`: the future allowance applies on the wall clock only.
pub(super) fn admission(
    ids: HashMap<String, SeriesId>,
    tz: Tz,
    clock: &Clock,
    future_seconds: u32,
) -> Admission {
    let ahead = matches!(clock, Clock::Wall(_)).then_some(i64::from(future_seconds));
    Admission::new(ids, tz, ahead)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEOUL: Tz = chrono_tz::Asia::Seoul;
    /// 2024-07-01T00:00:00Z.
    const NOW: Timestamp = 1_719_792_000;

    fn ids() -> HashMap<String, SeriesId> {
        [
            ("flow_rate".to_string(), SeriesId(1)),
            ("pressure".to_string(), SeriesId(2)),
        ]
        .into()
    }

    #[test]
    fn a_reading_of_a_configured_series_now_is_admitted_with_its_id() {
        let a = Admission::new(ids(), SEOUL, Some(300));
        assert_eq!(a.admit("pressure", NOW - 60, NOW), Ok(SeriesId(2)));
        assert_eq!(a.admit("flow_rate", NOW + 300, NOW), Ok(SeriesId(1)));
    }

    #[test]
    fn an_unknown_series_is_refused_naming_the_configured_ones() {
        let a = Admission::new(ids(), SEOUL, Some(300));
        let why = a.admit("flow", NOW, NOW).unwrap_err();
        assert_eq!(
            why,
            "series \"flow\" is not configured (configured: flow_rate, pressure)"
        );
    }

    #[test]
    fn a_year_outside_the_span_is_refused_even_on_the_readings_clock() {
        let a = Admission::new(ids(), SEOUL, None);
        let year_2200 = 7_258_118_400;
        let why = a.admit("flow_rate", year_2200, NOW).unwrap_err();
        assert!(why.contains("outside 1970-2199"), "{why}");
        assert!(a.admit("flow_rate", -1, NOW).is_err());
    }

    #[test]
    fn ahead_of_the_wall_clock_is_refused_only_past_the_allowance_and_only_on_the_wall_clock() {
        let wall = Admission::new(ids(), SEOUL, Some(300));
        let why = wall.admit("flow_rate", NOW + 301, NOW).unwrap_err();
        assert!(why.starts_with("flow_rate "), "{why}");
        assert!(why.contains("ahead"), "{why}");
        // A replay keeps time by its readings: a reading of next year is its present.
        let replay = Admission::new(ids(), SEOUL, None);
        assert_eq!(
            replay.admit("flow_rate", NOW + 365 * 86_400, NOW),
            Ok(SeriesId(1))
        );
        assert_eq!(
            admission(ids(), SEOUL, &Clock::Wall(Default::default()), 300).ahead,
            Some(300)
        );
        assert_eq!(
            admission(ids(), SEOUL, &Clock::Readings(Default::default()), 300).ahead,
            None
        );
    }
}
