//! `MESSAGE_CREATE` dispatches turned into [`InboundMessage`]s: guild
//! channels are groups and DMs are private chats, both keyed by channel id;
//! a mention of the bot becomes an `At` and is cut from the text.

use astrbot_core::MessageType;
use serde_json::Value;

use crate::message::{InboundMessage, Media, MessagePart, Sender};

/// Message types a person writes: DEFAULT and REPLY. Joins, pins, boosts
/// and the like are system messages and never wake the bot.
const USER_MESSAGE_TYPES: [u64; 2] = [0, 19];

/// The message in a `MESSAGE_CREATE` payload (`d`), or `None` when it is
/// ours, another bot's or a system message. `self_id` is our user id from
/// READY.
pub fn parse_message_create(
    platform_id: &str,
    self_id: &str,
    data: &Value,
) -> Option<InboundMessage> {
    let author = data.get("author")?;
    let author_id = str_field(author, "id")?;
    let is_bot = author.get("bot").and_then(Value::as_bool) == Some(true);
    if author_id == self_id || is_bot {
        return None;
    }
    let kind = data.get("type").and_then(Value::as_u64).unwrap_or(0);
    if !USER_MESSAGE_TYPES.contains(&kind) {
        return None;
    }
    let channel_id = str_field(data, "channel_id")?;
    let message_type = if data.get("guild_id").is_some_and(|id| !id.is_null()) {
        MessageType::Group
    } else {
        MessageType::Friend
    };

    let mut chain = Vec::new();
    if let Some(reference) = data.get("message_reference") {
        if let Some(message_id) = str_field(reference, "message_id") {
            let quoted_text = data
                .pointer("/referenced_message/content")
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned);
            let author = data.pointer("/referenced_message/author/id");
            chain.push(MessagePart::Reply {
                message_id: message_id.to_owned(),
                quoted_text,
                to_bot: author.and_then(Value::as_str) == Some(self_id),
            });
        }
    }
    let mentioned = data
        .get("mentions")
        .and_then(Value::as_array)
        .is_some_and(|users| {
            users
                .iter()
                .any(|user| str_field(user, "id") == Some(self_id))
        });
    if mentioned && !self_id.is_empty() {
        chain.push(MessagePart::At {
            target_id: self_id.to_owned(),
            is_bot: true,
        });
    }
    if data.get("mention_everyone").and_then(Value::as_bool) == Some(true) {
        chain.push(MessagePart::At {
            target_id: "all".to_owned(),
            is_bot: false,
        });
    }
    let content = data.get("content").and_then(Value::as_str).unwrap_or("");
    let text = if self_id.is_empty() {
        content.trim().to_owned()
    } else {
        strip_mention(content, self_id)
    };
    if !text.is_empty() {
        chain.push(MessagePart::Text(text));
    }
    for attachment in data
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(part) = attachment_part(attachment) {
            chain.push(part);
        }
    }

    Some(InboundMessage {
        platform_id: platform_id.to_owned(),
        message_type,
        session_id: channel_id.to_owned(),
        sender: Sender {
            id: author_id.to_owned(),
            name: display_name(data, author),
        },
        self_id: self_id.to_owned(),
        message_id: str_field(data, "id").unwrap_or_default().to_owned(),
        chain,
    })
}

/// Removes `<@id>` and `<@!id>` (the old nickname form) and trims.
pub fn strip_mention(content: &str, self_id: &str) -> String {
    content
        .replace(&format!("<@{self_id}>"), "")
        .replace(&format!("<@!{self_id}>"), "")
        .trim()
        .to_owned()
}

/// Server nickname, else display name, else user name.
fn display_name(data: &Value, author: &Value) -> String {
    [
        data.pointer("/member/nick"),
        author.get("global_name"),
        author.get("username"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .find(|name| !name.is_empty())
    .unwrap_or_default()
    .to_owned()
}

fn attachment_part(attachment: &Value) -> Option<MessagePart> {
    let url = str_field(attachment, "url").or_else(|| str_field(attachment, "proxy_url"))?;
    let name = str_field(attachment, "filename").unwrap_or("file");
    let is_image = match str_field(attachment, "content_type") {
        Some(mime) => mime.starts_with("image/"),
        None => {
            let lower = name.to_ascii_lowercase();
            [".png", ".jpg", ".jpeg", ".gif", ".webp"]
                .iter()
                .any(|ext| lower.ends_with(ext))
        }
    };
    let source = Media::Url(url.to_owned());
    Some(if is_image {
        MessagePart::Image(source)
    } else {
        MessagePart::File {
            name: name.to_owned(),
            source,
        }
    })
}

/// A non-empty string field (Discord sends ids as strings).
fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guild_message() -> Value {
        json!({
            "id": "900", "type": 19, "channel_id": "300", "guild_id": "200",
            "author": {"id": "7", "username": "alice", "global_name": "Alice"},
            "member": {"nick": null},
            "content": "<@!42> what is <@5>? <@42>",
            "mentions": [{"id": "42", "bot": true}, {"id": "5"}],
            "mention_everyone": false,
            "attachments": [
                {"id": "1", "filename": "cat.png", "content_type": "image/png", "url": "https://cdn/cat.png"},
                {"id": "2", "filename": "notes.txt", "content_type": "text/plain", "url": "https://cdn/notes.txt"},
            ],
            "message_reference": {"message_id": "899", "channel_id": "300"},
            "referenced_message": {"id": "899", "content": "earlier"},
        })
    }

    #[test]
    fn guild_message_with_mention_attachments_and_reply() {
        let message = parse_message_create("dc", "42", &guild_message()).unwrap();
        assert_eq!(message.umo().to_string(), "dc:GroupMessage:300");
        assert_eq!(
            message.sender,
            Sender {
                id: "7".into(),
                name: "Alice".into()
            }
        );
        assert_eq!(
            (message.self_id.as_str(), message.message_id.as_str()),
            ("42", "900")
        );
        assert_eq!(
            message.chain,
            vec![
                MessagePart::Reply {
                    message_id: "899".into(),
                    quoted_text: Some("earlier".into()),
                    to_bot: false,
                },
                MessagePart::At {
                    target_id: "42".into(),
                    is_bot: true
                },
                MessagePart::Text("what is <@5>?".into()),
                MessagePart::Image(Media::Url("https://cdn/cat.png".into())),
                MessagePart::File {
                    name: "notes.txt".into(),
                    source: Media::Url("https://cdn/notes.txt".into())
                },
            ]
        );
    }

    #[test]
    fn direct_message_is_private_by_channel() {
        let data = json!({
            "id": "1", "channel_id": "55", "type": 0,
            "author": {"id": "7", "username": "alice", "global_name": null},
            "content": "hi", "mentions": [], "attachments": [],
        });
        let message = parse_message_create("dc", "42", &data).unwrap();
        assert_eq!(message.umo().to_string(), "dc:FriendMessage:55");
        assert_eq!(message.sender.name, "alice");
        assert!(!message.mentions_bot());
        assert_eq!(message.plain_text(), "hi");
    }

    #[test]
    fn own_bot_and_system_messages_are_ignored() {
        let mut own = guild_message();
        own["author"]["id"] = json!("42");
        assert!(parse_message_create("dc", "42", &own).is_none());
        let mut bot = guild_message();
        bot["author"]["bot"] = json!(true);
        assert!(parse_message_create("dc", "42", &bot).is_none());
        let mut pin = guild_message();
        pin["type"] = json!(6);
        assert!(parse_message_create("dc", "42", &pin).is_none());
    }

    #[test]
    fn nickname_wins() {
        let mut data = guild_message();
        data["member"]["nick"] = json!("Al");
        let message = parse_message_create("dc", "42", &data).unwrap();
        assert_eq!(message.sender.name, "Al");
    }
}
