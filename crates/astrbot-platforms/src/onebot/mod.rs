//! The `aiocqhttp` platform: OneBot v11 (QQ through NapCat, Lagrange …)
//! over a reverse WebSocket that the OneBot implementation connects to, or
//! a forward WebSocket we open to it (`ws_forward_url`).

mod client;
mod config;
pub mod cq;
mod links;
mod segments;
mod server;

use std::sync::Arc;

use astrbot_core::MessageType;
use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

pub use config::{AiocqhttpConfig, DEFAULT_ACTION_TIMEOUT, DEFAULT_PORT};
pub use segments::parse_message_event;

use crate::adapter::{PlatformAdapter, PlatformError, PlatformStatus, StatusCell};
use crate::config::PlatformConfig;
use crate::message::{InboundMessage, Media, OutboundChain, OutboundPart, SessionTarget};
use crate::seen::Seen;
use links::Links;
use segments::{id_string, id_value, outbound_segment};

/// AstrBot's `type` name for OneBot v11.
pub const KIND: &str = "aiocqhttp";

/// A OneBot v11 reverse-WebSocket adapter.
pub struct AiocqhttpAdapter {
    id: String,
    config: AiocqhttpConfig,
    links: Links,
    status: StatusCell,
    /// Messages already handed on, by account, chat and message id.
    seen: Seen,
    /// The ids of the messages the bot sent lately.
    sent: Seen,
}

impl AiocqhttpAdapter {
    pub fn new(id: &str, config: AiocqhttpConfig) -> Self {
        AiocqhttpAdapter {
            id: id.to_owned(),
            config,
            links: Links::default(),
            seen: Seen::default(),
            sent: Seen::default(),
            status: StatusCell::default(),
        }
    }

    pub fn from_config(config: &PlatformConfig) -> Result<Self, PlatformError> {
        Ok(AiocqhttpAdapter::new(
            &config.id,
            AiocqhttpConfig::from_platform(config)?,
        ))
    }

    pub fn config(&self) -> &AiocqhttpConfig {
        &self.config
    }

    /// How many OneBot accounts are connected now.
    pub fn connections(&self) -> usize {
        self.links.connected()
    }

    /// Any OneBot action (`get_msg`, `delete_msg` …) over the newest
    /// connection; returns the answer's `data`.
    pub async fn call_action(&self, action: &str, params: Value) -> Result<Value, PlatformError> {
        self.links
            .call(None, action, params, self.config.action_timeout)
            .await
    }
}

#[async_trait]
impl PlatformAdapter for AiocqhttpAdapter {
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
        match self.config.forward_url.clone() {
            Some(url) => client::connect(self, url, inbound, shutdown).await,
            None => server::serve(self, inbound, shutdown).await,
        }
    }

    /// An empty chain sends nothing (the pipeline uses empty sends as
    /// end-of-turn markers on webchat).
    async fn send(
        &self,
        target: &SessionTarget,
        chain: OutboundChain,
    ) -> Result<(), PlatformError> {
        if chain.is_empty() {
            return Ok(());
        }
        // QQ's ids are numbers; sent as a string, an id like `abc` is
        // taken by some implementations as 0 and the send "succeeds".
        if target.session_id.parse::<i64>().is_err() {
            return Err(PlatformError::Unsupported(format!(
                "not a QQ user or group id: {:?}",
                target.session_id
            )));
        }
        let chain = with_local_files_inlined(chain).await?;
        let message: Vec<Value> = chain.parts.iter().map(outbound_segment).collect();
        let (action, params) = match target.message_type {
            MessageType::Group => (
                "send_group_msg",
                json!({"group_id": id_value(&target.session_id), "message": message}),
            ),
            MessageType::Friend => (
                "send_private_msg",
                json!({"user_id": id_value(&target.session_id), "message": message}),
            ),
            MessageType::Other => {
                return Err(PlatformError::Unsupported(
                    "OneBot cannot send to an OtherMessage session".into(),
                ))
            }
        };
        let account = target.account.as_deref();
        let timeout = self.config.action_timeout;
        let sent = self.links.call(account, action, params, timeout).await?;
        // A reply quoting this message is for the bot.
        if let Some(id) = sent.get("message_id") {
            self.sent.first_time(id_string(Some(id)));
        }
        Ok(())
    }

    fn status(&self) -> PlatformStatus {
        self.status.get()
    }
}

/// The chain with every file on this machine (a stored attachment) read
/// into `base64://` data, as AstrBot sends it: the OneBot side, NapCat in
/// another container or on another host, cannot read our paths, and a path
/// would tell it where our data lives.
async fn with_local_files_inlined(
    mut chain: OutboundChain,
) -> Result<OutboundChain, PlatformError> {
    for part in &mut chain.parts {
        let (OutboundPart::Image(source) | OutboundPart::File { source, .. }) = part else {
            continue;
        };
        let Media::Path(path) = source else {
            continue;
        };
        let data = tokio::fs::read(&*path).await.map_err(|error| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            PlatformError::Other(format!("could not read the attachment {name}: {error}"))
        })?;
        *source = Media::Bytes {
            data,
            mime: "application/octet-stream".to_owned(),
        };
    }
    Ok(chain)
}
