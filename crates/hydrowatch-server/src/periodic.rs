//! A thread that does a round of work every so often: the notifier's and retention's.
//!
//! Invariants: a round is never interrupted; dropping the [`Periodic`] stops it after the round
//! it is in (a round that loops checks the flag it is given) and waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The thread; stopped when dropped.
#[derive(Debug)]
pub struct Periodic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Periodic {
    /// Starts the thread `name`, running `round` at once and then `every` after each round
    /// began; `round` is given the flag that says the thread is being stopped.
    pub fn start(
        name: &str,
        every: Duration,
        mut round: impl FnMut(&AtomicBool) + Send + 'static,
    ) -> std::io::Result<Periodic> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    round(&stopping);
                    while started.elapsed() < every && !stopping.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })?;
        Ok(Periodic {
            stop,
            thread: Some(thread),
        })
    }
}
