//! The central server (`hydrowatch serve`): devices deliver envelopes to `POST /api/v1/ingest`
//! with their bearer token ([`api`]); each message is checked (hydrowatch-protocol's `check`) and
//! stored once by its id ([`db`] over [`sql`]); the read API serves devices, alarms and
//! forecasts, and the [`dashboard`] shows them to people. [`app`] puts the routes together over
//! the handlers' shared [`state`]; `hydrowatch_listen` accepts the connections.
//!
//! Invariants: a message id is stored at most once (a repeat is acknowledged, not stored); a
//! batch is stored whole or not at all; tokens are kept only as SHA-256 hashes.

pub mod accounts;
mod alarm_latest;
pub mod alarm_load;
pub mod alarms;
pub mod api;
pub mod app;
pub mod auth;
pub mod dashboard;
pub mod db;
pub mod limit;
pub mod mqtt;
pub mod notify;
pub(crate) mod partitions;
pub mod periodic;
pub mod retention;
pub mod schema;
pub mod server;
pub mod silent;
pub mod sql;
pub mod state;

pub use accounts::{Role, User};
pub use app::{router, router_with};
pub use db::{Db, DbError};
pub use hydrowatch_listen::{Limits, TlsError, TrustedProxies, serve, tls_config};
pub use limit::RateLimit;
pub use server::{Background, Server, ServerConfig, ServerError};
pub use state::Settings;
