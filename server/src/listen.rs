//! How Wick accepts and keeps connections: its own accept loop over hyper's
//! HTTP/1 connection, where `axum::serve` would keep a silent or half-sent
//! connection open for ever (slowloris).
//!
//! - A connection has `header_timeout` to send a request's headers, counted
//!   from when it opens or from the end of its previous response; a slower or
//!   idle one is closed. The clock runs only while a request is awaited, so a
//!   stream that is answering (the reply stream, `/generate_stream`, streaming
//!   chat completions) stays open however long it runs. A request body that
//!   sends nothing for as long is cut too.
//! - At most `max_connections` are open at once, streams included. At the cap
//!   the next connections wait in the kernel's queue to be accepted, in the
//!   order they came, until one closes; the timeout above sees that slow ones
//!   do, so `/health` still answers behind a flood of half-open connections.
//! - On shutdown, accepting stops and every connection closes once its
//!   response is sent (idle ones at once).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// How connections are treated; `Config::connection_limits` gives the configured ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, from the connection's start or its
    /// previous response's end.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// At shutdown: how long running replies may take to finish before the
    /// rest are stopped (saved as interrupted, their streams ended).
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // A request body gets the same time between two of its pieces: one that
    // stops sending mid-body is cut (its handler sees a read error and
    // answers 400), instead of holding the connection for ever.
    let body_timeout = limits.header_timeout;
    let service = app.map_request(move |request: Request<Incoming>| {
        request.map(|body| Body::new(TimeoutBody::new(body_timeout, body)))
    });
    let mut shutdown = std::pin::pin!(shutdown);
    let mut at_cap = false;
    loop {
        // A place first, then the connection: at the cap, new ones wait in the
        // listen queue rather than being accepted and left unanswered.
        let place = match places.clone().try_acquire_owned() {
            Ok(place) => {
                at_cap = false;
                place
            }
            Err(_) => {
                if !at_cap {
                    at_cap = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "the connection cap is reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    place = places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The peer's address travels with each request (sign-in attempts
        // are counted per address as well as per account).
        let service = service
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A timed-out header, a reset, a malformed request: the client's doing.
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(place);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed accept: a connection reset before it was taken is nothing; running
/// out of file descriptors is worth a line and a pause (as hyper and axum do).
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
