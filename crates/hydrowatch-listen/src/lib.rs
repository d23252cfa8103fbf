//! Listening with bounds. [`serve`]: HTTP/1.1 connections served by hyper with the bounds
//! `axum::serve` lacks (the central server's API and dashboard, the device's `/health`). Without
//! them a client that opens connections and sends nothing, or sends a request a byte at a time,
//! holds a connection (and a file descriptor) for ever, and a few hundred of them starve everyone
//! else. [`AcceptErrors`]: what a listener does when accepting fails (out of file descriptors,
//! mostly): it waits longer each time and logs at a bounded rate, instead of spinning and
//! writing the same line thousands of times a second.
//!
//! Invariants: at most [`Limits::max_connections`] connections are served at once, at most
//! [`Limits::max_per_address`] from one client address (one more is answered 503 and closed at
//! once); a connection that has not sent a request's headers within
//! [`Limits::header_timeout`] is closed, also between the requests of a kept-alive connection; a
//! request that takes longer than [`Limits::request_timeout`] (a slow body included) is answered
//! 408. With TLS (`serve --tls-cert/--tls-key`, rustls), the handshake too must be done within
//! the header timeout. Each request carries its connection's peer (`ConnectInfo`) and its
//! client's address ([`ClientAddress`]: the peer's, or through [`Limits::trusted_proxies`] the
//! one they forward); a trusted proxy's connections are not limited per address (they are
//! everybody's). A failing accept is retried after 10 ms to 1 s and logged at most once every
//! [`LOG_EVERY`].

mod proxies;

pub use proxies::{BadHeaderName, ClientAddress, TrustedProxies};

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// Why the TLS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file that does not read as PEM of its kind (the file, what is wrong).
    #[error("{0}: {1}")]
    File(String, String),
    /// rustls refuses the pair.
    #[error("the certificate and key do not go together: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS configuration of a certificate chain (`cert`, PEM, the server's first) and its
/// private key (`key`, PEM: PKCS#8, PKCS#1 or SEC1). HTTP/1.1 only; TLS 1.2 and 1.3.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let file_error = |path: &Path, e: &dyn std::fmt::Display| {
        TlsError::File(path.display().to_string(), e.to_string())
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, &e))?;
    if chain.is_empty() {
        return Err(file_error(cert, &"no CERTIFICATE block in it"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)?;
    Ok(Arc::new(config))
}

/// The bounds of a listener's connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one client address (0: no limit of its own): one
    /// client reopening half-open connections cannot hold every slot.
    pub max_per_address: usize,
    /// Time a connection has to send a request's headers (from its opening, or from the end of
    /// the previous response).
    pub header_timeout: Duration,
    /// Time a request has, from its headers to the end of its answer (its body included).
    pub request_timeout: Duration,
    /// The reverse proxies believed about the client's address.
    pub trusted_proxies: TrustedProxies,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_per_address: 128,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            trusted_proxies: TrustedProxies::NONE,
        }
    }
}

/// The answer when every connection slot is taken.
fn busy() -> Vec<u8> {
    let body = r#"{"error": "the server has too many connections: retry"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The 408 of a request not done within `limit` (JSON, as the server's other errors).
fn too_slow(limit: Duration) -> axum::response::Response {
    (
        axum::http::StatusCode::REQUEST_TIMEOUT,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"error\": \"the request took longer than {} s\"}}",
            limit.as_secs()
        ),
    )
        .into_response()
}

/// A failing accept is logged at most once in this time (with the count of those not logged).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The accept errors of one listener: how long to wait before the next accept, and when it last
/// logged one.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    /// Failures in a row.
    in_a_row: u32,
    /// Failures not logged since the last line.
    unlogged: u64,
    last_logged: Option<std::time::Instant>,
}

impl AcceptErrors {
    /// Counts a failed accept of `listener` (a name for the log); returns how long to wait
    /// before accepting again: 10 ms, doubling with each failure in a row, at most 1 s.
    pub fn failed(&mut self, listener: &str, error: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let due = self.last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if due {
            if self.unlogged > 0 {
                tracing::warn!(
                    "{listener}: accepting a connection failed: {error} ({} more since the last such line; out of file descriptors?)",
                    self.unlogged
                );
            } else {
                tracing::warn!("{listener}: accepting a connection failed: {error}");
            }
            self.last_logged = Some(std::time::Instant::now());
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        Duration::from_millis(10 << self.in_a_row.min(8).saturating_sub(1))
            .min(Duration::from_secs(1))
    }

    /// An accept succeeded: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// Time given to open connections to finish after `shutdown`.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` within `limits`, over TLS when `tls` is given, until `shutdown`
/// completes; then stops accepting and lets open connections finish their request (for at most
/// 10 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let tls = tls.map(TlsAcceptor::from);
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let name = listener
        .local_addr()
        .map_or_else(|_| "HTTP".to_string(), |a| format!("HTTP {a}"));
    let mut errors = AcceptErrors::default();
    let by_address: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                errors.succeeded();
                accepted
            }
            Err(e) => {
                // Out of file descriptors, mostly: give connections time to close.
                let wait = errors.failed(&name, &e);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let from = peer.ip();
        let per_address = if limits.trusted_proxies.trusts(from) {
            0
        } else {
            limits.max_per_address
        };
        let taken_here = {
            let mut open = lock(&by_address);
            let n = open.entry(from).or_insert(0);
            if per_address > 0 && *n >= per_address {
                false
            } else {
                *n += 1;
                true
            }
        };
        let permit = if taken_here {
            slots.clone().try_acquire_owned().ok()
        } else {
            None
        };
        let Some(permit) = permit else {
            if taken_here {
                release(&by_address, from);
            }
            // Answered, then closed after the request is read (closing with it unread would
            // reset the connection, and the client could lose the answer).
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    stream.write_all(&busy()).await?;
                    stream.shutdown().await?;
                    let mut sink = [0u8; 4096];
                    stream.read(&mut sink).await
                })
                .await;
            });
            continue;
        };
        let (app, stop, tls, limits) = (app.clone(), stop_rx.clone(), tls.clone(), limits.clone());
        let by_address = by_address.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, peer, app, limits, stop, permit).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => connection(stream, peer, app, limits, stop, permit).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            release(&by_address, from);
        });
    }
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(all)).await;
}

fn lock(
    by_address: &std::sync::Mutex<HashMap<IpAddr, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
    by_address.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection from `from` ended.
fn release(by_address: &std::sync::Mutex<HashMap<IpAddr, usize>>, from: IpAddr) {
    let mut open = lock(by_address);
    if let Some(n) = open.get_mut(&from) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            open.remove(&from);
        }
    }
}

/// Serves one connection (plain or TLS) until it closes or `stop` turns true; `permit` is its
/// slot, given back when it ends.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = limits.header_timeout;
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let mut app = app.clone();
            let client = limits.trusted_proxies.client(peer.ip(), request.headers());
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(ClientAddress(client));
            let limits = limits.clone();
            async move {
                // A Router is always ready: no poll_ready needed before call.
                let answer = tower_service::Service::call(&mut app, request);
                match tokio::time::timeout(limits.request_timeout, answer).await {
                    Ok(response) => response,
                    Err(_) => Ok(too_slow(limits.request_timeout)),
                }
            }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        // The value only ever turns true (or the sender is gone): both mean stop.
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, connection).await;
        }
    }
    drop(permit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_wait_longer_in_a_row_and_start_again_after_a_success() {
        let mut errors = AcceptErrors::default();
        let e = std::io::Error::other("too many open files");
        let waits: Vec<u64> = (0..10)
            .map(|_| errors.failed("test", &e).as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        // Logged once; the other nine counted for the next line.
        assert_eq!(errors.unlogged, 9);
        errors.succeeded();
        assert_eq!(errors.failed("test", &e), Duration::from_millis(10));
    }
}
