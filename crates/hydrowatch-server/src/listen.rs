//! The server's listener: HTTP/1.1 connections served by hyper with the bounds `axum::serve`
//! lacks. Without them a client that opens connections and sends nothing, or sends a request a
//! byte at a time, holds a connection (and a file descriptor) for ever, and a few hundred of them
//! starve everyone else.
//!
//! Invariants: at most [`Limits::max_connections`] connections are served at once (one more is
//! answered 503 and closed at once); a connection that has not sent a request's headers within
//! [`Limits::header_timeout`] is closed, also between the requests of a kept-alive connection; a
//! request that takes longer than [`Limits::request_timeout`] (a slow body included) is answered
//! 408.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// The bounds of the server's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers (from its opening, or from the end of
    /// the previous response).
    pub header_timeout: Duration,
    /// Time a request has, from its headers to the end of its answer (its body included).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
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

/// The 408 of a request not done within `limit`.
fn too_slow(limit: Duration) -> axum::response::Response {
    crate::state::ApiError(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        format!("the request took longer than {} s", limit.as_secs()),
    )
    .into_response()
}

/// Time given to open connections to finish after `shutdown`.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting
/// and lets open connections finish their request (for at most 10 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, mostly: give connections time to close.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
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
        let app = app.clone();
        let service = hyper::service::service_fn(move |request| {
            let mut app = app.clone();
            async move {
                // A Router is always ready: no poll_ready needed before call.
                let answer = tower_service::Service::call(&mut app, request);
                match tokio::time::timeout(limits.request_timeout, answer).await {
                    Ok(response) => response,
                    Err(_) => Ok(too_slow(limits.request_timeout)),
                }
            }
        });
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
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
        });
    }
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(all)).await;
}
