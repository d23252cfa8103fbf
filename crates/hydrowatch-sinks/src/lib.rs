//! Real receivers for the notification tests, each a server on a free port of 127.0.0.1 run by
//! threads of its own: [`Webhook`] (HTTP/1.1, answers 500 to the first requests when asked, can
//! hold each request before answering) and [`SmtpSink`] (SMTP with STARTTLS under a
//! self-signed certificate for `localhost`, or without any TLS, and AUTH PLAIN, keeping every
//! message and every authentication offered). What they received is read
//! back as it came.
//!
//! Invariants: they accept any number of connections for as long as the test runs; a request
//! or message is recorded when it has been read whole, before it is answered.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request a webhook received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// Its body.
    pub body: Vec<u8>,
}

impl Request {
    /// Whether it carries `X-Hydrowatch-Signature: sha256=HEX`, the HMAC-SHA256 under `secret`
    /// of its `X-Hydrowatch-Timestamp`, a dot and its body (computed here, apart from the
    /// server's code).
    pub fn signed_with(&self, secret: &str) -> bool {
        use hmac::Mac as _;
        let (Some(timestamp), Some(signature)) = (
            self.headers.get("x-hydrowatch-timestamp"),
            self.headers.get("x-hydrowatch-signature"),
        ) else {
            return false;
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes any key");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        *signature == format!("sha256={hex}")
    }
}

/// Waits until `done` holds, for at most `limit`; panics naming `what` after that.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A webhook endpoint: every POST is recorded, then answered.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    received: Arc<Mutex<Vec<Request>>>,
}

impl Webhook {
    /// Starts one that answers 500 to the first `failures` requests and 200 after, each after
    /// holding it for `hold`.
    pub fn start(failures: usize, hold: Duration) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let url = format!("http://{}/hook", listener.local_addr().expect("bound"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = answer(stream, &log, failures, hold);
                });
            }
        });
        Webhook { url, received }
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Request> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn answer(
    stream: TcpStream,
    log: &Mutex<Vec<Request>>,
    failures: usize,
    hold: Duration,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut headers = HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let n = {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(Request { headers, body });
        log.len()
    };
    std::thread::sleep(hold);
    let status = if n <= failures {
        "500 Internal Server Error"
    } else {
        "200 OK"
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    stream.flush()
}

/// One message an SMTP sink received.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope's recipients.
    pub to: Vec<String>,
    /// The message (headers and body).
    pub data: String,
    /// Whether it came over TLS (after STARTTLS).
    pub tls: bool,
}

/// One authentication a sink was offered: the AUTH command's line and what followed it (the
/// credentials, base64), and whether it came over TLS.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The lines, as received.
    pub lines: Vec<String>,
    /// Whether after STARTTLS.
    pub tls: bool,
}

/// What a sink saw besides messages.
#[derive(Debug, Default)]
struct Seen {
    mail: Vec<Mail>,
    auth: Vec<Auth>,
    sessions: usize,
}

/// An SMTP server offering STARTTLS with a certificate of its own for `localhost` (or, started
/// with [`SmtpSink::start_plain`], a relay that offers no TLS at all), and AUTH PLAIN, taking
/// any credentials.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its certificate (PEM): the client must trust it.
    pub cert_pem: String,
    received: Arc<Mutex<Seen>>,
}

impl SmtpSink {
    /// Starts one offering STARTTLS.
    pub fn start() -> SmtpSink {
        SmtpSink::started(true)
    }

    /// Starts one that offers no TLS (an old relay, or one an attacker stands in for).
    pub fn start_plain() -> SmtpSink {
        SmtpSink::started(false)
    }

    fn started(starttls: bool) -> SmtpSink {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a self-signed certificate");
        let cert_pem = key.cert.pem();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![key.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
            )
            .expect("the certificate and its key");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let received = Arc::new(Mutex::new(Seen::default()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, config) = (log.clone(), config.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let tls = starttls.then_some(&config);
                    let _ = plain(stream, tls, &log);
                });
            }
        });
        SmtpSink {
            port,
            cert_pem,
            received,
        }
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Mail> {
        self.seen(|s| s.mail.clone())
    }

    /// The authentications it was offered so far.
    pub fn auths(&self) -> Vec<Auth> {
        self.seen(|s| s.auth.clone())
    }

    /// The sessions opened with it so far.
    pub fn sessions(&self) -> usize {
        self.seen(|s| s.sessions)
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.received.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Reads one line (without its CRLF) a byte at a time: the same stream may turn TLS after it.
fn line(s: &mut impl Read) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            break;
        }
        out.push(byte[0]);
    }
    if out.last() == Some(&b'\r') {
        out.pop();
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The session before TLS: greeting, EHLO, STARTTLS (when `tls` is given); then [`session`]
/// over TLS. Mail and AUTH before TLS are taken too (a client that does not insist on TLS).
fn plain(
    mut s: TcpStream,
    tls: Option<&Arc<rustls::ServerConfig>>,
    log: &Mutex<Seen>,
) -> std::io::Result<()> {
    log.lock().unwrap_or_else(|e| e.into_inner()).sessions += 1;
    s.write_all(b"220 localhost ESMTP sink\r\n")?;
    loop {
        let command = line(&mut s)?;
        let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" if tls.is_some() => {
                s.write_all(b"250-localhost\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")?
            }
            "EHLO" => s.write_all(b"250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")?,
            "STARTTLS" if tls.is_some() => {
                s.write_all(b"220 ready for TLS\r\n")?;
                let config = tls.expect("offered").clone();
                let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
                return session(rustls::StreamOwned::new(conn, s), true, log);
            }
            "QUIT" => return s.write_all(b"221 bye\r\n"),
            "NOOP" | "RSET" => s.write_all(b"250 ok\r\n")?,
            "AUTH" => auth(&mut s, &command, false, log)?,
            "MAIL" => {
                s.write_all(b"250 ok\r\n")?;
                return session(s, false, log);
            }
            _ => s.write_all(b"502 not here\r\n")?,
        }
    }
}

/// Takes an AUTH PLAIN (the credentials on its line or on the next), recording it.
fn auth(
    s: &mut (impl Read + Write),
    command: &str,
    tls: bool,
    log: &Mutex<Seen>,
) -> std::io::Result<()> {
    let mut lines = vec![command.to_string()];
    if command.split(' ').count() < 3 {
        s.write_all(b"334 \r\n")?;
        s.flush()?;
        lines.push(line(s)?);
    }
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .auth
        .push(Auth { lines, tls });
    s.write_all(b"235 accepted\r\n")
}

/// The session's rest: EHLO again, AUTH, MAIL, RCPT, DATA, QUIT.
fn session(mut s: impl Read + Write, tls: bool, log: &Mutex<Seen>) -> std::io::Result<()> {
    let mut to = Vec::new();
    loop {
        let command = line(&mut s)?;
        let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => s.write_all(b"250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")?,
            "AUTH" => auth(&mut s, &command, tls, log)?,
            "MAIL" | "NOOP" => s.write_all(b"250 ok\r\n")?,
            "RSET" => {
                to.clear();
                s.write_all(b"250 ok\r\n")?;
            }
            "RCPT" => {
                let address = command
                    .split_once(':')
                    .map_or("", |(_, a)| a)
                    .trim()
                    .trim_matches(['<', '>']);
                to.push(address.to_string());
                s.write_all(b"250 ok\r\n")?;
            }
            "DATA" => {
                s.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                s.flush()?;
                let mut data = String::new();
                loop {
                    let l = line(&mut s)?;
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push('\n');
                }
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .mail
                    .push(Mail {
                        to: std::mem::take(&mut to),
                        data,
                        tls,
                    });
                s.write_all(b"250 queued\r\n")?;
            }
            "QUIT" => {
                s.write_all(b"221 bye\r\n")?;
                return s.flush();
            }
            _ => s.write_all(b"502 not here\r\n")?,
        }
        s.flush()?;
    }
}
