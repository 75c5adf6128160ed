//! The `aiocqhttp` platform entry, with AstrBot's key names.

use std::time::Duration;

use crate::adapter::PlatformError;
use crate::config::PlatformConfig;

/// AstrBot's default reverse-WebSocket port.
pub const DEFAULT_PORT: u16 = 6199;
/// How long an action waits for its `echo`.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiocqhttpConfig {
    /// `ws_reverse_host`. AstrBot defaults to 0.0.0.0; we default to
    /// loopback so a token-less bot is not open to the network by accident.
    pub host: String,
    /// `ws_reverse_port`.
    pub port: u16,
    /// `ws_reverse_token`; empty means no check.
    pub token: Option<String>,
    /// Not an AstrBot key: how long actions wait for their answer.
    pub action_timeout: Duration,
    /// Ours: `ws_forward_url`, a OneBot WebSocket server to connect to
    /// instead of listening (forward mode); the token is sent as
    /// `Authorization: Bearer`.
    pub forward_url: Option<String>,
}

impl AiocqhttpConfig {
    pub fn new(host: &str, port: u16) -> Self {
        AiocqhttpConfig {
            host: host.to_owned(),
            port,
            token: None,
            action_timeout: DEFAULT_ACTION_TIMEOUT,
            forward_url: None,
        }
    }

    pub fn from_platform(config: &PlatformConfig) -> Result<Self, PlatformError> {
        let host = config
            .string("ws_reverse_host")
            .map(|host| host.trim().to_owned())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = config.u16("ws_reverse_port")?.unwrap_or(DEFAULT_PORT);
        let token = config
            .string("ws_reverse_token")
            .filter(|token| !token.is_empty());
        let forward_url = config
            .string("ws_forward_url")
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty());
        Ok(AiocqhttpConfig {
            token,
            forward_url,
            ..AiocqhttpConfig::new(&host, port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn astrbot_keys_and_defaults() {
        let entry = |value| PlatformConfig::from_json(&value).unwrap();
        let defaults = AiocqhttpConfig::from_platform(&entry(
            json!({"id": "q", "type": "aiocqhttp", "ws_reverse_token": ""}),
        ))
        .unwrap();
        assert_eq!(defaults, AiocqhttpConfig::new("127.0.0.1", 6199));
        let set = AiocqhttpConfig::from_platform(&entry(json!({
            "id": "q", "type": "aiocqhttp", "ws_reverse_host": "0.0.0.0",
            "ws_reverse_port": 7000, "ws_reverse_token": "s3cret",
        })))
        .unwrap();
        assert_eq!((set.host.as_str(), set.port), ("0.0.0.0", 7000));
        assert_eq!(set.token.as_deref(), Some("s3cret"));
    }
}
