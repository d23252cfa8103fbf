//! Webhooks: a JSON POST of the notification, signed with HMAC-SHA256, to public addresses only
//! unless the server allows private ones (`serve --private-webhooks`).
//!
//! Invariants: a webhook's body is signed as sent: `X-Hydrowatch-Signature: sha256=HEX` is the
//! HMAC-SHA256, under the rule's secret, of `TIMESTAMP.BODY` (`X-Hydrowatch-Timestamp`, Unix
//! seconds), so a receiver can refuse a forged or replayed one; a retry carries the same
//! `X-Hydrowatch-Delivery` id, so a receiver can drop a repeat; a private address is reached
//! neither written out nor through a name that resolves to it.

use hmac::{Hmac, Mac};
use hydrowatch_protocol::{Channel, Notification, RuleRequest};
use sha2::Sha256;

use super::{Delivery, NotificationChannel};

/// The webhook channel.
pub struct Webhook;

impl NotificationChannel for Webhook {
    fn channel(&self) -> Channel {
        Channel::Webhook
    }

    fn check(&self, r: &RuleRequest) -> Result<(), String> {
        let url = reqwest::Url::parse(&r.target).map_err(|e| format!("target: not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || r.target.len() > 2000 {
            return Err("target: an http or https URL of at most 2000 characters".into());
        }
        if !r
            .secret
            .as_ref()
            .is_some_and(|s| (16..=256).contains(&s.len()))
        {
            return Err(
                "secret: a webhook needs a key of 16 to 256 characters to sign with".into(),
            );
        }
        Ok(())
    }

    fn reachable(&self, target: &str, private_webhooks: bool) -> Result<(), String> {
        match private_target(target) {
            Some(why) if !private_webhooks => Err(format!("target: {why}")),
            _ => Ok(()),
        }
    }

    fn receiver(&self, target: &str) -> String {
        reqwest::Url::parse(target)
            .map_or_else(|_| target.to_string(), |u| u.origin().ascii_serialization())
    }

    fn send(
        &self,
        with: &Delivery,
        target: &str,
        secret: Option<&str>,
        n: &Notification,
        now: i64,
    ) -> Result<(), String> {
        if !with.private_webhooks
            && let Some(why) = private_target(target)
        {
            return Err(format!("webhook {target}: {why}"));
        }
        let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
        let secret = secret.unwrap_or_default();
        let r = with
            .http
            .post(target)
            .header("content-type", "application/json")
            .header("x-hydrowatch-delivery", &n.delivery)
            .header("x-hydrowatch-timestamp", now.to_string())
            .header("x-hydrowatch-signature", signature(secret, now, &body))
            .body(body)
            .send()
            .map_err(|e| format!("webhook {target}: {e}"))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook {target}: answered {}", r.status()))
        }
    }
}

/// Whether a webhook may not reach `ip` unless the server allows private targets
/// (`serve --private-webhooks`): loopback, link-local (the cloud metadata address
/// 169.254.169.254 among them), private and unique-local ranges, shared address space
/// (100.64/10), unspecified, broadcast and multicast addresses; IPv4 inside IPv6 as IPv4.
pub fn private_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_address(std::net::IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// Why a webhook's `url` may not be reached (its host is a private address, written out),
/// or `None`. Host names are checked when they are resolved ([`PublicOnly`]).
pub fn private_target(url: &str) -> Option<String> {
    // The URL parser writes an address however it was given (`2130706433`, `0x7f.1`) in its
    // usual form, IPv6 in brackets.
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?;
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    private_address(ip).then(|| {
        format!(
            "{ip} is a loopback, link-local or private address: webhooks go there only when the server is started with --private-webhooks"
        )
    })
}

/// A resolver that gives webhooks only public addresses: a name that resolves to private ones
/// only (a rebinding trick, an internal host) cannot be reached.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> =
                found.filter(|a| !private_address(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (webhooks go to private ones only with --private-webhooks)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The signature header's value of `body` sent at `timestamp` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231 does not cover this framing; the value is checked against Python's
        // hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest().
        assert_eq!(
            super::signature("key", 1_700_000_000, b"{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
