//! The device daemon (`hydrowatch run`, design.md: Scheduling, Delivery, Failure): readings from
//! [`sources`] are committed by the ingest thread, judged from the database by the detection
//! thread (hydrowatch-ops' `judge`), forecast and retrained by the low-priority jobs thread
//! (hydrowatch-ops' `forecasting`, on the [`schedule`]; models are trained in a child process),
//! and delivered by the [`uplink`]; [`health`] shows it all, with how long readings wait for
//! their commit and verdict ([`latency`]).
//!
//! The database is the only hand-over between the threads: each has its own connection, and a
//! thread learns of new work by a doorbell, then reads what is committed. So a reading is
//! committed before it is acknowledged or judged, detection never holds up ingestion, and after
//! a crash every thread resumes from what the database says it last finished.

mod clock;
pub mod daemon;
pub mod health;
pub mod latency;
pub mod log;
pub mod schedule;
pub mod sources;
pub mod uplink;

pub use daemon::{Daemon, DaemonError, shutdown_signal};
pub use uplink::{Backoff, Sent, Uplink, UplinkConfig, UplinkError};
