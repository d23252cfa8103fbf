//! The fleet bench's parts (`hydrowatch bench fleet` starts the servers and the broker and
//! prints): simulated [`device`]s, each with an outbox of its own and the device's delivery
//! rules, over HTTPS or MQTT; and what the bench [`watch`]es: each message from its enqueue to
//! the moment it is seen stored, and the CPU and memory of the processes taking part.
//!
//! Invariants: a simulated device drops a message from its outbox only once it is acknowledged
//! (by a server over HTTPS, by the broker over MQTT), in order; a message counts as lost only if
//! it left its outbox and was never seen stored.

pub mod device;
pub mod watch;
