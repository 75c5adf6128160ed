//! The reverse-WebSocket server: NapCat, Lagrange and friends connect to
//! `ws://host:port/<any path>`, prove the access token, push events and
//! answer the actions we send on the same socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::segments::{id_string, parse_message_event};
use super::AiocqhttpAdapter;
use crate::adapter::{wait_for_shutdown, PlatformError};
use crate::message::{InboundMessage, MessagePart};

/// A client that opens TCP but never finishes the handshake is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to exchange close frames.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn serve(
    adapter: Arc<AiocqhttpAdapter>,
    inbound: mpsc::Sender<InboundMessage>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    let addr = format!("{}:{}", adapter.config.host, adapter.config.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|error| PlatformError::Bind {
            addr: addr.clone(),
            reason: error.to_string(),
        })?;
    tracing::info!(platform.id = %adapter.id, %addr, "OneBot v11 reverse WebSocket listening");
    adapter.status.set_running(true);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(adapter.clone(), stream, peer, inbound.clone(), shutdown.clone()));
                }
                // Usually out of file descriptors: transient, keep serving.
                Err(error) => tracing::warn!(platform.id = %adapter.id, %error, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = wait_for_shutdown(&mut shutdown) => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(CLOSE_GRACE, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
    adapter.status.set_running(false);
    Ok(())
}

/// One OneBot connection from handshake to close.
async fn connection(
    adapter: Arc<AiocqhttpAdapter>,
    stream: TcpStream,
    peer: SocketAddr,
    inbound: mpsc::Sender<InboundMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut refusal = None;
    let mut header_self_id = None;
    // The callback's shape (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if let Some(expected) = adapter.config.token.as_deref() {
            if let Err(reason) = check_token(expected, request) {
                refusal = Some(reason);
                let mut error = ErrorResponse::new(Some(format!("{reason}\n")));
                *error.status_mut() = StatusCode::UNAUTHORIZED;
                return Err(error);
            }
        }
        // OneBot implementations name their account in `X-Self-ID`.
        header_self_id = request
            .headers()
            .get("x-self-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(response)
    };
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_hdr_async(stream, check),
    )
    .await;
    let socket = match (handshake, refusal) {
        (_, Some(reason)) => {
            let error = format!("refused OneBot connection from {peer}: {reason}");
            tracing::warn!(platform.id = %adapter.id, "{error}");
            adapter.status.set_error(error);
            return;
        }
        (Ok(Ok(socket)), None) => socket,
        (Ok(Err(error)), None) => {
            tracing::debug!(platform.id = %adapter.id, %peer, %error, "WebSocket handshake failed");
            return;
        }
        (Err(_), None) => return,
    };
    // The token was ours to check and it passed: a recovery.
    adapter.status.clear_error();
    pump(
        &adapter,
        socket,
        &peer.to_string(),
        header_self_id,
        &inbound,
        &mut shutdown,
    )
    .await;
}

/// How an established connection ended.
pub(super) struct Ended {
    /// Whether the OneBot implementation sent anything (an event or an
    /// answer) first.
    pub delivered: bool,
    /// Its close frame, when it closed with one.
    pub close: Option<CloseFrame>,
}

/// Carries one established OneBot connection, whichever side opened it:
/// queued actions go out, events and action answers come in, until either
/// side closes or the server shuts down. The first thing that comes in
/// clears the last error: the link works.
pub(super) async fn pump<S>(
    adapter: &Arc<AiocqhttpAdapter>,
    socket: WebSocketStream<S>,
    peer: &str,
    header_self_id: Option<String>,
    inbound: &mpsc::Sender<InboundMessage>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (outgoing, mut to_send) = mpsc::channel::<Message>(64);
    let link = adapter.links.register(header_self_id.as_deref(), outgoing);
    tracing::info!(platform.id = %adapter.id, %peer, self_id = ?header_self_id, "OneBot implementation connected");
    let (mut sink, mut frames) = socket.split();
    let mut self_id_known = header_self_id.is_some();
    let mut ended = Ended {
        delivered: false,
        close: None,
    };
    loop {
        tokio::select! {
            message = to_send.recv() => {
                let Some(message) = message else { break };
                if let Err(error) = sink.send(message).await {
                    tracing::warn!(platform.id = %adapter.id, %peer, %error, "OneBot send failed");
                    break;
                }
            }
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                        tracing::debug!(platform.id = %adapter.id, "ignoring a non-JSON frame");
                        continue;
                    };
                    if !ended.delivered {
                        ended.delivered = true;
                        adapter.status.clear_error();
                    }
                    if !self_id_known {
                        if let Some(self_id) = value.get("self_id").map(|id| id_string(Some(id))) {
                            adapter.links.learn_self_id(link, &self_id);
                            self_id_known = true;
                        }
                    }
                    handle_frame(adapter, value, inbound);
                }
                Some(Ok(Message::Close(close))) => {
                    ended.close = close;
                    break;
                }
                None => break,
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::warn!(platform.id = %adapter.id, %peer, %error, "OneBot connection failed");
                    break;
                }
            },
            _ = wait_for_shutdown(shutdown) => {
                let close = CloseFrame { code: CloseCode::Away, reason: "astrbot-rs is stopping this bot".into() };
                if sink.send(Message::Close(Some(close))).await.is_ok() {
                    // Give the peer a moment to answer the close frame.
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(_)) = frames.next().await {}
                    }).await;
                }
                break;
            }
        }
    }
    adapter.links.unregister(link);
    tracing::info!(platform.id = %adapter.id, %peer, "OneBot implementation disconnected");
    ended
}

/// An action answer, a message event, or something we ignore (meta
/// events such as heartbeat and lifecycle, notices, requests).
fn handle_frame(adapter: &AiocqhttpAdapter, value: Value, inbound: &mpsc::Sender<InboundMessage>) {
    if value.get("post_type").is_none() {
        if let Some(echo) = value.get("echo").map(|echo| id_string(Some(echo))) {
            adapter.links.answer(&echo, value);
        }
        return;
    }
    let Some(mut message) = parse_message_event(&adapter.id, &value) else {
        return;
    };
    for part in &mut message.chain {
        if let MessagePart::Reply {
            message_id, to_bot, ..
        } = part
        {
            *to_bot = adapter.sent.contains(message_id);
        }
    }
    let key = format!(
        "{}/{}/{}",
        message.self_id, message.session_id, message.message_id
    );
    if !message.message_id.is_empty() && !adapter.seen.first_time(key) {
        tracing::debug!(platform.id = %adapter.id, message.id = %message.message_id, "a message delivered again; answered once");
        return;
    }
    // Never wait on a busy pipeline here: this loop also reads the answers
    // to the pipeline's own sends, so blocking would deadlock them.
    if let Err(mpsc::error::TrySendError::Full(message)) = inbound.try_send(message) {
        let inbound = inbound.clone();
        tokio::spawn(async move { inbound.send(message).await });
    }
}

/// The token from `Authorization: Bearer|Token <t>` or `?access_token=`.
fn presented_token(request: &Request) -> Option<String> {
    if let Some(header) = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let header = header.trim();
        for scheme in ["bearer ", "token "] {
            let prefix = header.get(..scheme.len());
            if prefix.is_some_and(|p| p.eq_ignore_ascii_case(scheme)) {
                return Some(header[scheme.len()..].trim().to_owned());
            }
        }
    }
    request
        .uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "access_token")
        .map(|(_, value)| percent_decode(value))
}

fn check_token(expected: &str, request: &Request) -> Result<(), &'static str> {
    let presented = presented_token(request).ok_or("missing access token")?;
    // Constant time, so the comparison does not leak the token prefix.
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err("wrong access token")
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, authorization: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(value) = authorization {
            builder = builder.header("Authorization", value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn tokens_from_header_or_query() {
        assert_eq!(
            check_token("s3", &request("/ws", Some("Bearer s3"))),
            Ok(())
        );
        assert_eq!(check_token("s3", &request("/ws", Some("token s3"))), Ok(()));
        assert_eq!(
            check_token("a b", &request("/?x=1&access_token=a%20b", None)),
            Ok(())
        );
        assert_eq!(
            check_token("s3", &request("/ws", Some("Bearer nope"))),
            Err("wrong access token")
        );
        assert_eq!(
            check_token("s3", &request("/ws", None)),
            Err("missing access token")
        );
    }
}
