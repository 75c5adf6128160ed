//! A user message as the chat endpoint resolved it: text, replies, and
//! uploaded attachments looked up in the store.

use serde_json::{json, Value};

/// One part of a user message.
#[derive(Debug, Clone, PartialEq)]
pub enum UserPart {
    Plain {
        text: String,
    },
    /// A quote of an earlier UI-history turn.
    Reply {
        message_id: Value,
        selected_text: String,
    },
    /// An uploaded file; `kind` is the stored type, not the declared one.
    Attachment {
        kind: String,
        attachment_id: String,
        filename: String,
        path: String,
        mime_type: String,
    },
    /// An image from a chat platform (an `https:` URL it hosts, or the
    /// image's bytes as a `data:` URL), passed to the model as is.
    RemoteImage {
        url: String,
    },
}

impl UserPart {
    /// The part as stored in the UI history: the internal path left out.
    pub fn to_history_json(&self) -> Value {
        match self {
            UserPart::Plain { text } => json!({"type": "plain", "text": text}),
            UserPart::Reply {
                message_id,
                selected_text,
            } => json!({"type": "reply", "message_id": message_id, "selected_text": selected_text}),
            UserPart::Attachment {
                kind,
                attachment_id,
                filename,
                ..
            } => json!({"type": kind, "attachment_id": attachment_id, "filename": filename}),
            // An image sent inline (a Telegram photo, OneBot's `base64://`)
            // is kept out: it may be megabytes, on every turn's row.
            UserPart::RemoteImage { url } if url.starts_with("data:") => json!({"type": "image"}),
            UserPart::RemoteImage { url } => json!({"type": "image", "url": url}),
        }
    }

    /// Whether the part is content the model can answer (a reply alone is
    /// not).
    pub fn is_content(&self) -> bool {
        !matches!(self, UserPart::Reply { .. })
    }
}

/// The plain texts of a message, concatenated as AstrBot's `message_str`.
pub fn plain_text(parts: &[UserPart]) -> String {
    parts
        .iter()
        .filter_map(|part| match part {
            UserPart::Plain { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_images_are_kept_out_of_the_history_and_hosted_ones_by_their_url() {
        let inline = UserPart::RemoteImage {
            url: format!("data:image/jpeg;base64,{}", "A".repeat(1000)),
        };
        let hosted = UserPart::RemoteImage {
            url: "https://cdn.example/cat.png".into(),
        };

        assert_eq!(inline.to_history_json(), json!({"type": "image"}));
        assert_eq!(
            hosted.to_history_json(),
            json!({"type": "image", "url": "https://cdn.example/cat.png"})
        );
    }
}
