//! Retention: what is older than `storage.retention_days` leaves the device database (the
//! daemon's daily retention job).
//!
//! Invariants: deletion goes in transactions of a bounded size, so ingestion waits at most one
//! of them; open alarms and the newest criteria stay whatever their age (the store's rule).

use hydrowatch_config::Config;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::DAY;
use hydrowatch_store::{RetentionSummary, Store, StoreError};

/// Readings deleted per transaction.
pub const BATCH: usize = 5_000;

/// Deletes what is older than `config.storage.retention_days` before `now`.
pub fn apply(
    store: &mut Store,
    config: &Config,
    now: Timestamp,
) -> Result<RetentionSummary, StoreError> {
    let days = i64::from(config.storage.retention_days);
    store.apply_retention(now - days * DAY, BATCH)
}
