//! The channels notifications go out by, each in a file of its own that owns its rules'
//! checks, its receivers and its sending, listed once in [`CHANNELS`]: a new channel is a file
//! and a line there (and its name in hydrowatch-protocol's `Channel`).
//!
//! Invariants: every attempt is bounded in time ([`ATTEMPT_TIMEOUT`]); a channel's error says
//! why the notification did not go, never the rule's secret.

pub mod email;
pub mod webhook;

use std::time::Duration;

use hydrowatch_protocol::{Channel, Notification, RuleRequest};

/// Time one attempt has (connecting included).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a channel sends with: the notifier's HTTP client, its e-mail relay, what the server
/// allows.
pub struct Delivery<'a> {
    /// The HTTP client (public addresses only unless `private_webhooks`).
    pub http: &'a reqwest::blocking::Client,
    /// The e-mail relay, if the server has one.
    pub mailer: Option<&'a email::Mailer>,
    /// Webhooks may go to private addresses.
    pub private_webhooks: bool,
}

/// A way notifications go out.
pub trait NotificationChannel: Sync {
    /// Which channel it is.
    fn channel(&self) -> Channel;
    /// Why `rule`'s target (and key) cannot be used by this channel, or nothing.
    fn check(&self, rule: &RuleRequest) -> Result<(), String>;
    /// Why `target` may not be reached from this server (`private_webhooks`: what the server
    /// allows), or nothing: checked when a rule is added, where its admin sees the answer.
    fn reachable(&self, target: &str, private_webhooks: bool) -> Result<(), String> {
        let _ = (target, private_webhooks);
        Ok(())
    }
    /// The receiver `target` belongs to: a receiver's notifications go out one at a time, and
    /// one that fails rests without delaying the others.
    fn receiver(&self, target: &str) -> String;
    /// Sends `n` to `target` (signed with `secret` where the channel signs) at `now`; the error
    /// says why it did not go.
    fn send(
        &self,
        with: &Delivery,
        target: &str,
        secret: Option<&str>,
        n: &Notification,
        now: i64,
    ) -> Result<(), String>;
}

/// Every channel.
pub const CHANNELS: &[&dyn NotificationChannel] = &[&webhook::Webhook, &email::Email];

/// The channel `channel` names.
pub fn channel_of(channel: Channel) -> &'static dyn NotificationChannel {
    CHANNELS
        .iter()
        .copied()
        .find(|c| c.channel() == channel)
        .expect("every Channel is in CHANNELS (tested)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_channel_is_listed_once() {
        for &channel in hydrowatch_protocol::Channel::ALL {
            let listed = super::CHANNELS
                .iter()
                .filter(|c| c.channel() == channel)
                .count();
            assert_eq!(listed, 1, "{channel:?}");
        }
    }
}
