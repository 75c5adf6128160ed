//! Serving accepted connections for astrbot-rs's HTTP servers (the API and
//! dashboard, and the chat platforms' webhooks): HTTP/1.1 and HTTP/2 on one
//! port, limits on clients that go silent, and graceful shutdown.
//!
//! Without limits, a client that connects and then sends nothing, or sends
//! its request a byte at a time, holds a socket and a task for ever; enough
//! of them use up the file descriptors and nobody else gets in. So:
//! - a new connection must show which protocol it speaks (HTTP/2's
//!   preface, or anything else for HTTP/1.1) within
//!   [`ConnectionLimits::header_read`]; hyper would wait for that for ever;
//! - HTTP/1.1: a request head must arrive whole within the same limit, on a
//!   new connection and on an idle kept-alive one alike;
//! - HTTP/2: a connection without an open request for
//!   [`ConnectionLimits::http2_idle`] is closed gracefully (`GOAWAY`), and
//!   one whose peer stops answering pings is dropped;
//! - request bodies: a body that sends nothing for
//!   [`ConnectionLimits::body_idle`] while a handler waits for it ends with
//!   an error, which the handler answers (the API in its envelope).
//!
//! Responses are not limited: a chat stream may be quiet as long as the
//! model thinks, with keep-alive comments meanwhile.
//!
//! (axum's own `serve` sets none of these limits.)

mod activity;
mod body;

use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

use activity::Activity;
use body::IdleLimitedBody;

/// How long silent clients are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// For a new connection's first bytes, and for an HTTP/1.1 request
    /// head to arrive whole.
    pub header_read: Duration,
    /// For the next piece of a request body, while a handler waits for it.
    pub body_idle: Duration,
    /// For an HTTP/2 connection to open a request when it has none.
    pub http2_idle: Duration,
}

impl Default for ConnectionLimits {
    /// Generous for a phone on a poor network; short next to the hours an
    /// idle socket would otherwise be held.
    fn default() -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(30),
            body_idle: Duration::from_secs(60),
            http2_idle: Duration::from_secs(180),
        }
    }
}

/// How often an HTTP/2 connection is pinged, and how long the answer may
/// take before the connection is dropped.
const H2_PING_EVERY: Duration = Duration::from_secs(60);
const H2_PING_ANSWER: Duration = Duration::from_secs(20);

/// How long to pause accepting after an error such as running out of file
/// descriptors, which retrying at once would only repeat.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, asks every connection to finish what it is doing and close,
/// and waits for them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        // A client that stops sending after its request (or hangs up)
        // still has that request handled: a chat message received is
        // answered and saved whatever the client does next.
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_ANSWER)
        // WebSockets over HTTP/2 (RFC 8441), as axum's own server allows.
        .enable_connect_protocol();

    // Every connection holds a receiver; the sender is told when all of
    // them are gone.
    let (stopping, stop) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            stream = accept(&listener) => stream,
            () = &mut shutdown => break,
        };
        let connection =
            serve_connection(stream, app.clone(), builder.clone(), limits, stop.clone());
        tokio::spawn(connection);
    }

    drop(listener);
    drop(stop);
    let _ = stopping.send(());
    stopping.closed().await;
}

/// One connection, to its end or to a graceful close.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<()>,
) {
    // A client that has said nothing yet is simply dropped at shutdown.
    let protocol = tokio::select! {
        protocol = protocol_within(&stream, limits.header_read) => protocol,
        _ = stop.changed() => None,
    };
    let Some(protocol) = protocol else {
        return;
    };

    // HTTP/1.1 connections are limited by hyper's head timer alone.
    let activity = (protocol == Protocol::Http2).then(Activity::default);
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let tracked = requests.as_ref().map(Activity::start);
        let request = request.map(|body| IdleLimitedBody::new(body, limits.body_idle));
        let answer = app.clone().call(request);
        async move {
            let response = answer.await?;
            Ok::<_, std::convert::Infallible>(match tracked {
                Some(request) => request.until_sent(response),
                None => response,
            })
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);

    let mut closing = false;
    let idle = async {
        match &activity {
            Some(activity) => activity.idle_for(limits.http2_idle).await,
            None => std::future::pending().await,
        }
    };
    let mut idle = std::pin::pin!(idle);
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                // A client that leaves or breaks the protocol ends its own
                // connection; there is nothing to answer.
                if let Err(error) = ended {
                    tracing::trace!(%error, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = &mut idle, if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The next connection, with `TCP_NODELAY` set: SSE events are small
/// writes, and without it the second one waits about 40 ms for the
/// client's delayed ACK.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "could not set TCP_NODELAY");
                }
                return stream;
            }
            // The client gave up while queued: nothing to do.
            Err(error) if is_per_connection(&error) => {}
            Err(error) => {
                tracing::error!(%error, "accepting connections failed; retrying shortly");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// HTTP/2's connection preface (RFC 9113, 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How soon to look again while a client's first bytes are a part of
/// [`H2_PREFACE`], doubling up to [`PREFACE_RECHECK_MAX`]. Peeking cannot
/// wait for *more* data (the bytes already there keep the socket
/// readable), so it polls; a real HTTP/2 client sends the preface whole at
/// once, and a client that stops halfway costs a few dozen looks, not one
/// every few milliseconds for the whole limit.
const PREFACE_RECHECK: Duration = Duration::from_millis(5);
const PREFACE_RECHECK_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// The client's protocol, if it sends enough to tell within `limit`: the
/// whole HTTP/2 preface, or a first byte that departs from it. The bytes
/// are only peeked at; hyper reads them again. A client that closes counts
/// as HTTP/1.1, so that hyper sees the close.
async fn protocol_within(stream: &TcpStream, limit: Duration) -> Option<Protocol> {
    let enough = async {
        let mut first = [0u8; H2_PREFACE.len()];
        let mut recheck = PREFACE_RECHECK;
        loop {
            let seen = stream.peek(&mut first).await?;
            if seen == first.len() && first == H2_PREFACE {
                return Ok::<_, std::io::Error>(Protocol::Http2);
            }
            if seen == 0 || seen == first.len() || first[..seen] != H2_PREFACE[..seen] {
                return Ok(Protocol::Http1);
            }
            tokio::time::sleep(recheck).await;
            recheck = (recheck * 2).min(PREFACE_RECHECK_MAX);
        }
    };
    tokio::time::timeout(limit, enough).await.ok()?.ok()
}

fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}
