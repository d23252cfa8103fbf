//! E-mail: SMTP through lettre, STARTTLS or TLS, in clear only when the relay's URL says so by
//! name, and credentials never in clear.
//!
//! Invariants: the relay's URL (which may hold a password) is never repeated in a message; a
//! notification's text comes from typed fields only (no line from a device reaches the mail's
//! headers).

use hydrowatch_protocol::{Channel, Notification, RuleRequest};
use lettre::Transport as _;

use super::{ATTEMPT_TIMEOUT, Delivery, NotificationChannel};

/// The e-mail channel.
pub struct Email;

impl NotificationChannel for Email {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn check(&self, r: &RuleRequest) -> Result<(), String> {
        if r.target.parse::<lettre::Address>().is_err() || r.target.len() > 254 {
            return Err(format!(
                "target: {:?} is not an e-mail address",
                hydrowatch_core::prefix(&r.target)
            ));
        }
        Ok(())
    }

    fn receiver(&self, _target: &str) -> String {
        "smtp".into()
    }

    fn send(
        &self,
        with: &Delivery,
        target: &str,
        _secret: Option<&str>,
        n: &Notification,
        _now: i64,
    ) -> Result<(), String> {
        let mailer = with
            .mailer
            .ok_or("e-mail rule, but the server has no --smtp relay")?;
        email(mailer, target, n)
    }
}

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
