//! Chat platforms: runs the bots of the default config's `platform` list
//! (OneBot v11 …) and answers what they receive through the chat pipeline.
//!
//! A group message is answered when it starts with a wake prefix or
//! mentions the bot; a private message always is. The answer goes back to
//! the chat it came from.

use std::sync::Arc;

use astrbot_core::MessageType;
use astrbot_platforms::{
    InboundMessage, Media, MessagePart, OutboundChain, PlatformManager, PlatformRegistry,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::chat::{ChatEvent, ChatService, ChatTurn, UserPart};
use crate::config::{ConfigRegistry, LoadedConfig};

/// Inbound messages waiting for the dispatcher.
const INBOUND_QUEUE: usize = 1024;

/// Builds the manager for the default config's platforms, starts them and
/// the task that answers their messages.
pub fn start(configs: Arc<ConfigRegistry>, chat: Arc<ChatService>) -> Arc<PlatformManager> {
    let platforms = configs
        .default_config()
        .document
        .get("platform")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let manager = Arc::new(PlatformManager::from_config(
        &PlatformRegistry::builtin(),
        &platforms,
    ));
    let (sender, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    manager.start(sender);

    let dispatcher = manager.clone();
    tokio::spawn(async move {
        while let Some(message) = inbound.recv().await {
            let (manager, chat, configs) = (dispatcher.clone(), chat.clone(), configs.clone());
            tokio::spawn(async move { answer(&manager, &chat, &configs, message).await });
        }
    });
    manager
}

async fn answer(
    manager: &PlatformManager,
    chat: &Arc<ChatService>,
    configs: &ConfigRegistry,
    message: InboundMessage,
) {
    let umo = message.umo().to_string();
    let config = configs.resolve_for_umo(&umo);
    let Some(parts) = woken_parts(&config, &message) else {
        return;
    };
    let turn = ChatTurn {
        platform_id: message.platform_id.clone(),
        username: message.sender.id.clone(),
        session_id: message.session_id.clone(),
        umo,
        parts,
        selected_provider: None,
        selected_model: None,
        streaming: Some(false),
        message_id: message.message_id.clone(),
    };

    let mut events = chat.start(turn);
    let mut reply = String::new();
    while let Some(event) = events.recv().await {
        if let ChatEvent::Plain {
            text,
            chain_type: None,
            ..
        } = event
        {
            reply.push_str(&text);
        }
    }
    if reply.trim().is_empty() {
        return;
    }

    let prefix = config
        .document
        .pointer("/platform_settings/reply_prefix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(adapter) = manager.get(&message.platform_id) else {
        tracing::warn!(platform.id = %message.platform_id, "the bot stopped before its answer could be sent");
        return;
    };
    let chain = OutboundChain::text(format!("{prefix}{reply}"));
    if let Err(error) = adapter.send(&message.reply_target(), chain).await {
        tracing::warn!(platform.id = %message.platform_id, %error, "could not send the answer");
    }
}

/// The message as chat parts if it wakes the bot: private messages always
/// do; group messages when they start with a wake prefix (which is cut
/// off) or mention the bot. `None` when the bot should stay quiet.
fn woken_parts(config: &LoadedConfig, message: &InboundMessage) -> Option<Vec<UserPart>> {
    let text = message.plain_text();
    let prefix = wake_prefixes(config)
        .into_iter()
        .filter(|prefix| !prefix.is_empty())
        .find(|prefix| text.trim_start().starts_with(prefix.as_str()));
    let woken =
        message.message_type == MessageType::Friend || prefix.is_some() || message.mentions_bot();
    if !woken {
        return None;
    }

    let mut prefix = prefix;
    let mut parts = Vec::new();
    for part in &message.chain {
        match part {
            MessagePart::Text(text) => {
                let mut text = text.as_str();
                if let Some(wake) = prefix.take() {
                    text = text.trim_start();
                    text = text.strip_prefix(wake.as_str()).unwrap_or(text);
                }
                if !text.trim().is_empty() {
                    parts.push(UserPart::Plain {
                        text: text.to_owned(),
                    });
                }
            }
            MessagePart::Image(media) => {
                if let Some(url) = image_url(media) {
                    parts.push(UserPart::RemoteImage { url });
                }
            }
            MessagePart::Reply {
                message_id,
                quoted_text: Some(quoted),
            } => parts.push(UserPart::Reply {
                message_id: Value::String(message_id.clone()),
                selected_text: quoted.clone(),
            }),
            MessagePart::File { name, .. } => parts.push(UserPart::Plain {
                text: format!("\n[File: {name}]"),
            }),
            _ => {}
        }
    }
    parts.iter().any(UserPart::is_content).then_some(parts)
}

fn wake_prefixes(config: &LoadedConfig) -> Vec<String> {
    match config.document.get("wake_prefix") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(prefix)) => vec![prefix.clone()],
        _ => vec!["/".to_owned()],
    }
}

/// An image the model can read: platform URLs as they are, inline bytes as
/// a data URL. Local paths are not read (they come from the platform's
/// side of the connection).
fn image_url(media: &Media) -> Option<String> {
    match media {
        Media::Url(url) => Some(url.clone()),
        Media::Bytes { data, mime } => {
            Some(format!("data:{mime};base64,{}", STANDARD.encode(data)))
        }
        Media::Path(_) => None,
    }
}
