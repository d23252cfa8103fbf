//! The operations of hydrowatch on a device database, each one function with a typed report,
//! called by its command (`hydrowatch import`, `detect`, `forecast`) and by the daemon's jobs
//! alike: one code path per operation.
//!
//! - [`contest`]: the backtest contest of the forecasters, its summaries and `--select`;
//! - [`judge`]: detection on the database (the detector resumes from its saved state and writes
//!   alarms, their messages and its state in one transaction);
//! - [`labels`]: the labelled events a detection run is scored against;
//! - [`forecasting`]: the hourly history, a series' forecaster, the forecast recorded with its
//!   message, the weekly retraining;
//! - [`export`]: readings with the day-ahead forecast beside them, as CSV;
//! - [`history`]: a CSV file as an hourly history, a model's day-ahead forecasts over it;
//! - [`retention`]: what is older than the configured days leaves the database;
//! - [`envelope`]: the messages to the central server (hydrowatch-protocol's types).
//! - [`import`]: CSV files into the database, all or nothing;
//! - [`training`]: a model's training as plain data in and out, to run in this process or in a
//!   child process whose memory returns when it exits;
//! - [`models`]: a series' model folder, replaced whole by a rename;
//! - [`error`]: why an operation failed.
//!
//! Invariants: nothing here keeps state between calls but the database and the model folders;
//! every write of a result is one transaction or a rename, so a crash leaves the old state.

pub mod contest;
pub mod envelope;
pub mod error;
pub mod export;
pub mod forecasting;
pub mod history;
pub mod import;
pub mod judge;
pub mod labels;
pub mod models;
pub mod retention;
pub mod training;
