//! The accept loop: every TCP connection the server holds, bounded in number and in how long
//! its request headers may take (docs/adr/0009-server.md, "Clients that never finish").
//!
//! `axum::serve` sets no timer on hyper's connections, so a client that opens a connection and
//! never finishes its headers (or sends nothing) holds a file descriptor forever, and any
//! number of them may be open. This loop serves the same router with hyper's HTTP/1 builder,
//! a Tokio timer and `header_read_timeout`, and caps the open connections with a semaphore:
//! over the cap, a connection is accepted and closed at once (counted), so the backlog never
//! fills with connections the server will not serve. Each connection's permit lives in its
//! I/O object, so an upgraded WebSocket connection still counts until its socket closes.
//!
//! hyper-util's `auto` builder is not used: before it picks HTTP/1 or HTTP/2 it reads the
//! first bytes of the connection with no timeout of its own, so a client that sends nothing
//! would never meet the header timeout. Clients of Home Assistant's API speak HTTP/1.1.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::metrics::ClientMetrics;

/// How the accept loop bounds its clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// How long a request's headers may take (and an idle keep-alive connection may wait).
    pub(crate) header_read_timeout: Duration,
    /// How long a request may take once its headers are in, its body included.
    pub(crate) request_timeout: Duration,
    /// Connections open at once.
    pub(crate) max_connections: usize,
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting, asks every
/// open connection to finish its request and close, and returns once they all have (the
/// caller bounds the wait; upgraded WebSocket connections are not waited for).
///
/// # Errors
/// None today: accept errors are logged and retried (after a pause when the process is out of
/// file descriptors).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: ClientMetrics,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver; `closed()` on the sender is "all done".
    let (open_tx, open_rx) = watch::channel(());
    // Dropped (all receivers see it) when the server stops: each connection shuts down
    // gracefully.
    let (shutdown_tx, shutdown_rx) = watch::channel(());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    // A client that sends its headers and then trickles (or never sends) the body would hold
    // its connection for as long as it likes: every request, body read included, is bounded.
    // An upgraded WebSocket is answered at once (101) and runs on outside this bound.
    let request_timeout = limits.request_timeout;
    let router = router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => request_timed_out(),
            }
        },
    ));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                // Out of file descriptors, most likely: let some close before trying again.
                tracing::error!(error = %err, "accept failed; pausing for a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics.connections_refused.inc();
            tracing::debug!(
                max = limits.max_connections,
                "connection refused: too many open"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted::new(stream, permit, &metrics));
        let service = TowerToHyperService::new(router.clone());
        let builder = Arc::clone(&builder);
        let (open, mut shutdown) = (open_rx.clone(), shutdown_rx.clone());
        let header_timeouts = metrics.header_timeouts.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection(io, service).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                if err.is_timeout() {
                    header_timeouts.inc();
                }
                tracing::trace!(error = %err, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    drop(shutdown_tx);
    drop(open_rx);
    drop(shutdown_rx);
    open_tx.closed().await;
    Ok(())
}

/// The answer to a request that took longer than `api.request_timeout_ms`: 408 in the API's
/// JSON error shape; the connection closes after it.
fn request_timed_out() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::REQUEST_TIMEOUT,
        [(axum::http::header::CONNECTION, "close")],
        axum::Json(serde_json::json!({"message": "Request timed out."})),
    )
        .into_response()
}

/// Errors of one connection that never stop the accept loop (as `axum::serve`).
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection that holds its slot under the cap, and counts as open, until it is dropped.
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    open: prometheus_client::metrics::gauge::Gauge,
}

impl Counted {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, metrics: &ClientMetrics) -> Self {
        metrics.connections.inc();
        Self {
            stream,
            _permit: permit,
            open: metrics.connections.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
