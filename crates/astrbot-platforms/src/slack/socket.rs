//! Socket Mode: `apps.connections.open` with the app token gives a
//! one-use WebSocket URL; Slack sends `hello`, then envelopes that we ack
//! with their `envelope_id`, and `disconnect` when it wants us on a fresh
//! connection. Drops reconnect with a new URL (at once after a healthy
//! session, with backoff after failures).

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::api::{is_auth_error, Body};
use super::SlackAdapter;
use crate::adapter::{wait_for_shutdown, PlatformError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// We ping this often and give up on a link silent for [`IDLE_LIMIT`].
const PING_EVERY: Duration = Duration::from_secs(30);
const IDLE_LIMIT: Duration = Duration::from_secs(120);
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How a connection ended.
enum Ended {
    Shutdown,
    /// Reconnect; `healthy` when Slack had said hello on it.
    Reconnect {
        healthy: bool,
    },
}

pub(super) async fn run(
    adapter: &Arc<SlackAdapter>,
    intake: &mpsc::Sender<Value>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    let app_token = adapter
        .config
        .app_token
        .clone()
        .ok_or_else(|| PlatformError::Config("slack: Socket Mode needs app_token".into()))?;
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let ended = match open(adapter, &app_token).await {
            Ok(url) => connection(adapter, &url, intake, &mut shutdown).await,
            Err(error) if is_auth_error(&error) => {
                let message = match &error {
                    PlatformError::Action { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                return Err(PlatformError::Config(format!(
                    "Slack rejected the app token ({message})"
                )));
            }
            Err(error) => {
                tracing::warn!(platform.id = %adapter.id, %error, "cannot open a Socket Mode connection");
                adapter.status.set_error(error.to_string());
                Ended::Reconnect { healthy: false }
            }
        };
        adapter.status.set_running(false);
        let delay = match ended {
            Ended::Shutdown => return Ok(()),
            Ended::Reconnect { healthy: true } => {
                failures = 0;
                Duration::ZERO
            }
            Ended::Reconnect { healthy: false } => {
                failures = failures.saturating_add(1);
                RETRY_FIRST
                    .saturating_mul(1 << failures.min(8).saturating_sub(1))
                    .min(RETRY_MAX)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wait_for_shutdown(&mut shutdown) => return Ok(()),
        }
    }
}

/// A fresh WebSocket URL.
async fn open(adapter: &SlackAdapter, app_token: &str) -> Result<String, PlatformError> {
    let answer = adapter
        .api
        .call("apps.connections.open", app_token, Body::Empty)
        .await?;
    answer
        .get("url")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| PlatformError::Other("apps.connections.open gave no url".into()))
}

async fn connection(
    adapter: &Arc<SlackAdapter>,
    url: &str,
    intake: &mpsc::Sender<Value>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url));
    let socket = tokio::select! {
        connected = connecting => match connected {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(error)) => {
                let error = format!("Socket Mode connection failed: {error}");
                tracing::warn!(platform.id = %adapter.id, "{error}");
                adapter.status.set_error(error);
                return Ended::Reconnect { healthy: false };
            }
            Err(_) => {
                adapter.status.set_error("Socket Mode connection timed out");
                return Ended::Reconnect { healthy: false };
            }
        },
        _ = wait_for_shutdown(shutdown) => return Ended::Shutdown,
    };
    adapter.status.set_running(true);
    let (mut sink, mut frames) = socket.split();
    let mut healthy = false;
    let mut last_frame = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            frame = frames.next() => {
                last_frame = Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => {
                        tracing::info!(platform.id = %adapter.id, "Socket Mode connection closed; reconnecting");
                        return Ended::Reconnect { healthy };
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        tracing::warn!(platform.id = %adapter.id, %error, "Socket Mode connection failed; reconnecting");
                        adapter.status.set_error(format!("Socket Mode connection lost: {error}"));
                        return Ended::Reconnect { healthy };
                    }
                };
                let Ok(envelope) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                match envelope.get("type").and_then(Value::as_str) {
                    Some("hello") => {
                        healthy = true;
                        adapter.status.clear_error();
                        tracing::info!(platform.id = %adapter.id, "Slack Socket Mode connected");
                    }
                    Some("disconnect") => {
                        let reason = envelope.get("reason").and_then(Value::as_str).unwrap_or("unknown");
                        tracing::info!(platform.id = %adapter.id, reason, "Slack asked to reconnect");
                        let _ = sink.send(Message::Close(None)).await;
                        return Ended::Reconnect { healthy: true };
                    }
                    kind => {
                        if let Some(envelope_id) = envelope.get("envelope_id").and_then(Value::as_str) {
                            let ack = json!({"envelope_id": envelope_id}).to_string();
                            if let Err(error) = sink.send(Message::Text(ack.into())).await {
                                tracing::warn!(platform.id = %adapter.id, %error, "cannot ack a Socket Mode envelope");
                                return Ended::Reconnect { healthy };
                            }
                        }
                        if kind == Some("events_api") {
                            if let Some(payload) = envelope.get("payload") {
                                adapter.accept_callback(payload, intake);
                            }
                        }
                    }
                }
            }
            _ = ping.tick() => {
                if last_frame.elapsed() > IDLE_LIMIT {
                    adapter.status.set_error("Socket Mode connection went silent");
                    return Ended::Reconnect { healthy: false };
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return Ended::Reconnect { healthy };
                }
            }
            _ = wait_for_shutdown(shutdown) => {
                let close = CloseFrame { code: CloseCode::Away, reason: "astrbot-rs is stopping this bot".into() };
                if sink.send(Message::Close(Some(close))).await.is_ok() {
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(_)) = frames.next().await {}
                    })
                    .await;
                }
                return Ended::Shutdown;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wss://` works without a process-wide rustls provider being
    /// installed (exactly one, ring, is compiled in): a peer that is not
    /// TLS gives an error, not a panic.
    #[tokio::test]
    async fn wss_urls_go_through_rustls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"not tls\r\n\r\n").await;
        });
        let url = format!("wss://127.0.0.1:{port}/link");
        let outcome = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap();
        let Err(error) = outcome else {
            panic!("a non-TLS peer was accepted");
        };
        assert!(
            matches!(
                error,
                tokio_tungstenite::tungstenite::Error::Tls(_)
                    | tokio_tungstenite::tungstenite::Error::Io(_)
            ),
            "{error}"
        );
        peer.await.unwrap();
    }
}
