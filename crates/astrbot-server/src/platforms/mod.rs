//! Chat platforms: runs the bots of the default config's `platform` list
//! (OneBot v11 …) and answers what they receive.
//!
//! Each message goes through the group-chat stages in AstrBot's order:
//! wake (prefix, mention, private chat), whitelist, built-in commands,
//! per-session rate limit, then the chat pipeline, whose answer goes back
//! to the chat the message came from.

pub(crate) mod commands;
mod limits;
pub(crate) mod wake;

use std::sync::Arc;

use astrbot_core::{MessageType, Umo};
use astrbot_platforms::{
    InOrder, InboundMessage, OutboundChain, PlatformManager, PlatformRegistry,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::chat::{ChatEvent, ChatService, ChatTurn};
use crate::config::{ConfigRegistry, LoadedConfig};
use limits::{RateLimiter, Whitelist};

/// Inbound messages waiting for the dispatcher.
const INBOUND_QUEUE: usize = 1024;

/// Builds the manager for the default config's platforms, starts them and
/// the task that answers their messages.
pub fn start(configs: Arc<ConfigRegistry>, chat: Arc<ChatService>) -> Arc<PlatformManager> {
    let platforms = configs.default_config().platform_entries();
    let manager = Arc::new(PlatformManager::from_config(
        &PlatformRegistry::builtin(),
        &platforms,
    ));
    let (sender, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    manager.start(sender);

    let dispatcher = Arc::new(Dispatcher {
        manager: manager.clone(),
        chat,
        configs,
        limiter: RateLimiter::default(),
    });
    tokio::spawn(async move {
        // Each message is answered in a task of its own, but one sender's
        // messages in a chat one after another, in the order they came:
        // otherwise they race through the wake check and the rate limit,
        // and the model sees the conversation scrambled. Different people
        // in a group still go side by side.
        let in_order = Arc::new(InOrder::default());
        while let Some(message) = inbound.recv().await {
            let line = format!("{}\u{1}{}", message.umo(), message.sender.id);
            let mut place = in_order.take(&line);
            let dispatcher = dispatcher.clone();
            tokio::spawn(async move {
                place.wait().await;
                dispatcher.handle(message).await;
            });
        }
    });
    manager
}

/// Where a platform's messages are answered from.
struct Dispatcher {
    manager: Arc<PlatformManager>,
    chat: Arc<ChatService>,
    configs: Arc<ConfigRegistry>,
    limiter: RateLimiter,
}

impl Dispatcher {
    async fn handle(&self, message: InboundMessage) {
        // Counted as a turn until the reply is sent, so that shutdown
        // stops the bots only after it went out.
        let _replying = self.chat.hold_turn();
        let config = self.configs.resolve_for_umo(&message.umo().to_string());
        let umo = conversation_umo(&config, &message);
        let is_admin = config.admins_id.iter().any(|id| id == &message.sender.id);

        let Some(woken) = wake::check(&config, &message) else {
            return;
        };
        if !Whitelist::new(&config).allows(&message, &umo, is_admin) {
            tracing::debug!(umo = %umo, sender.id = %message.sender.id, "not on the whitelist; ignored");
            return;
        }
        // Commands count against the limit too, as in AstrBot.
        if !self.limiter.admit(&umo, &config).await {
            tracing::info!(umo = %umo, "rate limit reached; message discarded");
            return;
        }
        if let Some(command) = commands::parse(&woken.text) {
            let context = commands::Context {
                chat: &self.chat,
                config: &config,
                umo: &umo,
                sender_id: &message.sender.id,
                is_admin,
                is_group: message.message_type == MessageType::Group,
            };
            let reply = commands::run(command, context).await;
            self.reply(&config, &message, reply).await;
            return;
        }

        let streaming = config.chat.streaming_response;
        let turn = ChatTurn {
            platform_id: message.platform_id.clone(),
            username: message.sender.id.clone(),
            session_id: umo.session_id.clone(),
            umo: umo.to_string(),
            parts: woken.parts,
            selected_provider: None,
            selected_model: self.chat.session_model(&umo.to_string()).await,
            streaming: Some(streaming),
            message_id: message.message_id.as_str().into(),
            new_session: false,
        };
        let events = self.chat.start(turn);
        if streaming {
            self.stream_reply(&config, &message, events).await;
        } else {
            let answer = collect_text(events).await;
            if !answer.trim().is_empty() {
                self.reply(&config, &message, answer).await;
            }
        }
    }

    /// With `provider_settings.streaming_response`, the answer's deltas go
    /// to the adapter as they come; platforms that can edit a message show
    /// it growing.
    async fn stream_reply(
        &self,
        config: &LoadedConfig,
        message: &InboundMessage,
        mut events: mpsc::Receiver<ChatEvent>,
    ) {
        let Some(adapter) = self.manager.get(&message.platform_id) else {
            tracing::warn!(platform.id = %message.platform_id, "the bot stopped before its answer could be sent");
            return;
        };
        let (deltas, receiver) = mpsc::channel(256);
        let target = message.reply_target();
        let sending = tokio::spawn(async move { adapter.send_streaming(&target, receiver).await });
        let mut prefix = Some(reply_prefix(config).to_owned());
        while let Some(event) = events.recv().await {
            if let ChatEvent::Plain {
                text,
                chain_type: None,
                ..
            } = event
            {
                let text = match prefix.take() {
                    Some(prefix) => format!("{prefix}{text}"),
                    None => text.into(),
                };
                // The sender only fails if the adapter gave up; its error
                // is reported below.
                let _ = deltas.send(text).await;
            }
        }
        drop(deltas);
        if let Ok(Err(error)) = sending.await {
            tracing::warn!(platform.id = %message.platform_id, %error, "could not send the answer");
        }
    }

    /// Sends text back to the chat a message came from, after the
    /// config's `reply_prefix`.
    async fn reply(&self, config: &LoadedConfig, message: &InboundMessage, text: String) {
        let prefix = reply_prefix(config);
        let Some(adapter) = self.manager.get(&message.platform_id) else {
            tracing::warn!(platform.id = %message.platform_id, "the bot stopped before its answer could be sent");
            return;
        };
        let chain = OutboundChain::text(format!("{prefix}{text}"));
        if let Err(error) = adapter.send(&message.reply_target(), chain).await {
            tracing::warn!(platform.id = %message.platform_id, %error, "could not send the answer");
        }
    }
}

/// The text of a whole (non-streamed) answer.
async fn collect_text(mut events: mpsc::Receiver<ChatEvent>) -> String {
    let mut answer = String::new();
    while let Some(event) = events.recv().await {
        if let ChatEvent::Plain {
            text,
            chain_type: None,
            ..
        } = event
        {
            answer.push_str(&text);
        }
    }
    answer
}

fn reply_prefix(config: &LoadedConfig) -> &str {
    config
        .document
        .pointer("/platform_settings/reply_prefix")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The UMO a message's conversation lives under. With
/// `platform_settings.unique_session`, each member of a group has their own
/// (`<user>_<group>`, AstrBot's form); otherwise the chat's id.
fn conversation_umo(config: &LoadedConfig, message: &InboundMessage) -> Umo {
    let unique = config
        .document
        .pointer("/platform_settings/unique_session")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let session_id = if unique && message.message_type == MessageType::Group {
        format!("{}_{}", message.sender.id, message.session_id)
    } else {
        message.session_id.clone()
    };
    Umo::new(&message.platform_id, message.message_type, &session_id)
}

/// The chat a group UMO's session id points at: a per-member session
/// (`<user>_<group>`) is sent to its group.
pub fn group_of_session(session_id: &str) -> &str {
    session_id
        .rsplit_once('_')
        .map_or(session_id, |(_, group)| group)
}
