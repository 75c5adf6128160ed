//! The platform-neutral message model: what an adapter hands to the
//! pipeline ([`InboundMessage`]) and what the pipeline or a proactive send
//! hands back to an adapter ([`OutboundChain`] to a [`SessionTarget`]).

use std::path::PathBuf;

use astrbot_core::{MessageType, Umo};

/// Where a picture or file lives. Adapters pass URLs through untouched so
/// the pipeline decides whether to download them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    Url(String),
    /// A file on this machine (for sends of stored attachments).
    Path(PathBuf),
    /// Inline content, e.g. OneBot's `base64://`.
    Bytes {
        data: Vec<u8>,
        mime: String,
    },
}

/// One part of an inbound message chain.
#[derive(Debug, Clone, PartialEq)]
pub enum MessagePart {
    Text(String),
    Image(Media),
    File {
        name: String,
        source: Media,
    },
    /// A quote of an earlier message. Platforms that only send the id leave
    /// `quoted_text` empty. `to_bot`: the quoted message is the bot's own,
    /// which wakes the bot in a group, as in AstrBot.
    Reply {
        message_id: String,
        quoted_text: Option<String>,
        to_bot: bool,
    },
    /// An @-mention; `target_id` is `"all"` for @everyone.
    At {
        target_id: String,
        is_bot: bool,
    },
    /// A segment kind we do not model (face, record, json …), kept so the
    /// pipeline can still see it.
    Other {
        kind: String,
        data: serde_json::Value,
    },
}

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sender {
    pub id: String,
    /// Group card if set, else nickname.
    pub name: String,
}

/// A message received from a platform.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The configured (sanitised) platform id, first part of the UMO.
    pub platform_id: String,
    pub message_type: MessageType,
    /// The group id for group chats, the user id for private chats.
    pub session_id: String,
    pub sender: Sender,
    /// The bot's own account id on the platform.
    pub self_id: String,
    /// The platform's id of this message (for replies).
    pub message_id: String,
    pub chain: Vec<MessagePart>,
}

impl InboundMessage {
    /// `platform_id:MessageType:session_id`.
    pub fn umo(&self) -> Umo {
        Umo::new(&self.platform_id, self.message_type, &self.session_id)
    }

    /// Where replies to this message go: its chat, from the account that
    /// received it.
    pub fn reply_target(&self) -> SessionTarget {
        let mut target = SessionTarget::new(self.message_type, &self.session_id);
        target.account = Some(self.self_id.clone()).filter(|id| !id.is_empty());
        target
    }

    /// The text parts concatenated, like AstrBot's `message_str`.
    pub fn plain_text(&self) -> String {
        self.chain
            .iter()
            .filter_map(|part| match part {
                MessagePart::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether the bot was @-mentioned (the group wake check uses this).
    pub fn mentions_bot(&self) -> bool {
        self.chain
            .iter()
            .any(|part| matches!(part, MessagePart::At { is_bot: true, .. }))
    }

    /// Whether the message quotes one of the bot's own.
    pub fn replies_to_bot(&self) -> bool {
        self.chain
            .iter()
            .any(|part| matches!(part, MessagePart::Reply { to_bot: true, .. }))
    }
}

/// A chat on a platform: the last two parts of a UMO.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionTarget {
    pub message_type: MessageType,
    pub session_id: String,
    /// The bot account to send from, where one platform entry serves
    /// several (two QQ accounts on one OneBot socket); `None`: any.
    pub account: Option<String>,
}

impl SessionTarget {
    pub fn new(message_type: MessageType, session_id: &str) -> Self {
        SessionTarget {
            message_type,
            session_id: session_id.to_owned(),
            account: None,
        }
    }
}

impl From<&Umo> for SessionTarget {
    fn from(umo: &Umo) -> Self {
        SessionTarget::new(umo.message_type, &umo.session_id)
    }
}

/// One part of an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboundPart {
    Text(String),
    Image(Media),
    File { name: String, source: Media },
    Reply { message_id: String },
    At { target_id: String },
}

/// A message to send, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutboundChain {
    pub parts: Vec<OutboundPart>,
}

impl OutboundChain {
    pub fn new() -> Self {
        OutboundChain::default()
    }

    /// A chain holding one text part.
    pub fn text(text: impl Into<String>) -> Self {
        OutboundChain::new().with(OutboundPart::Text(text.into()))
    }

    pub fn with(mut self, part: OutboundPart) -> Self {
        self.parts.push(part);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_helpers() {
        let message = InboundMessage {
            platform_id: "qq".into(),
            message_type: MessageType::Group,
            session_id: "42".into(),
            sender: Sender::default(),
            self_id: "1".into(),
            message_id: "9".into(),
            chain: vec![
                MessagePart::At {
                    target_id: "1".into(),
                    is_bot: true,
                },
                MessagePart::Text(" hi".into()),
                MessagePart::Text(" there".into()),
            ],
        };
        assert_eq!(message.umo().to_string(), "qq:GroupMessage:42");
        assert_eq!(message.plain_text(), " hi there");
        assert!(message.mentions_bot());
        let mut from_the_receiving_account = SessionTarget::new(MessageType::Group, "42");
        from_the_receiving_account.account = Some(message.self_id.clone());
        assert_eq!(message.reply_target(), from_the_receiving_account);
    }
}
