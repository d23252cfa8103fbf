//! The device side of hydrowatch beyond storage and detection: today the uplink, which delivers
//! the outbox to the central server (design.md, Delivery). The daemon (`hydrowatch run`, issue
//! #5) grows here: sources, scheduler, operations.

pub mod uplink;

pub use uplink::{Backoff, Uplink, UplinkConfig, UplinkError};
