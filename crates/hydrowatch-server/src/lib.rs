//! The central server (`hydrowatch serve`): devices deliver envelopes to `POST /api/v1/ingest`
//! with their bearer token ([`api`]); each message is checked ([`envelope`]) and stored once by
//! its id ([`db`]); the read API serves devices, alarms and forecasts, and the [`dashboard`]
//! shows them to people.
//!
//! Invariants: a message id is stored at most once (a repeat is acknowledged, not stored); a
//! batch is stored whole or not at all; tokens are kept only as SHA-256 hashes.

pub mod api;
pub mod dashboard;
pub mod db;
pub mod envelope;
pub mod limit;
pub mod listen;
pub mod sql;

pub use api::{router, router_with, serve_in_background};
pub use db::{Db, DbError};
pub use limit::RateLimit;
pub use listen::{Limits, serve};
