//! OneBot v11 message events and segments to and from the neutral model.

use astrbot_core::MessageType;
use base64::Engine;
use serde_json::{json, Value};

use super::cq;
use crate::message::{InboundMessage, Media, MessagePart, OutboundPart, Sender};

/// OneBot ids are numbers on the wire but strings in UMOs.
pub fn id_string(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

/// Back to a number when it is one: implementations built on typed
/// languages (Lagrange, go-cqhttp) reject a string `group_id`.
pub fn id_value(id: &str) -> Value {
    id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// A `post_type: "message"` event as an inbound message; `None` for
/// anything else.
pub fn parse_message_event(platform_id: &str, event: &Value) -> Option<InboundMessage> {
    if event.get("post_type")?.as_str()? != "message" {
        return None;
    }
    let user_id = id_string(event.get("user_id"));
    let (message_type, session_id) = match event.get("message_type")?.as_str()? {
        "group" => (MessageType::Group, id_string(event.get("group_id"))),
        "private" => (MessageType::Friend, user_id.clone()),
        _ => (MessageType::Other, user_id.clone()),
    };
    let sender = event.get("sender");
    let field = |key: &str| {
        sender
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    let name = field("card")
        .or_else(|| field("nickname"))
        .unwrap_or_default();
    let self_id = id_string(event.get("self_id"));
    let segments = match event.get("message") {
        Some(Value::Array(segments)) => segments.clone(),
        Some(Value::String(text)) => cq::parse(text),
        _ => cq::parse(
            event
                .get("raw_message")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ),
    };
    let chain = segments
        .iter()
        .filter_map(|segment| parse_segment(segment, &self_id))
        .collect();
    Some(InboundMessage {
        platform_id: platform_id.to_owned(),
        message_type,
        session_id,
        sender: Sender {
            id: user_id,
            name: name.to_owned(),
        },
        self_id,
        message_id: id_string(event.get("message_id")),
        chain,
    })
}

fn parse_segment(segment: &Value, self_id: &str) -> Option<MessagePart> {
    let kind = segment.get("type")?.as_str()?;
    let empty = json!({});
    let data = segment.get("data").unwrap_or(&empty);
    let text = |key: &str| id_string(data.get(key));
    Some(match kind {
        "text" => MessagePart::Text(text("text")),
        // `url` is the downloadable one; `file` is often a cache name.
        "image" => MessagePart::Image(media(&text("url"), &text("file"))),
        "file" => {
            let name = Some(text("name"))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| text("file"));
            MessagePart::File {
                source: media(&text("url"), &text("file")),
                name,
            }
        }
        // Whether the quoted message is the bot's is known to the adapter,
        // which remembers what it sent.
        "reply" => MessagePart::Reply {
            message_id: text("id"),
            quoted_text: None,
            to_bot: false,
        },
        "at" => {
            let target_id = text("qq");
            MessagePart::At {
                is_bot: !self_id.is_empty() && target_id == self_id,
                target_id,
            }
        }
        other => MessagePart::Other {
            kind: other.to_owned(),
            data: data.clone(),
        },
    })
}

/// A segment's source: the URL when given, else `file`, decoding
/// `base64://` inline data.
fn media(url: &str, file: &str) -> Media {
    if !url.is_empty() {
        return Media::Url(url.to_owned());
    }
    if let Some(encoded) = file.strip_prefix("base64://") {
        if let Ok(data) = base64::engine::general_purpose::STANDARD.decode(encoded) {
            let mime = sniff_mime(&data).to_owned();
            return Media::Bytes { data, mime };
        }
    }
    Media::Url(file.to_owned())
}

/// Enough magic numbers for the images chat platforms send.
fn sniff_mime(data: &[u8]) -> &'static str {
    match data {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        _ => "application/octet-stream",
    }
}

/// The `file` value OneBot implementations accept: a URL, `file:///` path
/// or `base64://` data.
fn file_param(source: &Media) -> String {
    match source {
        Media::Url(url) => url.clone(),
        Media::Path(path) => format!(
            "file:///{}",
            path.display().to_string().trim_start_matches('/')
        ),
        Media::Bytes { data, .. } => format!(
            "base64://{}",
            base64::engine::general_purpose::STANDARD.encode(data)
        ),
    }
}

/// One outbound part as an array-format segment.
pub fn outbound_segment(part: &OutboundPart) -> Value {
    match part {
        OutboundPart::Text(text) => json!({"type": "text", "data": {"text": text}}),
        OutboundPart::Image(source) => {
            json!({"type": "image", "data": {"file": file_param(source)}})
        }
        // Not in the v11 standard, but NapCat and Lagrange accept it.
        OutboundPart::File { name, source } => {
            json!({"type": "file", "data": {"file": file_param(source), "name": name}})
        }
        OutboundPart::Reply { message_id } => {
            json!({"type": "reply", "data": {"id": message_id}})
        }
        OutboundPart::At { target_id } => json!({"type": "at", "data": {"qq": target_id}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn group_event_with_array_message() {
        let event = json!({
            "post_type": "message", "message_type": "group", "self_id": 10,
            "group_id": 500, "user_id": 7, "message_id": -3,
            "sender": {"nickname": "nick", "card": "card"},
            "message": [
                {"type": "reply", "data": {"id": "99"}},
                {"type": "at", "data": {"qq": "10"}},
                {"type": "at", "data": {"qq": "all"}},
                {"type": "text", "data": {"text": " hello"}},
                {"type": "image", "data": {"file": "x.jpg", "url": "http://img/x.jpg"}},
                {"type": "file", "data": {"file": "f.bin", "name": "report.pdf", "url": "http://f"}},
                {"type": "face", "data": {"id": "1"}},
            ],
        });
        let message = parse_message_event("qq", &event).unwrap();
        assert_eq!(message.umo().to_string(), "qq:GroupMessage:500");
        assert_eq!(
            message.sender,
            Sender {
                id: "7".into(),
                name: "card".into()
            }
        );
        assert_eq!(
            (message.self_id.as_str(), message.message_id.as_str()),
            ("10", "-3")
        );
        assert_eq!(
            message.chain,
            vec![
                MessagePart::Reply {
                    message_id: "99".into(),
                    quoted_text: None,
                    to_bot: false,
                },
                MessagePart::At {
                    target_id: "10".into(),
                    is_bot: true
                },
                MessagePart::At {
                    target_id: "all".into(),
                    is_bot: false
                },
                MessagePart::Text(" hello".into()),
                MessagePart::Image(Media::Url("http://img/x.jpg".into())),
                MessagePart::File {
                    name: "report.pdf".into(),
                    source: Media::Url("http://f".into())
                },
                MessagePart::Other {
                    kind: "face".into(),
                    data: json!({"id": "1"})
                },
            ]
        );
    }

    #[test]
    fn private_event_with_cq_string_and_base64_image() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n");
        let event = json!({
            "post_type": "message", "message_type": "private", "self_id": "10",
            "user_id": 7, "message_id": 1, "sender": {"nickname": "nick", "card": ""},
            "message": format!("hi[CQ:image,file=base64://{png}]"),
        });
        let message = parse_message_event("qq", &event).unwrap();
        assert_eq!(message.umo().to_string(), "qq:FriendMessage:7");
        assert_eq!(message.sender.name, "nick");
        assert_eq!(
            message.chain[1],
            MessagePart::Image(Media::Bytes {
                data: b"\x89PNG\r\n".to_vec(),
                mime: "image/png".into()
            })
        );
    }

    #[test]
    fn non_message_events_are_ignored() {
        let heartbeat = json!({"post_type": "meta_event", "meta_event_type": "heartbeat"});
        assert!(parse_message_event("qq", &heartbeat).is_none());
    }

    #[test]
    fn outbound_segments() {
        assert_eq!(
            outbound_segment(&OutboundPart::Image(Media::Path(PathBuf::from(
                "/data/a.png"
            )))),
            json!({"type": "image", "data": {"file": "file:///data/a.png"}})
        );
        assert_eq!(
            outbound_segment(&OutboundPart::Image(Media::Bytes {
                data: b"hi".to_vec(),
                mime: "x".into()
            })),
            json!({"type": "image", "data": {"file": "base64://aGk="}})
        );
        assert_eq!(
            outbound_segment(&OutboundPart::At {
                target_id: "5".into()
            }),
            json!({"type": "at", "data": {"qq": "5"}})
        );
        assert_eq!(id_value("123"), json!(123));
        assert_eq!(id_value("abc"), json!("abc"));
    }
}
