//! Sending one notification: a webhook (a JSON POST signed with HMAC-SHA256) or an e-mail (SMTP
//! through lettre: STARTTLS or TLS, in clear only when the relay's URL says so by name, and
//! credentials never in clear).
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

/// How the server sends e-mail: the relay's transport, checked and built once, and the sender.
#[derive(Clone)]
pub struct Mailer {
    transport: lettre::SmtpTransport,
    from: lettre::message::Mailbox,
    insecure: bool,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer from {}", self.from)
    }
}

/// Why the e-mail settings cannot be used (the messages never repeat the relay's URL, which may
/// hold a password).
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// Not `smtp://`, `smtps://` or `smtp+insecure://`, or unreadable.
    #[error(
        "expected smtp://[user:password@]host[:port] (STARTTLS), smtps://... (TLS) or smtp+insecure://host[:port] (no TLS, no credentials): {0}"
    )]
    Url(String),
    /// The sender is not an e-mail address.
    #[error("the sender {0:?} is not an e-mail address")]
    From(String),
    /// The extra certificate does not read.
    #[error("the relay's certificate: {0}")]
    Certificate(String),
}

/// How the mailer protects the session with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    /// `smtp://`: STARTTLS required; a relay that does not offer it gets nothing.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp+insecure://`: in clear, and so never with credentials.
    None,
}

impl Mailer {
    /// A mailer through the relay at `url`, sending as `from`, trusting `ca_pem` (a
    /// certificate, PEM) besides the public roots when given: `smtp://[user:password@]host[:port]`
    /// requires STARTTLS (port 587 by default), `smtps://...` speaks TLS from the start (465),
    /// and `smtp+insecure://host[:port]` speaks in clear (25), which must be asked for by name
    /// and never carries credentials. User and password are percent-decoded.
    pub fn new(url: &str, from: &str, ca_pem: Option<&[u8]>) -> Result<Mailer, MailerError> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let parsed = reqwest::Url::parse(url).map_err(|e| MailerError::Url(e.to_string()))?;
        let (protection, port) = match parsed.scheme() {
            "smtp" => (Protection::StartTls, 587),
            "smtps" => (Protection::Tls, 465),
            "smtp+insecure" => (Protection::None, 25),
            _ => return Err(MailerError::Url("another scheme".into())),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| MailerError::Url("no host".into()))?
            .to_string();
        let port = parsed.port().unwrap_or(port);
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| MailerError::Url("the user or password is not UTF-8".into()))
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => Some(Credentials::new(
                decode(user)?,
                decode(password.unwrap_or_default())?,
            )),
        };
        if protection == Protection::None && credentials.is_some() {
            return Err(MailerError::Url(
                "credentials are never sent without TLS: use smtp:// (STARTTLS) or smtps://".into(),
            ));
        }
        let from = from
            .parse()
            .map_err(|_| MailerError::From(hydrowatch_core::prefix(from)))?;
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(pem) = ca_pem {
            let cert =
                Certificate::from_pem(pem).map_err(|e| MailerError::Certificate(e.to_string()))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| MailerError::Certificate(e.to_string()))?;
        let mut builder = lettre::SmtpTransport::builder_dangerous(host)
            .port(port)
            .timeout(Some(ATTEMPT_TIMEOUT))
            .tls(match protection {
                Protection::StartTls => Tls::Required(tls),
                Protection::Tls => Tls::Wrapper(tls),
                Protection::None => Tls::None,
            });
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            insecure: protection == Protection::None,
        })
    }

    /// Whether it speaks to the relay in clear (`smtp+insecure://`): the server warns at start.
    pub fn insecure(&self) -> bool {
        self.insecure
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

/// Sends `n` by `rule`'s channel (a webhook to a private address only when
/// `private_webhooks`); the error says why it did not go.
pub fn send(
    http: &reqwest::blocking::Client,
    mailer: Option<&Mailer>,
    private_webhooks: bool,
    rule: &Rule,
    n: &Notification,
    now: i64,
) -> Result<(), String> {
    match rule.record.channel {
        Channel::Webhook => {
            if !private_webhooks && let Some(why) = private_target(&rule.record.target) {
                return Err(format!("webhook {}: {why}", rule.record.target));
            }
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
            let mailer = mailer.ok_or("e-mail rule, but the server has no --smtp relay")?;
            email(mailer, &rule.record.target, n)
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

fn email(mailer: &Mailer, to: &str, n: &Notification) -> Result<(), String> {
    let (subject, text) = words(n);
    let message = lettre::Message::builder()
        .from(mailer.from.clone())
        .to(to.parse().map_err(|e| format!("{to}: {e}"))?)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| e.to_string())?;
    mailer
        .transport
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
