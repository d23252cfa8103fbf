//! The daemon's clock: the wall clock, or the readings' own time for a replay faster than real
//! time, and when detection may judge silences on it (not while a backlog is arriving).

use std::sync::atomic::{AtomicI64, Ordering};

use hydrowatch_core::Timestamp;

/// The daemon's notion of now: the wall clock, or, when a source runs faster than real time,
/// the newest reading committed.
#[derive(Debug)]
pub(crate) enum Clock {
    /// The wall clock; the wall-clock second of the last commit of readings.
    Wall(AtomicI64),
    /// The newest reading committed (`i64::MIN`: none yet).
    Readings(AtomicI64),
}

/// Seconds without a commit of readings before detection judges silences on the wall clock.
/// While readings keep arriving (a gateway flushing hours of buffered readings after an
/// outage), they are judged by their own times, as `hydrowatch detect` judges a file: a gap
/// inside the backlog is stale when the sensor fell silent, and the backlog itself, however
/// old, raises no `stale` alarm per batch.
const QUIET_SECONDS: i64 = 10;

impl Clock {
    /// Now, for the schedule and the jobs.
    pub(crate) fn now(&self) -> Option<Timestamp> {
        match self {
            Clock::Wall(_) => Some(chrono::Utc::now().timestamp()),
            Clock::Readings(t) => Some(t.load(Ordering::Acquire)).filter(|&t| t != i64::MIN),
        }
    }

    /// The time detection advances to after judging the rows committed: none (the rows' own
    /// times) while readings are arriving, otherwise now.
    pub(crate) fn detection_now(&self) -> Option<Timestamp> {
        match self {
            Clock::Wall(last_commit) => {
                let now = chrono::Utc::now().timestamp();
                (now.saturating_sub(last_commit.load(Ordering::Acquire)) >= QUIET_SECONDS)
                    .then_some(now)
            }
            Clock::Readings(_) => self.now(),
        }
    }

    /// Notes a commit of readings, the newest at `newest`.
    pub(crate) fn committed(&self, newest: Timestamp) {
        match self {
            Clock::Wall(last_commit) => {
                last_commit.store(chrono::Utc::now().timestamp(), Ordering::Release);
            }
            Clock::Readings(t) => {
                t.fetch_max(newest, Ordering::AcqRel);
            }
        }
    }
}
