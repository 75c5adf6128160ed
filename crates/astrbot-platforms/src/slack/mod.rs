//! The `slack` platform: the Events API over Socket Mode (default) or a
//! signed webhook, and the Web API (`chat.postMessage`, `chat.update`,
//! the external file upload flow) for sends.

mod api;
mod config;
mod events;
mod send;
pub mod signature;
mod socket;
mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

pub use config::{
    ConnectionMode, SlackConfig, DEFAULT_API_BASE, DEFAULT_WEBHOOK_PATH, DEFAULT_WEBHOOK_PORT,
};
pub use events::{escape, parse_event, parse_text};

use crate::adapter::{PlatformAdapter, PlatformError, PlatformStatus, StatusCell};

/// Slack allows about one `chat.update` per second per message.
pub const STREAM_UPDATE_INTERVAL: Duration = Duration::from_secs(1);
use crate::config::PlatformConfig;
use crate::in_order::InOrder;
use crate::message::{InboundMessage, Media, MessagePart, OutboundChain, SessionTarget};
use crate::seen::Seen;
use api::{Body, WebApi};

/// AstrBot's `type` name for Slack.
pub const KIND: &str = "slack";

/// Events waiting for the intake task (a burst beyond this is dropped
/// with a warning rather than delaying acks to Slack).
const INTAKE_QUEUE: usize = 256;

/// A slow `users.info` must not hold up the messages behind it.
const NAME_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest shared image passed on to the model.
const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;

/// A Slack app (bot user) adapter.
pub struct SlackAdapter {
    id: String,
    config: SlackConfig,
    api: WebApi,
    /// Our bot user id, from `auth.test` at start.
    self_user: Mutex<String>,
    /// Display names by user id, from `users.info`.
    names: Mutex<HashMap<String, String>>,
    seen: Seen,
    status: StatusCell,
    /// Each chat's messages go on in the order they came.
    in_order: Arc<InOrder>,
}

fn guard<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values only; a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl SlackAdapter {
    pub fn new(id: &str, config: SlackConfig) -> Result<Self, PlatformError> {
        Ok(SlackAdapter {
            id: id.to_owned(),
            api: WebApi::new(&config.api_base, config.request_timeout)?,
            config,
            self_user: Mutex::new(String::new()),
            names: Mutex::new(HashMap::new()),
            seen: Seen::default(),
            status: StatusCell::default(),
            in_order: Arc::default(),
        })
    }

    pub fn from_config(config: &PlatformConfig) -> Result<Self, PlatformError> {
        SlackAdapter::new(&config.id, SlackConfig::from_platform(config)?)
    }

    pub fn config(&self) -> &SlackConfig {
        &self.config
    }

    /// Our bot user id (empty until `run` has called `auth.test`).
    pub fn self_user_id(&self) -> String {
        guard(&self.self_user).clone()
    }

    /// Any Web API method with the bot token and a JSON body; the answer
    /// when Slack says `ok`.
    pub async fn call_api(&self, method: &str, body: Value) -> Result<Value, PlatformError> {
        self.api
            .call(method, &self.config.bot_token, Body::Json(body))
            .await
    }

    /// `auth.test`: learns (and returns) our bot user id. A refused token
    /// is a config error naming it.
    pub async fn authenticate(&self) -> Result<String, PlatformError> {
        let answer = self
            .api
            .call("auth.test", &self.config.bot_token, Body::Empty)
            .await
            .map_err(|error| match error {
                PlatformError::Action { ref message, .. } if api::is_auth_error(&error) => {
                    PlatformError::Config(format!("Slack rejected the bot token ({message})"))
                }
                other => other,
            })?;
        let user_id = answer
            .get("user_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| PlatformError::Other("auth.test answered without a user_id".into()))?
            .to_owned();
        *guard(&self.self_user) = user_id.clone();
        Ok(user_id)
    }

    /// A user's display name (cached; the id when unknown).
    async fn user_name(&self, user_id: &str) -> String {
        if let Some(name) = guard(&self.names).get(user_id) {
            return name.clone();
        }
        let form = Body::Form(vec![("user", user_id.to_owned())]);
        let lookup = self.api.call("users.info", &self.config.bot_token, form);
        let name = match tokio::time::timeout(NAME_LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(answer)) => {
                let user = &answer["user"];
                [
                    &user["profile"]["display_name"],
                    &user["real_name"],
                    &user["name"],
                ]
                .into_iter()
                .filter_map(Value::as_str)
                .find(|name| !name.is_empty())
                .unwrap_or(user_id)
                .to_owned()
            }
            Ok(Err(error)) => {
                // Usually a missing `users:read` scope; the id will do.
                tracing::debug!(platform.id = %self.id, %error, "users.info failed; using the user id");
                user_id.to_owned()
            }
            Err(_) => user_id.to_owned(),
        };
        guard(&self.names).insert(user_id.to_owned(), name.clone());
        name
    }

    /// Images shared in Slack are private: their URL shows a provider a
    /// sign-in page, not the picture. Each is downloaded with the bot
    /// token and passed on as its bytes; one that cannot be is left out,
    /// named by why.
    async fn fetch_images(&self, message: &mut InboundMessage) {
        for part in &mut message.chain {
            let MessagePart::Image(Media::Url(url)) = part else {
                continue;
            };
            let token = &self.config.bot_token;
            match self.api.download_private(url, token, MAX_IMAGE_BYTES).await {
                Ok((data, kind)) => {
                    let mime = kind
                        .filter(|kind| kind.starts_with("image/"))
                        .unwrap_or_else(|| "image/png".to_owned());
                    *part = MessagePart::Image(Media::Bytes { data, mime });
                }
                Err(error) => {
                    tracing::warn!(platform.id = %self.id, %error, "could not fetch a shared image");
                    *part = MessagePart::Other {
                        kind: "slack_file".into(),
                        data: serde_json::json!({"error": error.to_string()}),
                    };
                }
            }
        }
    }

    /// Starts the task that turns `event` objects into inbound messages in
    /// arrival order; returns where to push them.
    fn start_intake(
        self: &Arc<Self>,
        inbound: mpsc::Sender<InboundMessage>,
    ) -> (mpsc::Sender<Value>, tokio::task::JoinHandle<()>) {
        let (events, mut queue) = mpsc::channel::<Value>(INTAKE_QUEUE);
        let adapter = self.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = queue.recv().await {
                let Some(mut message) = parse_event(&adapter.id, &adapter.self_user_id(), &event)
                else {
                    continue;
                };
                let key = format!("{}/{}", message.session_id, message.message_id);
                if !adapter.seen.first_time(key) {
                    continue;
                }
                message.sender.name = adapter.user_name(&message.sender.id).await;
                // A slow image download must not hold up the other chats;
                // what its chat sends after it waits its turn.
                let has_images = message
                    .chain
                    .iter()
                    .any(|part| matches!(part, MessagePart::Image(Media::Url(_))));
                let mut place = adapter.in_order.take(&message.session_id);
                if !has_images && place.is_next() {
                    if inbound.send(message).await.is_err() {
                        return;
                    }
                    continue;
                }
                let (adapter, inbound) = (adapter.clone(), inbound.clone());
                tokio::spawn(async move {
                    adapter.fetch_images(&mut message).await;
                    place.wait().await;
                    let _ = inbound.send(message).await;
                });
            }
        });
        (events, task)
    }

    /// Hands an Events API `event_callback` payload to the intake.
    fn accept_callback(&self, payload: &Value, intake: &mpsc::Sender<Value>) {
        if payload.get("type").and_then(Value::as_str) != Some("event_callback") {
            return;
        }
        let Some(event) = payload.get("event") else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = intake.try_send(event.clone()) {
            tracing::warn!(platform.id = %self.id, "Slack event queue full; dropping an event");
        }
    }
}

#[async_trait]
impl PlatformAdapter for SlackAdapter {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        KIND
    }

    async fn run(
        self: Arc<Self>,
        inbound: mpsc::Sender<InboundMessage>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), PlatformError> {
        if let Err(error) = self.authenticate().await {
            self.status.set_error(error.to_string());
            return Err(error);
        }
        let (intake, intake_task) = self.start_intake(inbound);
        let outcome = match self.config.mode {
            ConnectionMode::Socket => socket::run(&self, &intake, shutdown).await,
            ConnectionMode::Webhook => webhook::serve(&self, &intake, shutdown).await,
        };
        intake_task.abort();
        self.status.set_running(false);
        if let Err(error) = &outcome {
            self.status.set_error(error.to_string());
        }
        outcome
    }

    /// Text (with mentions) goes out as one `chat.postMessage`, in the
    /// thread of a reply part if there is one; local images and files are
    /// uploaded after it. An empty chain sends nothing.
    async fn send(
        &self,
        target: &SessionTarget,
        chain: OutboundChain,
    ) -> Result<(), PlatformError> {
        send::send_chain(self, &target.session_id, chain).await
    }

    /// The answer appears as one message that grows: posted on the first
    /// text, then updated with `chat.update` at most once per
    /// [`STREAM_UPDATE_INTERVAL`] and a last time with the whole text.
    async fn send_streaming(
        &self,
        target: &SessionTarget,
        mut deltas: mpsc::Receiver<String>,
    ) -> Result<(), PlatformError> {
        let channel = target.session_id.as_str();
        let mut text = String::new();
        let mut posted: Option<String> = None;
        let mut shown = 0;
        let mut last_update = std::time::Instant::now();
        while let Some(delta) = deltas.recv().await {
            text.push_str(&delta);
            if text.trim().is_empty() {
                continue;
            }
            match &posted {
                None => {
                    posted = Some(self.post_message(channel, &escape(&text), None).await?);
                    shown = text.len();
                    last_update = std::time::Instant::now();
                }
                Some(ts) if last_update.elapsed() >= STREAM_UPDATE_INTERVAL => {
                    self.update_text(channel, ts, &text).await?;
                    shown = text.len();
                    last_update = std::time::Instant::now();
                }
                Some(_) => {}
            }
        }
        match posted {
            Some(ts) if shown != text.len() => self.update_text(channel, &ts, &text).await,
            _ => Ok(()),
        }
    }

    fn status(&self) -> PlatformStatus {
        self.status.get()
    }
}
