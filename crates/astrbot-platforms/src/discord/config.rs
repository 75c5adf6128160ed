//! The `discord` platform entry: AstrBot's `discord_token` plus our
//! `discord_api_base` and `discord_gateway_url` (for proxies and tests).

use std::fmt;
use std::time::Duration;

use crate::adapter::PlatformError;
use crate::config::PlatformConfig;

/// Discord's REST API, version 10.
pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";
/// GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = 1 | 512 | 4096 | 32768;
/// How long an HTTP call to the REST API may take.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause before reconnecting after a dropped socket or an Invalid
/// Session (Discord asks for 1–5 s).
pub const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_secs(2);

#[derive(Clone, PartialEq, Eq)]
pub struct DiscordConfig {
    /// `discord_token`, the bot token (without the `Bot ` prefix).
    pub token: String,
    /// `discord_api_base`, without a trailing slash.
    pub api_base: String,
    /// `discord_gateway_url`; `None` asks `GET {api_base}/gateway/bot`.
    pub gateway_url: Option<String>,
    /// Not a config key: timeout of REST calls and of the gateway's
    /// connect and Hello.
    pub http_timeout: Duration,
    /// Not a config key: see [`DEFAULT_RECONNECT_DELAY`].
    pub reconnect_delay: Duration,
}

/// Never prints the token.
impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("gateway_url", &self.gateway_url)
            .field("http_timeout", &self.http_timeout)
            .field("reconnect_delay", &self.reconnect_delay)
            .finish()
    }
}

impl DiscordConfig {
    pub fn new(token: &str) -> Self {
        DiscordConfig {
            token: token.trim().to_owned(),
            api_base: DEFAULT_API_BASE.to_owned(),
            gateway_url: None,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
        }
    }

    pub fn from_platform(config: &PlatformConfig) -> Result<Self, PlatformError> {
        let token = config
            .string("discord_token")
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                PlatformError::Config(format!("{}: discord_token is empty", config.id))
            })?;
        // People paste the header value; Discord wants the bare token.
        let token = token
            .strip_prefix("Bot ")
            .unwrap_or(&token)
            .trim()
            .to_owned();
        let mut discord = DiscordConfig::new(&token);
        if let Some(base) = non_empty(config, "discord_api_base") {
            discord.api_base = base.trim_end_matches('/').to_owned();
        }
        discord.gateway_url = non_empty(config, "discord_gateway_url");
        Ok(discord)
    }
}

fn non_empty(config: &PlatformConfig, key: &str) -> Option<String> {
    config
        .string(key)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(value: serde_json::Value) -> PlatformConfig {
        PlatformConfig::from_json(&value).unwrap()
    }

    #[test]
    fn astrbot_keys_and_defaults() {
        let config = DiscordConfig::from_platform(&entry(json!({
            "id": "dc", "type": "discord", "discord_token": " Bot abc.def ",
            "discord_proxy": "", "discord_gateway_url": "",
        })))
        .unwrap();
        assert_eq!(config, DiscordConfig::new("abc.def"));
        assert_eq!(config.api_base, "https://discord.com/api/v10");
        assert!(!format!("{config:?}").contains("abc.def"));

        let set = DiscordConfig::from_platform(&entry(json!({
            "id": "dc", "type": "discord", "discord_token": "t",
            "discord_api_base": "http://127.0.0.1:9/api/v10/",
            "discord_gateway_url": "ws://127.0.0.1:8",
        })))
        .unwrap();
        assert_eq!(set.api_base, "http://127.0.0.1:9/api/v10");
        assert_eq!(set.gateway_url.as_deref(), Some("ws://127.0.0.1:8"));
    }

    #[test]
    fn token_is_required() {
        let error = DiscordConfig::from_platform(&entry(json!({"id": "dc", "type": "discord"})))
            .unwrap_err();
        assert!(error.to_string().contains("discord_token"));
        assert_eq!(INTENTS, 37377);
    }
}
