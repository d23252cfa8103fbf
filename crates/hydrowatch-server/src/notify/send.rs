//! Sending one notification: a webhook (a JSON POST signed with HMAC-SHA256) or an e-mail (SMTP
//! through lettre, STARTTLS).
//!
//! Invariants: a webhook's body is signed as sent: `X-Hydrowatch-Signature: sha256=HEX` is the
//! HMAC-SHA256, under the rule's secret, of `TIMESTAMP.BODY` (`X-Hydrowatch-Timestamp`, Unix
//! seconds), so a receiver can refuse a forged or replayed one; a retry carries the same
//! `X-Hydrowatch-Delivery` id, so a receiver can drop a repeat; every attempt is bounded in time.

use std::time::Duration;

use hmac::{Hmac, Mac};
use hydrowatch_protocol::{Channel, Notification};
use lettre::Transport as _;
use sha2::Sha256;

use super::rules::Rule;

/// Time one attempt has (connecting included).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server sends e-mail.
#[derive(Debug, Clone)]
pub struct Smtp {
    /// `smtp://[user:password@]host[:port]` (STARTTLS required; default port 587) or
    /// `smtps://...` (TLS from the start; 465).
    pub url: String,
    /// The sender's address.
    pub from: String,
    /// A certificate (PEM) to trust besides the public roots: a relay with a certificate of its
    /// own authority.
    pub ca_pem: Option<Vec<u8>>,
}

/// Whether `text` is an e-mail address.
pub fn is_address(text: &str) -> bool {
    text.parse::<lettre::Address>().is_ok()
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

/// Sends `n` by `rule`'s channel; the error says why it did not go.
pub fn send(
    http: &reqwest::blocking::Client,
    smtp: Option<&Smtp>,
    rule: &Rule,
    n: &Notification,
    now: i64,
) -> Result<(), String> {
    match rule.record.channel {
        Channel::Webhook => {
            let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
            let secret = rule.secret.as_deref().unwrap_or_default();
            let r = http
                .post(&rule.record.target)
                .header("content-type", "application/json")
                .header("x-hydrowatch-delivery", &n.delivery)
                .header("x-hydrowatch-timestamp", now.to_string())
                .header("x-hydrowatch-signature", signature(secret, now, &body))
                .body(body)
                .send()
                .map_err(|e| format!("webhook {}: {e}", rule.record.target))?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!(
                    "webhook {}: answered {}",
                    rule.record.target,
                    r.status()
                ))
            }
        }
        Channel::Email => {
            let smtp = smtp.ok_or("e-mail rule, but the server has no --smtp relay")?;
            email(smtp, &rule.record.target, n)
        }
    }
}

/// The subject and text of `n` for people.
pub fn words(n: &Notification) -> (String, String) {
    let highest = n.alarms.iter().map(|a| a.stage).max().unwrap_or(0);
    let subject = match (n.kind.as_str(), n.count) {
        ("reminder", _) => format!(
            "[hydrowatch] {}: alarm still unacknowledged (stage {highest})",
            n.device_id
        ),
        (_, 1) => format!(
            "[hydrowatch] {}: {} {} at stage {highest}",
            n.device_id,
            n.alarms.first().map_or("", |a| a.kind.name()),
            n.alarms.first().map_or("", |a| a.state.name()),
        ),
        (_, count) => format!(
            "[hydrowatch] {}: {count} alarms, highest stage {highest}",
            n.device_id
        ),
    };
    let mut text = format!("Rule {:?}, device {}.\n\n", n.rule, n.device_id);
    for a in &n.alarms {
        text.push_str(&format!(
            "  alarm {} {} on {}: {} at stage {} ({})\n",
            a.alarm_id,
            a.kind.name(),
            a.series,
            a.state.name(),
            a.stage,
            a.time
        ));
    }
    if n.count as usize > n.alarms.len() {
        text.push_str(&format!(
            "  ... and {} more\n",
            n.count as usize - n.alarms.len()
        ));
    }
    text.push_str(&format!("\nDelivery {}.\n", n.delivery));
    (subject, text)
}

fn email(smtp: &Smtp, to: &str, n: &Notification) -> Result<(), String> {
    let (subject, text) = words(n);
    let message = lettre::Message::builder()
        .from(
            smtp.from
                .parse()
                .map_err(|e| format!("--smtp-from {}: {e}", smtp.from))?,
        )
        .to(to.parse().map_err(|e| format!("{to}: {e}"))?)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| e.to_string())?;
    let mut builder = lettre::SmtpTransport::from_url(&smtp.url)
        .map_err(|e| format!("--smtp: {e}"))?
        .timeout(Some(ATTEMPT_TIMEOUT));
    if let Some(pem) = &smtp.ca_pem {
        let url = reqwest::Url::parse(&smtp.url).map_err(|e| format!("--smtp: {e}"))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let cert = lettre::transport::smtp::client::Certificate::from_pem(pem)
            .map_err(|e| format!("--smtp-ca: {e}"))?;
        let tls = lettre::transport::smtp::client::TlsParameters::builder(host)
            .add_root_certificate(cert)
            .build_rustls()
            .map_err(|e| format!("--smtp-ca: {e}"))?;
        builder = builder.tls(if smtp.url.starts_with("smtps://") {
            lettre::transport::smtp::client::Tls::Wrapper(tls)
        } else {
            lettre::transport::smtp::client::Tls::Required(tls)
        });
    }
    builder
        .build()
        .send(&message)
        .map(drop)
        .map_err(|e| format!("e-mail to {to}: {e}"))
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
