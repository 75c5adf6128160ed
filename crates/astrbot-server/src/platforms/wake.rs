//! The wake stage: whether a platform message is for the bot, and the
//! message as chat parts with the wake prefix and bot mention removed.

use astrbot_core::MessageType;
use astrbot_platforms::{InboundMessage, Media, MessagePart};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use crate::chat::UserPart;
use crate::config::LoadedConfig;

/// A message that woke the bot.
pub struct Woken {
    /// The text after the wake prefix, trimmed (commands are parsed from it).
    pub text: String,
    pub parts: Vec<UserPart>,
}

/// Private messages wake the bot unless
/// `platform_settings.friend_message_needs_wake_prefix`; group messages
/// when they start with a wake prefix or mention the bot. `None` when the
/// bot should stay quiet or nothing is left to answer.
pub fn check(config: &LoadedConfig, message: &InboundMessage) -> Option<Woken> {
    let text = message.plain_text();
    let prefix = wake_prefixes(config)
        .filter(|prefix| !prefix.is_empty())
        .find(|prefix| text.trim_start().starts_with(prefix));
    let private_wakes = message.message_type == MessageType::Friend
        && !config
            .document
            .pointer("/platform_settings/friend_message_needs_wake_prefix")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    if !(private_wakes || prefix.is_some() || message.mentions_bot()) {
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
                    text = text.strip_prefix(wake).unwrap_or(text);
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
    if !parts.iter().any(UserPart::is_content) {
        return None;
    }
    let text = parts
        .iter()
        .filter_map(|part| match part {
            UserPart::Plain { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<String>()
        .trim()
        .to_owned();
    Some(Woken { text, parts })
}

/// `text` after the first of the config's wake prefixes it starts with.
pub(crate) fn strip_wake_prefix<'t>(config: &LoadedConfig, text: &'t str) -> Option<&'t str> {
    wake_prefixes(config).find_map(|prefix| text.strip_prefix(prefix))
}

/// The config's `wake_prefix` list as written (AstrBot's default: `/`),
/// read in place: webchat checks it on every message.
pub(crate) fn wake_prefixes(config: &LoadedConfig) -> impl Iterator<Item = &str> {
    let (listed, single): (&[Value], Option<&str>) = match config.document.get("wake_prefix") {
        Some(Value::Array(items)) => (items, None),
        Some(Value::String(prefix)) => (&[], Some(prefix)),
        _ => (&[], Some("/")),
    };
    listed.iter().filter_map(Value::as_str).chain(single)
}

/// An image the model can read: platform URLs as they are, inline bytes as
/// a data URL. Local paths are not read (they name files on the platform's
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
