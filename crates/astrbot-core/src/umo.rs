//! The unified message origin (UMO): `platform_id:MessageType:session_id`,
//! AstrBot's universal key for a chat on a platform.

use std::fmt;
use std::str::FromStr;

/// The platform id of chats through the developer API and the dashboard.
pub const WEBCHAT_PLATFORM_ID: &str = "webchat";

/// The kind of chat a UMO points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Group,
    Friend,
    Other,
}

impl MessageType {
    /// The name AstrBot writes in a UMO.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Group => "GroupMessage",
            MessageType::Friend => "FriendMessage",
            MessageType::Other => "OtherMessage",
        }
    }
}

/// Why a string is not a UMO. The text follows AstrBot's wording closely
/// enough for clients that only check the `Invalid umo:` prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UmoError {
    #[error("not enough values to unpack (expected 3, got {0})")]
    TooFewParts(usize),
    #[error("'{0}' is not a valid MessageType")]
    BadMessageType(String),
}

/// A parsed unified message origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Umo {
    pub platform_id: String,
    pub message_type: MessageType,
    pub session_id: String,
}

impl Umo {
    pub fn new(platform_id: &str, message_type: MessageType, session_id: &str) -> Self {
        Umo {
            platform_id: platform_id.to_owned(),
            message_type,
            session_id: session_id.to_owned(),
        }
    }

    /// The UMO of a webchat session opened through the developer API:
    /// `webchat:FriendMessage:webchat!<username>!<session_id>`.
    pub fn webchat(username: &str, session_id: &str) -> Self {
        Umo::new(
            WEBCHAT_PLATFORM_ID,
            MessageType::Friend,
            &format!("webchat!{username}!{session_id}"),
        )
    }
}

impl FromStr for Umo {
    type Err = UmoError;

    /// Splits on `:` at most twice, so the session id may itself contain `:`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.splitn(3, ':').collect();
        let [platform_id, message_type, session_id] = parts[..] else {
            return Err(UmoError::TooFewParts(parts.len()));
        };
        let message_type = match message_type {
            "GroupMessage" => MessageType::Group,
            "FriendMessage" => MessageType::Friend,
            "OtherMessage" => MessageType::Other,
            other => return Err(UmoError::BadMessageType(other.to_owned())),
        };
        Ok(Umo::new(platform_id, message_type, session_id))
    }
}

impl fmt::Display for Umo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.platform_id,
            self.message_type.as_str(),
            self.session_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_may_contain_colons() {
        let umo: Umo = "tg:GroupMessage:a:b:c".parse().unwrap();
        assert_eq!(umo.platform_id, "tg");
        assert_eq!(umo.message_type, MessageType::Group);
        assert_eq!(umo.session_id, "a:b:c");
        assert_eq!(umo.to_string(), "tg:GroupMessage:a:b:c");
    }

    #[test]
    fn short_or_mistyped_umos_are_rejected() {
        assert_eq!("broken-umo".parse::<Umo>(), Err(UmoError::TooFewParts(1)));
        assert!(matches!(
            "a:Private:b".parse::<Umo>(),
            Err(UmoError::BadMessageType(_))
        ));
    }
}
