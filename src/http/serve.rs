//! The HTTP accept loop. `axum::serve` has no header-read deadline and no cap on connections, so
//! a client that opens sockets and never finishes a request head would hold them forever. This
//! loop serves the same router through hyper with both limits and the same graceful shutdown,
//! and a deadline on response writes that make no progress; with a certificate, over TLS.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::write_deadline::WriteDeadline;

/// Limits on the connections one listener serves.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most; past it the listener stops accepting until one closes.
    pub max_connections: usize,
    /// Time a connection has to send a complete request head, counted from when the server
    /// starts waiting for one (on connect and after each response, so idle keep-alive counts).
    pub header_read_timeout: Duration,
    /// Time a blocked response write may wait for the client to read.
    pub write_timeout: Duration,
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error(transparent)]
    Http(hyper::Error),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    #[error("shutting down during the TLS handshake")]
    Shutdown,
}

/// Serves `router` on `listener` (over TLS with `https`) until `shutdown`, then lets requests
/// in progress finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    https: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or a connection reset before accept: wait a little
                    // rather than spin, as axum does.
                    warn!(%err, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // The peer's address goes into each request for the sign-in log (axum's ConnectInfo).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let stream = WriteDeadline::new(stream, limits.write_timeout);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let https = https.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let served = match https {
                None => watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await
                    .map_err(ConnectionEnd::Http),
                // The handshake counts against the header deadline: a client that opens a
                // socket and never says hello is cut off like one that never sends a head.
                // A shutdown does not wait for handshakes.
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    let tls = tokio::select! {
                        () = shutdown.cancelled() => Err(ConnectionEnd::Shutdown),
                        done = handshake => match done {
                            Ok(Ok(tls)) => Ok(tls),
                            Ok(Err(err)) => Err(ConnectionEnd::Handshake(err)),
                            Err(_) => Err(ConnectionEnd::HandshakeTimeout),
                        },
                    };
                    match tls {
                        Ok(tls) => watcher
                            .watch(builder.serve_connection(TokioIo::new(tls), service))
                            .await
                            .map_err(ConnectionEnd::Http),
                        Err(end) => Err(end),
                    }
                }
            };
            if let Err(end) = served {
                debug!(%end, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
