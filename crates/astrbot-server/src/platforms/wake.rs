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
/// when they start with a wake prefix (an empty one matches everything, as
/// in AstrBot), mention the bot, quote one of its messages, or mention
/// everyone (unless `ignore_at_all`). A group message that opens by mentioning someone else
/// is for them, whatever prefix follows. `None` when the bot should stay
/// quiet or nothing is left to answer.
pub fn check(config: &LoadedConfig, message: &InboundMessage) -> Option<Woken> {
    let setting = |key: &str| {
        config
            .document
            .get("platform_settings")
            .and_then(|settings| settings.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    if setting("ignore_bot_self_message") && message.sender.id == message.self_id {
        return None;
    }
    let group = message.message_type == MessageType::Group;
    let for_someone_else = group
        && matches!(
            message.chain.first(),
            Some(MessagePart::At { target_id, is_bot: false }) if target_id != AT_ALL
        );
    let text = message.plain_text();
    let prefix = wake_prefixes(config)
        .filter(|_| !for_someone_else)
        .find(|prefix| text.trim_start().starts_with(prefix));
    let private_wakes =
        message.message_type == MessageType::Friend && !setting("friend_message_needs_wake_prefix");
    let everyone_mentioned = !setting("ignore_at_all")
        && message
            .chain
            .iter()
            .any(|part| matches!(part, MessagePart::At { target_id, .. } if target_id == AT_ALL));
    let addressed = message.mentions_bot() || message.replies_to_bot() || everyone_mentioned;
    if !(private_wakes || prefix.is_some() || addressed) {
        return None;
    }

    let mut prefix = prefix;
    let mut parts = Vec::new();
    for part in &message.chain {
        match part {
            MessagePart::Text(text) => {
                let mut text = text.as_str();
                // The prefix is on the first text with something in it.
                if let Some(wake) = prefix.filter(|_| !text.trim().is_empty()) {
                    prefix = None;
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
                ..
            } => parts.push(UserPart::Reply {
                message_id: Value::String(message_id.clone()),
                selected_text: quoted.clone(),
            }),
            MessagePart::File { name, .. } => parts.push(UserPart::Plain {
                text: format!("\n[File: {name}]"),
            }),
            // A picture the bot could not download: the user still gets
            // an answer, and the model knows one was sent.
            MessagePart::Other { kind, .. } if UNFETCHED_IMAGES.contains(&kind.as_str()) => parts
                .push(UserPart::Plain {
                    text: "\n[Image: it could not be downloaded]".to_owned(),
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

/// The parts the adapters put where a picture could not be downloaded.
const UNFETCHED_IMAGES: [&str; 2] = ["telegram_file", "slack_file"];

/// The target of an @-mention of everyone (OneBot's `[CQ:at,qq=all]`).
const AT_ALL: &str = "all";

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

#[cfg(test)]
mod tests {
    use super::*;
    use astrbot_platforms::Sender;
    use serde_json::json;

    fn group_message(chain: Vec<MessagePart>) -> InboundMessage {
        InboundMessage {
            platform_id: "qq".into(),
            message_type: MessageType::Group,
            session_id: "555".into(),
            sender: Sender {
                id: "7".into(),
                name: "Ada".into(),
            },
            self_id: "10".into(),
            message_id: "1".into(),
            chain,
        }
    }

    fn at(target: &str, is_bot: bool) -> MessagePart {
        MessagePart::At {
            target_id: target.into(),
            is_bot,
        }
    }

    fn text(text: &str) -> MessagePart {
        MessagePart::Text(text.into())
    }

    fn woken_text(config: &LoadedConfig, chain: Vec<MessagePart>) -> Option<String> {
        check(config, &group_message(chain)).map(|woken| woken.text)
    }

    #[test]
    fn group_messages_wake_as_in_astrbot() {
        let default = LoadedConfig::new("d", "d", json!({}));
        let everything = LoadedConfig::new("e", "e", json!({"wake_prefix": [""]}));
        let at_all_ignored = LoadedConfig::new(
            "i",
            "i",
            json!({"platform_settings": {"ignore_at_all": true}}),
        );

        assert_eq!(woken_text(&default, vec![text("/sid")]), Some("sid".into()));
        assert_eq!(woken_text(&default, vec![text("hello")]), None);
        // An empty text part before the prefix does not hide it.
        assert_eq!(
            woken_text(&default, vec![text(" "), text("/sid")]),
            Some("sid".into())
        );
        // For someone else, whatever the prefix; a mention of the bot wakes.
        assert_eq!(
            woken_text(&default, vec![at("5555", false), text(" /sid")]),
            None
        );
        assert_eq!(
            woken_text(&default, vec![at("10", true), text(" hi")]),
            Some("hi".into())
        );
        // Everyone mentioned wakes the bot unless the config says not to.
        assert_eq!(
            woken_text(&default, vec![at("all", false), text(" news")]),
            Some("news".into())
        );
        assert_eq!(
            woken_text(&at_all_ignored, vec![at("all", false), text(" news")]),
            None
        );
        // An empty wake prefix matches every message.
        assert_eq!(
            woken_text(&everything, vec![text("hello")]),
            Some("hello".into())
        );
    }

    #[test]
    fn a_picture_that_could_not_be_downloaded_is_still_answered() {
        let default = LoadedConfig::new("d", "d", json!({}));
        let mut message = group_message(vec![MessagePart::Other {
            kind: "telegram_file".into(),
            data: json!({"file_id": "x", "error": "HTTP 404"}),
        }]);
        message.message_type = MessageType::Friend;

        let woken = check(&default, &message).expect("answered");
        assert_eq!(woken.text, "[Image: it could not be downloaded]");
    }

    #[test]
    fn the_bots_own_messages_are_skipped_when_the_config_says_so() {
        let skipping = LoadedConfig::new(
            "s",
            "s",
            json!({"platform_settings": {"ignore_bot_self_message": true}}),
        );
        let default = LoadedConfig::new("d", "d", json!({}));
        let mut own = group_message(vec![text("/sid")]);
        own.sender.id = own.self_id.clone();

        assert!(check(&skipping, &own).is_none());
        assert!(
            check(&default, &own).is_some(),
            "AstrBot's default answers them"
        );
    }
}
