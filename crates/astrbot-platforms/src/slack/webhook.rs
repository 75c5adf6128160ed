//! Webhook mode: a small HTTP server for the Events API. Every request
//! must carry a valid signature and a fresh timestamp (else 401);
//! `url_verification` is answered with its challenge and
//! `event_callback`s are acknowledged at once and handled in the
//! background, as Slack wants an answer within three seconds.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use astrbot_http::ConnectionLimits;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::signature;
use super::SlackAdapter;
use crate::adapter::{wait_for_shutdown, PlatformError};
use crate::refusal_log::RefusalLog;

#[derive(Clone)]
struct Hook {
    adapter: Arc<SlackAdapter>,
    intake: mpsc::Sender<Value>,
    refusals: Arc<RefusalLog>,
}

pub(super) async fn serve(
    adapter: &Arc<SlackAdapter>,
    intake: &mpsc::Sender<Value>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    let config = &adapter.config;
    let addr = format!("{}:{}", config.webhook_host, config.webhook_port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|error| PlatformError::Bind {
            addr: addr.clone(),
            reason: error.to_string(),
        })?;
    let app = Router::new()
        .route(&config.webhook_path, post(event))
        .with_state(Hook {
            adapter: adapter.clone(),
            intake: intake.clone(),
            refusals: Arc::default(),
        });
    tracing::info!(platform.id = %adapter.id, %addr, path = %config.webhook_path, "Slack Events API webhook listening");
    adapter.status.set_running(true);
    adapter.status.clear_error();
    // The webhook faces the internet: silent clients are let go.
    let stopped = async move { wait_for_shutdown(&mut shutdown).await };
    astrbot_http::serve(listener, app, ConnectionLimits::default(), stopped).await;
    Ok(())
}

async fn event(State(hook): State<Hook>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = hook
        .adapter
        .config
        .signing_secret
        .as_deref()
        .unwrap_or_default();
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    if let Err(refusal) = signature::verify(
        secret,
        header_text("x-slack-request-timestamp"),
        header_text("x-slack-signature"),
        &body,
        now,
    ) {
        if let Some(refused) = hook.refusals.refused(Instant::now()) {
            tracing::warn!(
                platform.id = %hook.adapter.id,
                refused,
                latest_reason = refusal.reason(),
                "refused Slack webhook requests (logged at most once a minute)"
            );
        }
        return (StatusCode::UNAUTHORIZED, "invalid signature\n").into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected a JSON body\n").into_response();
    };
    match payload.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = payload
                .get("challenge")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            ([(header::CONTENT_TYPE, "text/plain")], challenge).into_response()
        }
        _ => {
            hook.adapter.accept_callback(&payload, &hook.intake);
            StatusCode::OK.into_response()
        }
    }
}
