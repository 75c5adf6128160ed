//! [`OutboundChain`]s to Bot API calls: text through `sendMessage` (plain
//! text, no `parse_mode`, so Markdown in an answer can never make a send
//! fail; split at Telegram's 4096-character limit), pictures through
//! `sendPhoto`, files through `sendDocument`, audio files through
//! `sendVoice`. Local files and bytes are uploaded as multipart, URLs are
//! passed for Telegram to fetch. A `Reply` part becomes `reply_parameters`
//! on the first message sent.

use std::path::Path;

use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Map, Value};

use super::api::BotApi;
use crate::adapter::PlatformError;
use crate::message::{Media, OutboundChain, OutboundPart, SessionTarget};

/// Telegram's limit for a message text, in UTF-16 code units.
pub const MAX_TEXT: usize = 4096;

/// File names sent as voice messages.
const VOICE_EXTENSIONS: [&str; 4] = [".ogg", ".opus", ".mp3", ".wav"];

/// A chat to send to: the session id is a chat id, or `chat#thread` for a
/// forum topic.
pub(super) struct Chat {
    chat_id: Value,
    thread_id: Option<i64>,
}

impl Chat {
    pub(super) fn parse(session_id: &str) -> Result<Self, PlatformError> {
        let (chat, thread) = match session_id.split_once('#') {
            Some((chat, thread)) => (chat, thread.parse().ok()),
            None => (session_id, None),
        };
        let chat = chat.trim();
        if chat.is_empty() {
            return Err(PlatformError::Unsupported(
                "Telegram needs a chat id as session id".into(),
            ));
        }
        // Numeric ids go as numbers; `@channelname` as a string.
        let chat_id = chat
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(chat));
        Ok(Chat {
            chat_id,
            thread_id: thread,
        })
    }

    pub(super) fn chat_id(&self) -> Value {
        self.chat_id.clone()
    }

    /// `chat_id`, `message_thread_id` and `reply_parameters`.
    fn params(&self, reply_to: Option<i64>) -> Map<String, Value> {
        let mut params = Map::new();
        params.insert("chat_id".into(), self.chat_id.clone());
        if let Some(thread) = self.thread_id {
            params.insert("message_thread_id".into(), thread.into());
        }
        if let Some(message_id) = reply_to {
            // Still send if the quoted message was deleted meanwhile.
            params.insert(
                "reply_parameters".into(),
                json!({"message_id": message_id, "allow_sending_without_reply": true}),
            );
        }
        params
    }
}

enum Item {
    Text(String),
    Media {
        method: &'static str,
        field: &'static str,
        name: String,
        source: Media,
    },
}

/// Sends the chain in order; returns the id of the last message sent.
pub(super) async fn send_chain(
    api: &BotApi,
    target: &SessionTarget,
    chain: &OutboundChain,
) -> Result<Option<i64>, PlatformError> {
    let chat = Chat::parse(&target.session_id)?;
    let mut reply_to = None;
    let mut items = Vec::new();
    let mut text = String::new();
    for part in &chain.parts {
        match part {
            OutboundPart::Reply { message_id } => {
                reply_to = reply_to.or_else(|| message_id.trim().parse::<i64>().ok());
            }
            OutboundPart::Text(part) => text.push_str(part),
            // Plain text cannot mention by numeric id; usernames work.
            OutboundPart::At { target_id } => {
                let name = target_id.trim_start_matches('@');
                if !name.is_empty() && name.parse::<i64>().is_err() {
                    text.push_str(&format!("@{name} "));
                }
            }
            OutboundPart::Image(source) => {
                flush(&mut text, &mut items);
                items.push(Item::Media {
                    method: "sendPhoto",
                    field: "photo",
                    name: default_name("image", source),
                    source: source.clone(),
                });
            }
            OutboundPart::File { name, source } => {
                flush(&mut text, &mut items);
                let lower = name.to_ascii_lowercase();
                let (method, field) = if VOICE_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
                    ("sendVoice", "voice")
                } else {
                    ("sendDocument", "document")
                };
                let name = if name.trim().is_empty() {
                    default_name("file", source)
                } else {
                    name.clone()
                };
                items.push(Item::Media {
                    method,
                    field,
                    name,
                    source: source.clone(),
                });
            }
        }
    }
    flush(&mut text, &mut items);

    let mut last = None;
    for item in items {
        match item {
            Item::Text(text) => {
                for chunk in split_text(&text, MAX_TEXT) {
                    let mut params = chat.params(reply_to.take());
                    params.insert("text".into(), chunk.into());
                    let sent = api.call("sendMessage", &Value::Object(params)).await?;
                    last = message_id(&sent).or(last);
                }
            }
            Item::Media {
                method,
                field,
                name,
                source,
            } => {
                let params = chat.params(reply_to.take());
                let sent = send_media(api, method, field, &name, &source, params).await?;
                last = message_id(&sent).or(last);
            }
        }
    }
    Ok(last)
}

fn flush(text: &mut String, items: &mut Vec<Item>) {
    if !text.trim().is_empty() {
        items.push(Item::Text(std::mem::take(text)));
    }
    text.clear();
}

fn message_id(sent: &Value) -> Option<i64> {
    sent.get("message_id").and_then(Value::as_i64)
}

async fn send_media(
    api: &BotApi,
    method: &str,
    field: &str,
    name: &str,
    source: &Media,
    params: Map<String, Value>,
) -> Result<Value, PlatformError> {
    let (data, mime) = match source {
        Media::Url(url) => {
            let mut params = params;
            params.insert(field.into(), url.clone().into());
            return api.call(method, &Value::Object(params)).await;
        }
        Media::Path(path) => {
            let data = tokio::fs::read(path).await.map_err(|error| {
                PlatformError::Other(format!("cannot read {}: {error}", path.display()))
            })?;
            (data, None)
        }
        Media::Bytes { data, mime } => (data.clone(), Some(mime.as_str())),
    };
    // Shared by the attempts without a copy.
    let data = Bytes::from(data);
    let form = || {
        let mut form = Form::new();
        for (key, value) in &params {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            form = form.text(key.clone(), value);
        }
        let body = reqwest::Body::from(data.clone());
        let mut part = Part::stream_with_length(body, data.len() as u64).file_name(name.to_owned());
        if let Some(mime) = mime.filter(|mime| !mime.is_empty()) {
            part = part
                .mime_str(mime)
                .map_err(|_| PlatformError::Unsupported(format!("not a MIME type: {mime}")))?;
        }
        Ok(form.part(field.to_owned(), part))
    };
    api.call_multipart(method, form).await
}

/// An upload's file name: the path's own name, or `stem.ext` from the MIME.
fn default_name(stem: &str, source: &Media) -> String {
    match source {
        Media::Path(path) => Path::new(path)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| stem.to_owned()),
        Media::Bytes { mime, .. } => {
            let ext = mime
                .split_once('/')
                .map(|(_, sub)| sub.split(['+', ';']).next().unwrap_or(sub))
                .filter(|ext| !ext.is_empty())
                .map(|ext| if ext == "jpeg" { "jpg" } else { ext })
                .unwrap_or("bin");
            format!("{stem}.{ext}")
        }
        Media::Url(url) => url
            .rsplit('/')
            .next()
            .and_then(|last| last.split(['?', '#']).next())
            .filter(|last| !last.is_empty())
            .unwrap_or(stem)
            .to_owned(),
    }
}

/// Splits `text` into pieces of at most `limit` UTF-16 units, cutting at a
/// newline in the second half of a piece when there is one.
pub fn split_text(text: &str, limit: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.encode_utf16().count() > limit {
        let mut units = 0;
        let mut hard_cut = 0;
        for (index, ch) in rest.char_indices() {
            if units + ch.len_utf16() > limit {
                break;
            }
            units += ch.len_utf16();
            hard_cut = index + ch.len_utf8();
        }
        let cut = match rest[..hard_cut].rfind('\n') {
            Some(newline) if newline >= hard_cut / 2 => newline + 1,
            _ => hard_cut,
        };
        pieces.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// The first `limit` UTF-16 units of `text` (edits cannot be split).
pub fn truncate_text(text: &str, limit: usize) -> &str {
    let mut units = 0;
    for (index, ch) in text.char_indices() {
        if units + ch.len_utf16() > limit {
            return &text[..index];
        }
        units += ch.len_utf16();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_split_on_the_limit() {
        assert_eq!(split_text("short", 10), vec!["short"]);
        assert_eq!(split_text("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(split_text("ab\ncdefgh", 4), vec!["ab\n", "cdef", "gh"]);
        // Two UTF-16 units per emoji: never split one in half.
        assert_eq!(split_text("😀😀😀", 3), vec!["😀", "😀", "😀"]);
        let long = "x".repeat(MAX_TEXT * 2 + 1);
        let pieces = split_text(&long, MAX_TEXT);
        assert_eq!(
            pieces.iter().map(String::len).collect::<Vec<_>>(),
            [4096, 4096, 1]
        );
        assert_eq!(truncate_text("a😀b", 2), "a");
        assert_eq!(truncate_text("a😀b", 3), "a😀");
    }

    #[test]
    fn chats_and_names() {
        let chat = Chat::parse("-100#7").unwrap();
        assert_eq!(
            Value::Object(chat.params(Some(3))),
            json!({"chat_id": -100, "message_thread_id": 7,
                   "reply_parameters": {"message_id": 3, "allow_sending_without_reply": true}})
        );
        assert_eq!(Chat::parse("@news").unwrap().chat_id, json!("@news"));
        assert!(Chat::parse("").is_err());
        let bytes = Media::Bytes {
            data: vec![1],
            mime: "image/jpeg".into(),
        };
        assert_eq!(default_name("image", &bytes), "image.jpg");
        assert_eq!(
            default_name("file", &Media::Path("/tmp/a.ogg".into())),
            "a.ogg"
        );
        assert_eq!(
            default_name("image", &Media::Url("http://h/p/c.png?x=1".into())),
            "c.png"
        );
    }
}
