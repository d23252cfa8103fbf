//! The demo's replay: every device's real daemon, in threads, until its replay ended and its
//! outbox is delivered.

use std::time::{Duration, Instant};

use hydrowatch_core::time::HOUR;
use hydrowatch_store::Store;

use super::{DemoError, Device};

/// Runs every device's daemon until its replay ended and its outbox is delivered, with a
/// progress bar; returns how long it took, and whether it was stopped before the end (Ctrl-C
/// stops the daemons: each finishes what it received).
pub(super) fn replay(devices: &[Device], days: u32) -> Result<(Duration, bool), DemoError> {
    let t = Instant::now();
    let stores = devices
        .iter()
        .map(|d| Store::open(&d.db, d.dma.tz))
        .collect::<Result<Vec<_>, _>>()?;
    let replayed = || {
        devices
            .iter()
            .zip(&stores)
            .map(|(d, s)| replayed_minutes(d, s))
    };
    let minutes: u64 = devices
        .iter()
        .map(|d| ((d.replay_end - d.replay_start) / 60) as u64)
        .sum();
    let bar = indicatif::ProgressBar::new(minutes).with_style(
        indicatif::ProgressStyle::with_template(
            "  replaying {msg} [{bar:40}] {percent:>3}% ({elapsed})",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(format!("{days} days x {}", devices.len()));
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .map(|d| {
                scope.spawn(|| {
                    hydrowatch_edge::Daemon {
                        config: d.config.clone(),
                        db: d.db.clone(),
                        until_sources_end: true,
                        drain: Duration::from_secs(30),
                        worker: std::env::current_exe().ok(),
                    }
                    .run()
                })
            })
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            let done: u64 = replayed().sum();
            bar.set_position(done);
            std::thread::sleep(Duration::from_millis(250));
        }
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    bar.finish();
    for (d, r) in devices.iter().zip(results) {
        r.map_err(|_| DemoError::Panicked(d.dma.id))?
            .map_err(|source| DemoError::Daemon {
                device: d.dma.id,
                source,
            })?;
    }
    // Stopped early: a device's newest reading is over two hours before its replay's end
    // (DST days excepted, the data ends at the end).
    let interrupted = devices
        .iter()
        .zip(replayed())
        .any(|(d, m)| (m as i64) * 60 + 2 * HOUR < d.replay_end - d.replay_start);
    Ok((t.elapsed(), interrupted))
}

/// Minutes of the replay a device has stored so far.
fn replayed_minutes(d: &Device, store: &Store) -> u64 {
    let newest = store
        .series_id("flow_rate")
        .and_then(|id| store.span(id))
        .ok()
        .flatten()
        .map_or(d.replay_start, |(_, n)| n);
    ((newest - d.replay_start).max(0) / 60) as u64
}
