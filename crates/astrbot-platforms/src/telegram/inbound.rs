//! Telegram `Update`s to [`InboundMessage`]s: chat type to group/private,
//! sender, text or caption with its entities (the bot's `@username` becomes
//! an `At` and leaves the text, `/cmd@botname` loses its `@botname`),
//! replies, photos and documents.
//!
//! Parsing is synchronous; photos and documents come out with their
//! `file_id` in [`Parsed::files`] so the caller can resolve them through
//! `getFile` into download URLs.

use astrbot_core::MessageType;
use serde_json::Value;

use crate::message::{InboundMessage, Media, MessagePart, Sender};

/// Who the bot is, from `getMe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub id: String,
    /// Without the leading `@`.
    pub username: String,
}

/// A parsed message whose media still need `getFile`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Media parts hold an empty `Media::Url`; photos are fetched before
    /// the message is handed on, documents are known by their name.
    pub message: InboundMessage,
    /// `(index into message.chain, file_id)` for each media part.
    pub files: Vec<(usize, String)>,
}

/// The `message` of an update, or `None` for anything else: other update
/// kinds, channels, and commands addressed to another bot (`/cmd@other`).
pub fn parse_update(platform_id: &str, bot: &BotIdentity, update: &Value) -> Option<Parsed> {
    let message = update.get("message")?;
    let chat = message.get("chat")?;
    let chat_id = id_string(chat.get("id")?)?;
    let message_type = match chat.get("type").and_then(Value::as_str)? {
        "private" => MessageType::Friend,
        "group" | "supergroup" => MessageType::Group,
        _ => return None,
    };
    // Forum topics are their own conversations: `chat#thread` (AstrBot's
    // form too); `send` splits it again.
    let session_id = match message.get("message_thread_id").and_then(Value::as_i64) {
        Some(thread)
            if message_type == MessageType::Group
                && message.get("is_topic_message").and_then(Value::as_bool) == Some(true) =>
        {
            format!("{chat_id}#{thread}")
        }
        _ => chat_id,
    };

    let mut chain = Vec::new();
    let mut files = Vec::new();
    if let Some(quoted) = message.get("reply_to_message") {
        if let Some(message_id) = quoted.get("message_id").and_then(id_string) {
            // A partial quote (`quote`) is what the user selected.
            let quoted_text = message
                .pointer("/quote/text")
                .or_else(|| quoted.get("text"))
                .or_else(|| quoted.get("caption"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let author = quoted.pointer("/from/id").and_then(id_string);
            chain.push(MessagePart::Reply {
                message_id,
                quoted_text,
                to_bot: author.as_deref() == Some(bot.id.as_str()),
            });
        }
    }

    let (text, entities) = match message.get("text").and_then(Value::as_str) {
        Some(text) => (Some(text), message.get("entities")),
        None => (
            message.get("caption").and_then(Value::as_str),
            message.get("caption_entities"),
        ),
    };
    let mut body = None;
    if let Some(text) = text {
        let entities = entities
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let parsed = parse_text(text, entities, bot)?;
        chain.extend(parsed.mentions);
        body = Some(parsed.text).filter(|text| !text.is_empty());
    }

    if let Some(photo) = message.get("photo").and_then(largest_photo) {
        if let Some(file_id) = photo.get("file_id").and_then(Value::as_str) {
            files.push((chain.len(), file_id.to_owned()));
            chain.push(MessagePart::Image(Media::Url(String::new())));
        }
    }
    if let Some(document) = message.get("document") {
        if let Some(file_id) = document.get("file_id").and_then(Value::as_str) {
            let name = document
                .get("file_name")
                .and_then(Value::as_str)
                .unwrap_or("document")
                .to_owned();
            files.push((chain.len(), file_id.to_owned()));
            chain.push(MessagePart::File {
                name,
                source: Media::Url(String::new()),
            });
        }
    }
    for kind in [
        "voice",
        "audio",
        "video",
        "video_note",
        "sticker",
        "animation",
    ] {
        if let Some(data) = message.get(kind) {
            chain.push(MessagePart::Other {
                kind: kind.to_owned(),
                data: data.clone(),
            });
        }
    }
    if let Some(text) = body {
        chain.push(MessagePart::Text(text));
    }
    if chain.is_empty() {
        return None;
    }

    Some(Parsed {
        message: InboundMessage {
            platform_id: platform_id.to_owned(),
            message_type,
            session_id,
            sender: sender(message),
            self_id: bot.id.clone(),
            message_id: message.get("message_id").and_then(id_string)?,
            chain,
        },
        files,
    })
}

/// `first_name last_name`, else `username`; anonymous group admins and
/// channels post as `sender_chat`.
fn sender(message: &Value) -> Sender {
    if let Some(from) = message.get("from") {
        let full = [from.get("first_name"), from.get("last_name")]
            .into_iter()
            .filter_map(|part| part.and_then(Value::as_str))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let name = if full.is_empty() {
            from.get("username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        } else {
            full
        };
        return Sender {
            id: from.get("id").and_then(id_string).unwrap_or_default(),
            name,
        };
    }
    let chat = message.get("sender_chat");
    Sender {
        id: chat
            .and_then(|chat| chat.get("id"))
            .and_then(id_string)
            .unwrap_or_default(),
        name: chat
            .and_then(|chat| chat.get("title"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Telegram lists sizes smallest first; prefer the biggest file.
fn largest_photo(sizes: &Value) -> Option<&Value> {
    let area = |size: &Value| {
        let side = |key| size.get(key).and_then(Value::as_i64).unwrap_or(0);
        side("width") * side("height")
    };
    sizes.as_array()?.iter().max_by_key(|size| {
        (
            size.get("file_size").and_then(Value::as_i64).unwrap_or(0),
            area(size),
        )
    })
}

struct ParsedText {
    mentions: Vec<MessagePart>,
    text: String,
}

/// Applies the entities; `None` when the message starts with a command
/// addressed to another bot. Entity offsets count UTF-16 code units.
fn parse_text(text: &str, entities: &[Value], bot: &BotIdentity) -> Option<ParsedText> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut mentions = Vec::new();
    let mut cut: Vec<(usize, usize)> = Vec::new();
    for entity in entities {
        let (Some(offset), Some(length)) = (
            entity.get("offset").and_then(Value::as_u64),
            entity.get("length").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let (start, end) = (offset as usize, (offset + length) as usize);
        let Some(slice) = units.get(start..end) else {
            continue;
        };
        let slice = String::from_utf16_lossy(slice);
        match entity.get("type").and_then(Value::as_str) {
            Some("mention") => {
                let name = slice.trim_start_matches('@');
                if name.eq_ignore_ascii_case(&bot.username) {
                    mentions.push(bot_at(bot));
                    cut.push((start, end));
                } else {
                    mentions.push(MessagePart::At {
                        target_id: name.to_owned(),
                        is_bot: false,
                    });
                }
            }
            Some("text_mention") => {
                let user = entity.get("user").and_then(|user| user.get("id"));
                let Some(user) = user.and_then(id_string) else {
                    continue;
                };
                if user == bot.id {
                    mentions.push(bot_at(bot));
                    cut.push((start, end));
                } else {
                    mentions.push(MessagePart::At {
                        target_id: user,
                        is_bot: false,
                    });
                }
            }
            Some("bot_command") => {
                let Some(at) = slice.find('@') else {
                    continue;
                };
                if slice[at + 1..].eq_ignore_ascii_case(&bot.username) {
                    let at_units = slice[..at].encode_utf16().count();
                    cut.push((start + at_units, end));
                } else if start == 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    cut.sort_unstable();
    let mut kept = Vec::with_capacity(units.len());
    let mut position = 0;
    for (start, end) in &cut {
        if *start >= position {
            kept.extend_from_slice(&units[position..*start]);
        }
        position = position.max(*end);
    }
    kept.extend_from_slice(&units[position.min(units.len())..]);
    let mut text = String::from_utf16_lossy(&kept);
    // "@bot hello" reads as "hello", so a wake prefix right after the
    // mention still counts.
    if cut.first().is_some_and(|(start, _)| *start == 0) {
        text = text.trim_start().to_owned();
    }
    Some(ParsedText { mentions, text })
}

fn bot_at(bot: &BotIdentity) -> MessagePart {
    MessagePart::At {
        target_id: bot.id.clone(),
        is_bot: true,
    }
}

/// Ids arrive as JSON numbers; chats can also be `@channelname` strings.
fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            id: "99".into(),
            username: "AstrBot".into(),
        }
    }

    fn update(message: Value) -> Value {
        json!({"update_id": 1, "message": message})
    }

    fn entity(kind: &str, offset: usize, length: usize) -> Value {
        json!({"type": kind, "offset": offset, "length": length})
    }

    #[test]
    fn a_reply_to_the_bots_own_message_is_for_the_bot() {
        let reply_to = |author: i64| {
            let parsed = parse_update(
                "tg",
                &bot(),
                &update(json!({
                    "message_id": 8, "chat": {"id": -100123, "type": "supergroup"},
                    "from": {"id": 5, "first_name": "Ada"}, "text": "why?",
                    "reply_to_message": {"message_id": 6, "from": {"id": author, "is_bot": true},
                                         "chat": {"id": -100123, "type": "supergroup"}, "text": "earlier"},
                })),
            );
            parsed.unwrap().message.replies_to_bot()
        };
        assert!(reply_to(99));
        assert!(!reply_to(7));
    }

    #[test]
    fn group_text_with_mention_reply_and_sender() {
        let parsed = parse_update(
            "tg",
            &bot(),
            &update(json!({
                "message_id": 7, "chat": {"id": -100123, "type": "supergroup", "title": "G"},
                "from": {"id": 5, "first_name": "Ada", "last_name": "L", "username": "ada"},
                "text": "@astrbot hi @bob",
                "entities": [entity("mention", 0, 8), entity("mention", 12, 4)],
                "reply_to_message": {"message_id": 6, "chat": {"id": -100123, "type": "supergroup"}, "text": "earlier"},
            })),
        )
        .unwrap();
        let message = parsed.message;
        assert_eq!(message.umo().to_string(), "tg:GroupMessage:-100123");
        assert_eq!(
            message.sender,
            Sender {
                id: "5".into(),
                name: "Ada L".into()
            }
        );
        assert_eq!(
            (message.self_id.as_str(), message.message_id.as_str()),
            ("99", "7")
        );
        assert_eq!(
            message.chain,
            vec![
                MessagePart::Reply {
                    message_id: "6".into(),
                    quoted_text: Some("earlier".into()),
                    to_bot: false,
                },
                MessagePart::At {
                    target_id: "99".into(),
                    is_bot: true
                },
                MessagePart::At {
                    target_id: "bob".into(),
                    is_bot: false
                },
                MessagePart::Text("hi @bob".into()),
            ]
        );
        assert!(parsed.files.is_empty());
    }

    #[test]
    fn utf16_offsets_and_commands() {
        // The emoji is two UTF-16 units, so the mention starts at 3.
        let text = "😀 @AstrBot ok";
        let parsed = parse_text(text, &[entity("mention", 3, 8)], &bot()).unwrap();
        assert_eq!(parsed.text, "😀  ok");
        assert_eq!(parsed.mentions.len(), 1);

        let parsed =
            parse_text("/ask@astrbot why", &[entity("bot_command", 0, 12)], &bot()).unwrap();
        assert_eq!(parsed.text, "/ask why");
        assert!(parsed.mentions.is_empty());
        assert!(parse_text("/ask@other why", &[entity("bot_command", 0, 10)], &bot()).is_none());
        let plain = parse_text("/ask why", &[entity("bot_command", 0, 4)], &bot()).unwrap();
        assert_eq!(plain.text, "/ask why");
    }

    #[test]
    fn private_photo_and_document() {
        let parsed = parse_update(
            "tg",
            &bot(),
            &update(json!({
                "message_id": 8, "chat": {"id": 5, "type": "private"},
                "from": {"id": 5, "first_name": "", "username": "ada"},
                "caption": "look",
                "photo": [
                    {"file_id": "small", "width": 90, "height": 90, "file_size": 100},
                    {"file_id": "big", "width": 900, "height": 900, "file_size": 9000},
                ],
                "document": {"file_id": "doc", "file_name": "a.pdf"},
            })),
        )
        .unwrap();
        assert_eq!(parsed.message.umo().to_string(), "tg:FriendMessage:5");
        assert_eq!(parsed.message.sender.name, "ada");
        assert_eq!(parsed.files, vec![(0, "big".into()), (1, "doc".into())]);
        assert!(
            matches!(&parsed.message.chain[1], MessagePart::File { name, .. } if name == "a.pdf")
        );
        assert_eq!(parsed.message.plain_text(), "look");
    }

    #[test]
    fn topics_channels_and_other_updates() {
        let topic = parse_update(
            "tg",
            &bot(),
            &update(json!({
                "message_id": 1, "message_thread_id": 4, "is_topic_message": true,
                "chat": {"id": -1, "type": "supergroup"}, "from": {"id": 2, "first_name": "A"},
                "text": "x",
            })),
        )
        .unwrap();
        assert_eq!(topic.message.session_id, "-1#4");
        let channel =
            update(json!({"message_id": 1, "chat": {"id": -2, "type": "channel"}, "text": "x"}));
        assert!(parse_update("tg", &bot(), &channel).is_none());
        assert!(
            parse_update("tg", &bot(), &json!({"update_id": 2, "edited_message": {}})).is_none()
        );
    }
}
