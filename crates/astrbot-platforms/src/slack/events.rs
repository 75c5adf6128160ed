//! Events API payloads (the same in webhook and Socket Mode) to
//! [`InboundMessage`]s: `message` and `app_mention` events, mrkdwn
//! mentions and escapes, files and thread replies.

use astrbot_core::MessageType;
use serde_json::Value;

use crate::message::{InboundMessage, Media, MessagePart, Sender};

/// Message subtypes that are a person saying something; the others
/// (edits, deletions, joins …) are not messages to answer.
const USER_SUBTYPES: &[&str] = &["file_share", "thread_broadcast", "me_message"];

/// Turns one `event` object into a message, or `None` for events that
/// are not a user's message (bots, ourselves, edits, other event types).
/// The sender's name is their id; the adapter may look up a better one.
pub fn parse_event(platform_id: &str, self_user_id: &str, event: &Value) -> Option<InboundMessage> {
    let text_of = |key: &str| event.get(key).and_then(Value::as_str);
    if !matches!(text_of("type"), Some("message" | "app_mention")) {
        return None;
    }
    if event.get("bot_id").is_some_and(|id| !id.is_null()) {
        return None;
    }
    if let Some(subtype) = text_of("subtype") {
        if !USER_SUBTYPES.contains(&subtype) {
            return None;
        }
    }
    let user = text_of("user").filter(|user| !user.is_empty())?;
    if user == self_user_id {
        return None;
    }
    let channel = text_of("channel").filter(|channel| !channel.is_empty())?;
    let ts = text_of("ts").unwrap_or_default();
    // `app_mention` has no channel_type; DM channel ids start with D.
    let direct = match text_of("channel_type") {
        Some(kind) => kind == "im",
        None => channel.starts_with('D'),
    };
    let mut chain = Vec::new();
    if let Some(thread) = text_of("thread_ts").filter(|thread| *thread != ts) {
        chain.push(MessagePart::Reply {
            message_id: thread.to_owned(),
            quoted_text: None,
            to_bot: false,
        });
    }
    chain.extend(parse_text(
        text_of("text").unwrap_or_default(),
        self_user_id,
    ));
    for file in event
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(part) = file_part(file) {
            chain.push(part);
        }
    }
    Some(InboundMessage {
        platform_id: platform_id.to_owned(),
        message_type: if direct {
            MessageType::Friend
        } else {
            MessageType::Group
        },
        session_id: channel.to_owned(),
        sender: Sender {
            id: user.to_owned(),
            name: user.to_owned(),
        },
        self_id: self_user_id.to_owned(),
        message_id: ts.to_owned(),
        chain,
    })
}

/// A shared file. `url_private` needs the bot token to download; the
/// adapter fetches images before handing the message on.
fn file_part(file: &Value) -> Option<MessagePart> {
    let field = |key: &str| file.get(key).and_then(Value::as_str);
    let url = field("url_private").or_else(|| field("url_private_download"))?;
    let source = Media::Url(url.to_owned());
    if field("mimetype").is_some_and(|mime| mime.starts_with("image/")) {
        return Some(MessagePart::Image(source));
    }
    let name = field("name")
        .or_else(|| field("title"))
        .unwrap_or("file")
        .to_owned();
    Some(MessagePart::File { name, source })
}

/// Slack mrkdwn to parts: `<@U…>` mentions become [`MessagePart::At`]
/// (ours with `is_bot`), `<!here>`-style broadcasts an At of `all`,
/// `<#C…|name>` `#name`, links their URL, and `&amp;` `&lt;` `&gt;` are
/// unescaped.
pub fn parse_text(text: &str, self_user_id: &str) -> Vec<MessagePart> {
    let mut parts = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(length) = rest[start..].find('>') else {
            break;
        };
        plain.push_str(&unescape(&rest[..start]));
        let inner = &rest[start + 1..start + length];
        rest = &rest[start + length + 1..];
        let (target, label) = match inner.split_once('|') {
            Some((target, label)) => (target, Some(label)),
            None => (inner, None),
        };
        let mention = match target.as_bytes().first() {
            Some(b'@') => Some(target[1..].to_owned()),
            Some(b'!') if matches!(target, "!here" | "!channel" | "!everyone") => {
                Some("all".to_owned())
            }
            _ => None,
        };
        if let Some(target_id) = mention {
            if !plain.is_empty() {
                parts.push(MessagePart::Text(std::mem::take(&mut plain)));
            }
            let is_bot = target_id == self_user_id;
            parts.push(MessagePart::At { target_id, is_bot });
            continue;
        }
        match (target.as_bytes().first(), label) {
            (Some(b'#'), Some(name)) => plain.push_str(&format!("#{}", unescape(name))),
            (Some(b'!'), Some(label)) => plain.push_str(&unescape(label)),
            _ => plain.push_str(&unescape(target)),
        }
    }
    plain.push_str(&unescape(rest));
    if !plain.is_empty() {
        parts.push(MessagePart::Text(plain));
    }
    parts
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Outgoing text: Slack needs `&`, `<` and `>` escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn channel_mention_with_thread_and_files() {
        let event = json!({
            "type": "message", "channel": "C1", "channel_type": "channel", "user": "U7",
            "ts": "1700000001.000200", "thread_ts": "1700000000.000100",
            "text": "<@UBOT> look at <https://x.test/a?b=1&amp;c=2|this> &lt;3 <@U8>",
            "files": [
                {"name": "cat.png", "mimetype": "image/png", "url_private": "https://files.slack.com/cat.png"},
                {"name": "notes.txt", "mimetype": "text/plain", "url_private": "https://files.slack.com/notes.txt"},
            ],
        });
        let message = parse_event("slack", "UBOT", &event).unwrap();
        assert_eq!(message.umo().to_string(), "slack:GroupMessage:C1");
        assert_eq!(message.message_id, "1700000001.000200");
        assert!(message.mentions_bot());
        assert_eq!(
            message.chain,
            vec![
                MessagePart::Reply {
                    message_id: "1700000000.000100".into(),
                    quoted_text: None,
                    to_bot: false,
                },
                MessagePart::At {
                    target_id: "UBOT".into(),
                    is_bot: true
                },
                MessagePart::Text(" look at https://x.test/a?b=1&c=2 <3 ".into()),
                MessagePart::At {
                    target_id: "U8".into(),
                    is_bot: false
                },
                MessagePart::Image(Media::Url("https://files.slack.com/cat.png".into())),
                MessagePart::File {
                    name: "notes.txt".into(),
                    source: Media::Url("https://files.slack.com/notes.txt".into())
                },
            ]
        );
    }

    #[test]
    fn direct_messages_and_ignored_events() {
        let dm = json!({"type": "message", "channel": "D5", "channel_type": "im", "user": "U7", "ts": "1.2", "text": "hi"});
        let message = parse_event("slack", "UBOT", &dm).unwrap();
        assert_eq!(message.umo().to_string(), "slack:FriendMessage:D5");
        assert_eq!(message.plain_text(), "hi");
        let mention = json!({"type": "app_mention", "channel": "D5", "user": "U7", "ts": "1.2", "text": "<!here> x"});
        let message = parse_event("slack", "UBOT", &mention).unwrap();
        assert_eq!(message.message_type, MessageType::Friend);
        assert!(!message.mentions_bot());

        for ignored in [
            json!({"type": "message", "channel": "C1", "user": "U7", "bot_id": "B1", "text": "x"}),
            json!({"type": "message", "channel": "C1", "subtype": "bot_message", "text": "x"}),
            json!({"type": "message", "channel": "C1", "user": "UBOT", "text": "x"}),
            json!({"type": "message", "channel": "C1", "subtype": "message_changed"}),
            json!({"type": "reaction_added", "channel": "C1", "user": "U7"}),
        ] {
            assert_eq!(parse_event("slack", "UBOT", &ignored), None, "{ignored}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(
            parse_text("x <#C1|general> <!subteam^S1|@devs>", "U"),
            vec![MessagePart::Text("x #general @devs".into())]
        );
    }
}
