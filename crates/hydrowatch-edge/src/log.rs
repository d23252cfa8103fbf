//! The process's log, bounded (issue #30, finding 1: a failure in a loop wrote 2-2.5 GB of log in
//! 35 s). Whatever happens, the log grows by at most [`RATE`] bytes a second on average, in bursts
//! of at most [`BURST`]: lines beyond the budget are dropped whole and counted, and the next line
//! written says how many were dropped. The daemon, the server and every command write their log
//! through it (the binary's `main`).
//!
//! Invariants: a line is written whole or not at all (tracing's formatter hands over one event
//! per write); bytes written, drop notices included, never exceed `BURST + RATE × seconds`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Bytes of log a second, on average (1.4 GB a day at worst; a healthy daemon writes a few
/// lines a minute).
pub const RATE: f64 = 16.0 * 1024.0;
/// Bytes of log at once beyond the rate (a start-up, a burst of warnings).
pub const BURST: f64 = 1024.0 * 1024.0;

/// A writer of whole lines to `W` within a byte budget; clones share the budget and the sink.
#[derive(Debug)]
pub struct BoundedLog<W> {
    shared: Arc<Mutex<Budget<W>>>,
}

impl<W> Clone for BoundedLog<W> {
    fn clone(&self) -> Self {
        BoundedLog {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
struct Budget<W> {
    sink: W,
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    dropped_lines: u64,
    dropped_bytes: u64,
}

/// Standard error within [`RATE`] and [`BURST`].
pub fn bounded_stderr() -> BoundedLog<std::io::Stderr> {
    BoundedLog::new(std::io::stderr(), RATE, BURST)
}

impl<W: Write> BoundedLog<W> {
    /// `sink` within `rate` bytes a second on average and `burst` at once.
    pub fn new(sink: W, rate: f64, burst: f64) -> Self {
        BoundedLog {
            shared: Arc::new(Mutex::new(Budget {
                sink,
                rate,
                burst,
                tokens: burst,
                last: Instant::now(),
                dropped_lines: 0,
                dropped_bytes: 0,
            })),
        }
    }

    /// Writes `line` as of `now` if the budget allows it, else counts it as dropped.
    fn write_at(&self, line: &[u8], now: Instant) -> std::io::Result<()> {
        let mut b = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
        b.last = now;
        if b.dropped_lines > 0 {
            let notice = format!(
                "hydrowatch: {} log lines ({} bytes) dropped: the log was over {} bytes a second\n",
                b.dropped_lines, b.dropped_bytes, b.rate
            );
            if b.tokens < (notice.len() + line.len()) as f64 {
                b.dropped_lines += 1;
                b.dropped_bytes += line.len() as u64;
                return Ok(());
            }
            b.tokens -= notice.len() as f64;
            b.sink.write_all(notice.as_bytes())?;
            b.dropped_lines = 0;
            b.dropped_bytes = 0;
        }
        if b.tokens < line.len() as f64 {
            b.dropped_lines += 1;
            b.dropped_bytes += line.len() as u64;
            return Ok(());
        }
        b.tokens -= line.len() as f64;
        b.sink.write_all(line)
    }
}

impl<W: Write> Write for BoundedLog<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_at(buf, Instant::now())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sink
            .flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_cut_to_the_budget_and_the_drop_said_once_there_is_room() {
        let log = BoundedLog::new(Vec::new(), 1000.0, 5000.0);
        let t0 = Instant::now();
        let line = [b'x'; 99]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        // 10,000 lines of 100 bytes in one second: the burst and one second's rate.
        for i in 0..10_000u32 {
            log.write_at(&line, t0 + Duration::from_micros(u64::from(i) * 100))
                .unwrap();
        }
        let written = log.shared.lock().unwrap().sink.len();
        assert!(written <= 6000, "{written} bytes");
        assert!(written >= 5000, "{written} bytes");
        // Ten seconds later there is room: the notice, then the line.
        log.write_at(b"after\n", t0 + Duration::from_secs(11))
            .unwrap();
        let text = String::from_utf8(log.shared.lock().unwrap().sink.clone()).unwrap();
        let tail: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(tail[0], "after");
        assert!(
            tail[1].starts_with("hydrowatch: ") && tail[1].contains("log lines"),
            "{}",
            tail[1]
        );
        assert!(
            text.lines()
                .all(|l| l.len() == 99 || l == "after" || l.starts_with("hydrowatch: "))
        );
    }
}
