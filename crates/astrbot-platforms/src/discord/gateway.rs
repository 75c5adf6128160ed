//! The gateway: connect, Hello, heartbeat with ack checking, Identify or
//! Resume, then dispatches until the socket ends. Reconnect (op 7), Invalid
//! Session (op 9), missed acks and dropped sockets reconnect and resume
//! where Discord allows it; close codes that retrying cannot fix (4004 bad
//! token, 4014 disallowed intents …) end `run` with a clear error.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::config::INTENTS;
use super::inbound::parse_message_create;
use super::rest::bad_token;
use super::DiscordAdapter;
use crate::adapter::{wait_for_shutdown, PlatformError};
use crate::message::InboundMessage;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, Message>;
type Frames = SplitStream<Socket>;

/// Connections in a row that end before READY/RESUMED before `run` gives
/// up and lets the manager back off.
const MAX_FAILED_CONNECTIONS: u32 = 5;
/// How long shutdown waits for Discord to answer our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

const OP_DISPATCH: u64 = 0;
const OP_HEARTBEAT: u64 = 1;
const OP_IDENTIFY: u64 = 2;
const OP_RESUME: u64 = 6;
const OP_RECONNECT: u64 = 7;
const OP_INVALID_SESSION: u64 = 9;
const OP_HELLO: u64 = 10;
const OP_HEARTBEAT_ACK: u64 = 11;

/// How one connection ended.
enum Outcome {
    Shutdown,
    Fatal(PlatformError),
    Reconnect {
        /// Identify afresh instead of resuming.
        fresh: bool,
        /// Wait before reconnecting.
        pause: bool,
        /// READY or RESUMED arrived on this connection.
        ready: bool,
        reason: String,
    },
}

pub(super) async fn run(
    adapter: Arc<DiscordAdapter>,
    inbound: mpsc::Sender<InboundMessage>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    let result = connect_loop(&adapter, &inbound, &mut shutdown).await;
    adapter.status.set_running(false);
    if let Err(error) = &result {
        adapter.status.set_error(error.to_string());
    }
    result
}

async fn connect_loop(
    adapter: &DiscordAdapter,
    inbound: &mpsc::Sender<InboundMessage>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    let base_url = match &adapter.config.gateway_url {
        Some(url) => url.clone(),
        None => tokio::select! {
            url = adapter.rest.gateway_url() => url?,
            _ = wait_for_shutdown(shutdown) => return Ok(()),
        },
    };
    let mut failures = 0;
    loop {
        let (url, resuming) = {
            let session = adapter.session();
            match (&session.resume_url, session.resumable()) {
                (Some(url), Some(_)) => (url.clone(), true),
                (None, Some(_)) => (base_url.clone(), true),
                _ => (base_url.clone(), false),
            }
        };
        let url = with_query(&url);
        tracing::debug!(platform.id = %adapter.id, %url, resuming, "connecting to the Discord gateway");
        let connect = tokio::time::timeout(
            adapter.config.http_timeout,
            tokio_tungstenite::connect_async(url.as_str()),
        );
        let connected = tokio::select! {
            connected = connect => connected,
            _ = wait_for_shutdown(shutdown) => return Ok(()),
        };
        let socket = match connected {
            Ok(Ok((socket, _))) => socket,
            failed => {
                let reason = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".to_owned(),
                };
                let error = format!("cannot connect to the Discord gateway {url}: {reason}");
                failures += 1;
                // A stale resume URL: identify on the main gateway next.
                if resuming && failures < MAX_FAILED_CONNECTIONS {
                    tracing::warn!(platform.id = %adapter.id, "{error}; identifying afresh");
                    adapter.session().invalidate();
                    continue;
                }
                return Err(PlatformError::NotConnected(error));
            }
        };
        match connection(adapter, socket, inbound, shutdown).await {
            Outcome::Shutdown => return Ok(()),
            Outcome::Fatal(error) => return Err(error),
            Outcome::Reconnect {
                fresh,
                pause,
                ready,
                reason,
            } => {
                failures = if ready { 0 } else { failures + 1 };
                if failures >= MAX_FAILED_CONNECTIONS {
                    return Err(PlatformError::NotConnected(format!(
                        "Discord gateway: {reason} ({failures} connections in a row failed)"
                    )));
                }
                if fresh {
                    adapter.session().invalidate();
                }
                tracing::info!(platform.id = %adapter.id, %reason, resume = !fresh, "reconnecting to the Discord gateway");
                if pause {
                    tokio::select! {
                        _ = tokio::time::sleep(adapter.config.reconnect_delay) => {}
                        _ = wait_for_shutdown(shutdown) => return Ok(()),
                    }
                }
            }
        }
    }
}

/// Discord wants the version and encoding on the gateway URL.
fn with_query(url: &str) -> String {
    if url.contains('?') {
        url.to_owned()
    } else {
        format!("{}/?v=10&encoding=json", url.trim_end_matches('/'))
    }
}

/// One gateway connection from Hello to its end.
async fn connection(
    adapter: &DiscordAdapter,
    socket: Socket,
    inbound: &mpsc::Sender<InboundMessage>,
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    let (mut sink, mut frames) = socket.split();
    let reconnect = |fresh, pause, ready, reason: String| Outcome::Reconnect {
        fresh,
        pause,
        ready,
        reason,
    };

    let hello = tokio::select! {
        hello = tokio::time::timeout(adapter.config.http_timeout, next_payload(&mut frames)) => hello,
        _ = wait_for_shutdown(shutdown) => return close(sink, frames).await,
    };
    let interval = match hello {
        Ok(Ok(payload)) if op(&payload) == OP_HELLO => payload
            .pointer("/d/heartbeat_interval")
            .and_then(Value::as_u64)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
        Ok(Ok(_)) => None,
        Ok(Err(ended)) => return classify_end(ended, false),
        Err(_) => return reconnect(false, true, false, "no Hello from the gateway".into()),
    };
    let Some(interval) = interval else {
        return reconnect(
            false,
            true,
            false,
            "the gateway's first message was not a valid Hello".into(),
        );
    };

    let first = adapter.session().resumable();
    let greeting = match &first {
        Some((session_id, seq)) => json!({"op": OP_RESUME, "d": {
            "token": adapter.config.token, "session_id": session_id, "seq": seq,
        }}),
        None => json!({"op": OP_IDENTIFY, "d": {
            "token": adapter.config.token,
            "intents": INTENTS,
            "properties": {"os": std::env::consts::OS, "browser": "astrbot-rs", "device": "astrbot-rs"},
        }}),
    };
    if let Err(error) = send(&mut sink, &greeting).await {
        return reconnect(
            false,
            true,
            false,
            format!(
                "sending {} failed: {error}",
                if first.is_some() {
                    "Resume"
                } else {
                    "Identify"
                }
            ),
        );
    }

    let mut heartbeat = tokio::time::interval_at(Instant::now() + first_beat(interval), interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut acked = true;
    let mut ready = false;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                if !acked {
                    // A zombie connection: close with a non-1000 code so
                    // the session stays resumable, then resume.
                    let _ = sink.send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Library(4000),
                        reason: "heartbeat not acknowledged".into(),
                    }))).await;
                    return reconnect(false, false, ready, "no heartbeat ack".into());
                }
                acked = false;
                if let Err(error) = send_heartbeat(adapter, &mut sink).await {
                    return reconnect(false, true, ready, format!("heartbeat failed: {error}"));
                }
            }
            payload = next_payload(&mut frames) => {
                let payload = match payload {
                    Ok(payload) => payload,
                    Err(ended) => return classify_end(ended, ready),
                };
                match op(&payload) {
                    OP_DISPATCH => {
                        if let Some(seq) = payload.get("s").and_then(Value::as_u64) {
                            adapter.session().seq = Some(seq);
                        }
                        ready |= dispatch(adapter, &payload, inbound);
                    }
                    OP_HEARTBEAT => {
                        if let Err(error) = send_heartbeat(adapter, &mut sink).await {
                            return reconnect(false, true, ready, format!("heartbeat failed: {error}"));
                        }
                    }
                    OP_HEARTBEAT_ACK => acked = true,
                    OP_RECONNECT => {
                        let _ = sink.send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Library(4000),
                            reason: "reconnect requested".into(),
                        }))).await;
                        return reconnect(false, false, ready, "Discord asked to reconnect".into());
                    }
                    OP_INVALID_SESSION => {
                        let resumable = payload.get("d").and_then(Value::as_bool) == Some(true);
                        let _ = sink.send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Library(4000),
                            reason: "invalid session".into(),
                        }))).await;
                        return reconnect(!resumable, true, ready, "Discord invalidated the session".into());
                    }
                    _ => {}
                }
            }
            _ = wait_for_shutdown(shutdown) => return close(sink, frames).await,
        }
    }
}

/// The first beat comes after a random part of the interval, as Discord
/// asks, so many bots restarting at once do not beat in step.
fn first_beat(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    interval.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

async fn send_heartbeat(adapter: &DiscordAdapter, sink: &mut Sink) -> Result<(), String> {
    let seq = adapter.session().seq;
    send(sink, &json!({"op": OP_HEARTBEAT, "d": seq})).await
}

/// Handles a dispatch; true for READY and RESUMED.
fn dispatch(
    adapter: &DiscordAdapter,
    payload: &Value,
    inbound: &mpsc::Sender<InboundMessage>,
) -> bool {
    let data = payload.get("d").unwrap_or(&Value::Null);
    match payload.get("t").and_then(Value::as_str).unwrap_or_default() {
        "READY" => {
            let user_id = data
                .pointer("/user/id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            {
                let mut session = adapter.session();
                session.session_id = data
                    .get("session_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                session.resume_url = data
                    .get("resume_gateway_url")
                    .and_then(Value::as_str)
                    .filter(|url| !url.is_empty())
                    .map(str::to_owned);
                session.user_id = user_id.to_owned();
            }
            let name = data
                .pointer("/user/username")
                .and_then(Value::as_str)
                .unwrap_or_default();
            tracing::info!(platform.id = %adapter.id, user.id = %user_id, user.name = %name, "Discord gateway ready");
            adapter.status.set_running(true);
            adapter.status.clear_error();
            true
        }
        "RESUMED" => {
            tracing::info!(platform.id = %adapter.id, "Discord gateway session resumed");
            adapter.status.set_running(true);
            adapter.status.clear_error();
            true
        }
        "MESSAGE_CREATE" => {
            let self_id = adapter.session().user_id.clone();
            if let Some(message) = parse_message_create(&adapter.id, &self_id, data) {
                // Never wait on a busy pipeline here: a blocked loop
                // misses heartbeats and Discord drops the connection.
                if let Err(mpsc::error::TrySendError::Full(message)) = inbound.try_send(message) {
                    let inbound = inbound.clone();
                    tokio::spawn(async move { inbound.send(message).await });
                }
            }
            false
        }
        _ => false,
    }
}

/// Why the socket ended, as a read error or close frame.
enum Ended {
    Closed(Option<CloseFrame>),
    Failed(String),
}

/// The next JSON payload; binary, ping and unparsable frames are skipped.
async fn next_payload(frames: &mut Frames) -> Result<Value, Ended> {
    loop {
        match frames.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Ok(value) = serde_json::from_str::<Value>(text.as_str()) {
                    return Ok(value);
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(Ended::Closed(frame)),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(Ended::Failed(error.to_string())),
            None => return Err(Ended::Closed(None)),
        }
    }
}

/// Discord's close codes: some mean "start over", a few mean "retrying
/// will not help".
fn classify_end(ended: Ended, ready: bool) -> Outcome {
    let frame = match ended {
        Ended::Failed(error) => {
            return Outcome::Reconnect {
                fresh: false,
                pause: true,
                ready,
                reason: format!("gateway connection failed: {error}"),
            }
        }
        Ended::Closed(frame) => frame,
    };
    let code = frame.as_ref().map(|frame| u16::from(frame.code));
    let reason = frame
        .as_ref()
        .map(|frame| frame.reason.to_string())
        .filter(|reason| !reason.is_empty());
    let described = match (code, &reason) {
        (Some(code), Some(reason)) => format!("close code {code}: {reason}"),
        (Some(code), None) => format!("close code {code}"),
        (None, _) => "connection closed".to_owned(),
    };
    let fatal = |what: &str| {
        Outcome::Fatal(PlatformError::Other(format!(
            "{what} (gateway {described})"
        )))
    };
    match code {
        Some(4004) => Outcome::Fatal(bad_token(&format!("gateway {described}"))),
        Some(4010) | Some(4011) => fatal("Discord wants this bot sharded, which astrbot-rs does not do"),
        Some(4012) => fatal("Discord rejected the gateway version"),
        Some(4013) => fatal("Discord rejected the gateway intents"),
        Some(4014) => fatal("Discord refused the intents: enable the Message Content intent for the bot in the Developer Portal"),
        Some(4007) | Some(4009) => Outcome::Reconnect {
            fresh: true,
            pause: true,
            ready,
            reason: format!("session expired ({described})"),
        },
        _ => Outcome::Reconnect {
            fresh: false,
            pause: true,
            ready,
            reason: format!("gateway {described}"),
        },
    }
}

fn op(payload: &Value) -> u64 {
    payload
        .get("op")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX)
}

async fn send(sink: &mut Sink, payload: &Value) -> Result<(), String> {
    sink.send(Message::Text(payload.to_string().into()))
        .await
        .map_err(|error| error.to_string())
}

/// A clean close on shutdown: code 1000 (which ends the session) and a
/// bounded wait for Discord's answer.
async fn close(mut sink: Sink, mut frames: Frames) -> Outcome {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "astrbot-rs is stopping this bot".into(),
    };
    if sink.send(Message::Close(Some(frame))).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(frame)) = frames.next().await {
                if frame.is_close() {
                    break;
                }
            }
        })
        .await;
    }
    Outcome::Shutdown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_query_is_added_once() {
        assert_eq!(
            with_query("wss://gateway.discord.gg"),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
        assert_eq!(
            with_query("ws://127.0.0.1:5/"),
            "ws://127.0.0.1:5/?v=10&encoding=json"
        );
        assert_eq!(
            with_query("ws://h/?v=10&encoding=json"),
            "ws://h/?v=10&encoding=json"
        );
    }

    #[test]
    fn close_codes() {
        let closed = |code: u16| {
            Ended::Closed(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
        };
        let Outcome::Fatal(error) = classify_end(closed(4004), true) else {
            panic!("4004 is fatal")
        };
        assert!(error
            .to_string()
            .starts_with("Discord rejected the bot token"));
        assert!(matches!(
            classify_end(closed(4014), true),
            Outcome::Fatal(_)
        ));
        assert!(matches!(
            classify_end(closed(4009), true),
            Outcome::Reconnect { fresh: true, .. }
        ));
        assert!(matches!(
            classify_end(closed(1001), true),
            Outcome::Reconnect { fresh: false, .. }
        ));
        assert!(matches!(
            classify_end(Ended::Closed(None), false),
            Outcome::Reconnect {
                fresh: false,
                ready: false,
                ..
            }
        ));
    }

    #[test]
    fn first_beat_is_within_the_interval() {
        assert!(first_beat(Duration::from_millis(100)) < Duration::from_millis(100));
    }
}
