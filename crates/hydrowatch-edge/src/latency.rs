//! How long a reading waits in the daemon: from its arrival (a source hands it over) to its
//! commit, and to its verdict (the end of the detection pass that judged it), counted apart for
//! the time a training process runs and the rest. HDR histograms (hdrhistogram, two significant
//! digits, 1 µs to an hour) give the percentiles that `/metrics`, the run's summary and `bench
//! daemon` report.
//!
//! Invariant: every committed reading is counted once in a commit histogram and once in a
//! verdict histogram (when its detection pass succeeds); a wait past an hour counts as an hour.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The longest wait told apart (microseconds): an hour.
const LONGEST_US: u64 = 3_600_000_000;

/// A stage a reading reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Committed to the database.
    Commit,
    /// Judged by the detector.
    Verdict,
}

/// The wait histograms: per stage, without and with a training process running.
#[derive(Debug)]
pub struct Latencies {
    /// `[stage][training]`.
    waits: [[Mutex<Histogram<u64>>; 2]; 2],
}

impl Default for Latencies {
    fn default() -> Self {
        let h = || {
            Mutex::new(
                Histogram::new_with_bounds(1, LONGEST_US, 2).expect("valid histogram bounds"),
            )
        };
        Latencies {
            waits: [[h(), h()], [h(), h()]],
        }
    }
}

/// Readings committed together and waiting for their verdict.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    /// When they arrived.
    pub arrived: Instant,
    /// How many.
    pub readings: u64,
    /// Whether a training process ran when they arrived.
    pub training: bool,
}

impl Latencies {
    fn histogram(&self, stage: Stage, training: bool) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.waits[stage as usize][usize::from(training)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `readings` that arrived at `arrived` and reached `stage` now.
    pub fn record(&self, stage: Stage, training: bool, arrived: Instant, readings: u64) {
        if readings == 0 {
            return;
        }
        let us = u64::try_from(arrived.elapsed().as_micros()).unwrap_or(LONGEST_US);
        let _ = self
            .histogram(stage, training)
            .record_n(us.clamp(1, LONGEST_US), readings);
    }

    /// The count and the 50th and 99th percentiles and the maximum of one histogram.
    pub fn percentiles(&self, stage: Stage, training: bool) -> (u64, [Duration; 3]) {
        let h = self.histogram(stage, training);
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        (h.len(), [at(0.5), at(0.99), Duration::from_micros(h.max())])
    }

    /// As JSON: `{"commit": {"idle": {...}, "training": {...}}, "verdict": ...}`, milliseconds.
    pub fn json(&self) -> serde_json::Value {
        let one = |stage, training| {
            let (count, [p50, p99, max]) = self.percentiles(stage, training);
            let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
            serde_json::json!({"readings": count, "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max)})
        };
        let stage = |s| serde_json::json!({"idle": one(s, false), "training": one(s, true)});
        serde_json::json!({"commit": stage(Stage::Commit), "verdict": stage(Stage::Verdict)})
    }

    /// As Prometheus summaries `hydrowatch_reading_{commit,verdict}_seconds` with the labels
    /// `training="0|1"` and the quantiles 0.5 and 0.99.
    pub fn prometheus(&self, out: &mut String) {
        for (stage, name, what) in [
            (Stage::Commit, "commit", "committed"),
            (Stage::Verdict, "verdict", "judged"),
        ] {
            out.push_str(&format!(
                "# HELP hydrowatch_reading_{name}_seconds Time from a reading's arrival until it is {what}; training=1 while a training process ran.\n# TYPE hydrowatch_reading_{name}_seconds summary\n"
            ));
            for training in [false, true] {
                let (count, [p50, p99, _]) = self.percentiles(stage, training);
                let t = u8::from(training);
                for (q, d) in [("0.5", p50), ("0.99", p99)] {
                    out.push_str(&format!(
                        "hydrowatch_reading_{name}_seconds{{training=\"{t}\",quantile=\"{q}\"}} {}\n",
                        d.as_secs_f64()
                    ));
                }
                out.push_str(&format!(
                    "hydrowatch_reading_{name}_seconds_count{{training=\"{t}\"}} {count}\n"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_counted_per_stage_and_training_with_their_percentiles() {
        let l = Latencies::default();
        let long_ago = Instant::now() - Duration::from_millis(200);
        l.record(Stage::Commit, false, Instant::now(), 99);
        l.record(Stage::Commit, false, long_ago, 1);
        l.record(Stage::Verdict, true, long_ago, 3);
        let (n, [p50, p99, max]) = l.percentiles(Stage::Commit, false);
        assert_eq!(n, 100);
        assert!(p50 < Duration::from_millis(50), "{p50:?}");
        assert!(p99 < Duration::from_millis(50), "{p99:?}");
        assert!(max >= Duration::from_millis(199), "{max:?}");
        assert_eq!(l.percentiles(Stage::Commit, true).0, 0);
        assert_eq!(l.percentiles(Stage::Verdict, true).0, 3);
        let json = l.json();
        assert_eq!(json["verdict"]["training"]["readings"], 3);
        assert!(json["verdict"]["training"]["p50_ms"].as_f64().unwrap() >= 199.0);
        let mut text = String::new();
        l.prometheus(&mut text);
        assert!(
            text.contains("hydrowatch_reading_verdict_seconds_count{training=\"1\"} 3\n"),
            "{text}"
        );
    }
}
