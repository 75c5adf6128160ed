//! How updates reach the adapter: `getUpdates` long polling (offset =
//! last `update_id` + 1, errors logged and retried with backoff) or our
//! own webhook HTTP server that checks Telegram's secret-token header.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use astrbot_http::ConnectionLimits;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::api::POLL_SLACK;
use super::inbound::BotIdentity;
use super::TelegramAdapter;
use crate::adapter::{wait_for_shutdown, PlatformError};
use crate::message::InboundMessage;
use crate::refusal_log::RefusalLog;

/// Delays between failed polls: doubled from the first to the last.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The header Telegram sends with every webhook update.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// The largest update accepted on the webhook (axum's default body limit,
/// which applied before; an update is a few kilobytes).
const MAX_UPDATE_BYTES: usize = 2 * 1024 * 1024;

pub(super) async fn poll(
    adapter: Arc<TelegramAdapter>,
    bot: BotIdentity,
    inbound: mpsc::Sender<InboundMessage>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    // A webhook left registered makes getUpdates fail with 409 Conflict.
    if let Err(error) = adapter
        .api
        .call("deleteWebhook", &json!({"drop_pending_updates": false}))
        .await
    {
        tracing::warn!(platform.id = %adapter.id, %error, "deleteWebhook failed; polling anyway");
    }
    adapter.status.set_running(true);
    tracing::info!(platform.id = %adapter.id, bot = %bot.username, "Telegram long polling started");
    let timeout = adapter.config.poll_timeout;
    let mut delay = BACKOFF_START;
    let mut failing = false;
    loop {
        let params = json!({
            "offset": adapter.offset.load(Ordering::SeqCst),
            "timeout": timeout.as_secs(),
            "allowed_updates": ["message"],
        });
        let polled = tokio::select! {
            polled = adapter.api.call_with_timeout("getUpdates", &params, timeout + POLL_SLACK) => polled,
            _ = wait_for_shutdown(&mut shutdown) => break,
        };
        match polled {
            Ok(updates) => {
                if failing {
                    failing = false;
                    adapter.status.clear_error();
                    tracing::info!(platform.id = %adapter.id, "Telegram polling recovered");
                }
                delay = BACKOFF_START;
                for update in updates.as_array().map(Vec::as_slice).unwrap_or_default() {
                    if let Some(id) = update.get("update_id").and_then(Value::as_i64) {
                        // Confirms this update: the next poll starts after it.
                        adapter.offset.fetch_max(id + 1, Ordering::SeqCst);
                    }
                    adapter.deliver(&bot, update, &inbound).await;
                }
            }
            Err(PlatformError::Action { retcode: 401, .. }) => {
                adapter.status.set_running(false);
                let error = token_rejected("getUpdates");
                adapter.status.set_error(error.to_string());
                return Err(error);
            }
            Err(error) => {
                failing = true;
                tracing::warn!(platform.id = %adapter.id, %error, retry_in = ?delay, "Telegram getUpdates failed");
                adapter.status.set_error(format!("polling: {error}"));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wait_for_shutdown(&mut shutdown) => break,
                }
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
    adapter.status.set_running(false);
    Ok(())
}

pub(super) fn token_rejected(method: &str) -> PlatformError {
    PlatformError::Other(format!(
        "Telegram rejected the bot token ({method}: 401 Unauthorized); check telegram_token"
    ))
}

struct Webhook {
    adapter: Arc<TelegramAdapter>,
    bot: BotIdentity,
    secret: String,
    inbound: mpsc::Sender<InboundMessage>,
    refusals: RefusalLog,
}

pub(super) async fn serve_webhook(
    adapter: Arc<TelegramAdapter>,
    bot: BotIdentity,
    inbound: mpsc::Sender<InboundMessage>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    let config = &adapter.config;
    let secret = config.webhook_secret.clone().ok_or_else(|| {
        PlatformError::Config("telegram_webhook_secret is required in webhook mode".into())
    })?;
    let addr = format!("{}:{}", config.webhook_host, config.webhook_port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|error| PlatformError::Bind {
            addr: addr.clone(),
            reason: error.to_string(),
        })?;
    if let Some(url) = &config.webhook_url {
        let params = json!({"url": url, "secret_token": secret, "allowed_updates": ["message"]});
        adapter.api.call("setWebhook", &params).await?;
        tracing::info!(platform.id = %adapter.id, %url, "Telegram webhook registered");
    }
    let state = Arc::new(Webhook {
        adapter: adapter.clone(),
        bot,
        secret,
        inbound,
        refusals: RefusalLog::default(),
    });
    let app = Router::new().fallback(receive).with_state(state);
    adapter.status.set_running(true);
    tracing::info!(platform.id = %adapter.id, %addr, "Telegram webhook server listening");
    // The webhook faces the internet: silent clients are let go.
    let stopped = async move { wait_for_shutdown(&mut shutdown).await };
    astrbot_http::serve(listener, app, ConnectionLimits::default(), stopped).await;
    adapter.status.set_running(false);
    Ok(())
}

/// Any path: the secret, not the URL, is what proves Telegram sent it. It
/// is checked before the body is read, so a stranger's request costs no
/// more than its head.
async fn receive(State(webhook): State<Arc<Webhook>>, request: Request) -> StatusCode {
    if request.method() != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    let presented = request
        .headers()
        .get(SECRET_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    // Constant time, so the comparison does not leak the secret's prefix.
    if !bool::from(presented.ct_eq(webhook.secret.as_bytes())) {
        if let Some(refused) = webhook.refusals.refused(Instant::now()) {
            tracing::warn!(
                platform.id = %webhook.adapter.id,
                refused,
                "refused webhook requests without the right secret token (logged at most once a minute)"
            );
        }
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_UPDATE_BYTES).await else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(update) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    webhook
        .adapter
        .deliver(&webhook.bot, &update, &webhook.inbound)
        .await;
    StatusCode::OK
}
