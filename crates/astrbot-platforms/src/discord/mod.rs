//! The `discord` platform: a bot account on Discord's gateway (WebSocket,
//! JSON encoding, API v10) for inbound messages and the REST API for
//! sends. Guild channels are group chats and DMs private chats; both use
//! the channel id as session id.

mod config;
mod gateway;
mod inbound;
mod outbound;
mod rest;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

pub use config::{
    DiscordConfig, DEFAULT_API_BASE, DEFAULT_HTTP_TIMEOUT, DEFAULT_RECONNECT_DELAY, INTENTS,
};
pub use inbound::{parse_message_create, strip_mention};
pub use outbound::{split_content, MAX_CONTENT_CHARS};

use crate::adapter::{PlatformAdapter, PlatformError, PlatformStatus, StatusCell};
use crate::config::PlatformConfig;
use crate::message::{InboundMessage, OutboundChain, SessionTarget};
use rest::Rest;
use session::Session;

/// AstrBot's `type` name for Discord.
pub const KIND: &str = "discord";

/// A Discord bot: gateway for events, REST for sends.
pub struct DiscordAdapter {
    id: String,
    config: DiscordConfig,
    rest: Rest,
    session: Mutex<Session>,
    status: StatusCell,
    uploads: AtomicU64,
}

impl DiscordAdapter {
    pub fn new(id: &str, config: DiscordConfig) -> Result<Self, PlatformError> {
        if config.token.is_empty() {
            return Err(PlatformError::Config(format!(
                "{id}: discord_token is empty"
            )));
        }
        Ok(DiscordAdapter {
            id: id.to_owned(),
            rest: Rest::new(&config)?,
            config,
            session: Mutex::default(),
            status: StatusCell::default(),
            uploads: AtomicU64::new(0),
        })
    }

    pub fn from_config(config: &PlatformConfig) -> Result<Self, PlatformError> {
        DiscordAdapter::new(&config.id, DiscordConfig::from_platform(config)?)
    }

    pub fn config(&self) -> &DiscordConfig {
        &self.config
    }

    /// The bot's user id once READY has arrived.
    pub fn user_id(&self) -> Option<String> {
        Some(self.session().user_id.clone()).filter(|id| !id.is_empty())
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // Plain fields only; a panic cannot leave them half-written.
        self.session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A multipart boundary that differs per upload.
    fn boundary(&self) -> String {
        let count = self.uploads.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        format!("astrbot-rs-{nanos:x}-{count}")
    }
}

#[async_trait]
impl PlatformAdapter for DiscordAdapter {
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
        gateway::run(self, inbound, shutdown).await
    }

    /// Posts to the session's channel (group or DM alike); long text
    /// becomes several messages, the reply reference goes on the first.
    /// An empty chain sends nothing.
    async fn send(
        &self,
        target: &SessionTarget,
        chain: OutboundChain,
    ) -> Result<(), PlatformError> {
        for draft in outbound::drafts(&chain).await? {
            let body = draft.body(&self.boundary());
            self.rest.create_message(&target.session_id, &body).await?;
        }
        Ok(())
    }

    fn status(&self) -> PlatformStatus {
        self.status.get()
    }
}
