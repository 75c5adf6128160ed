//! The `slack` platform entry, with AstrBot's key names (plus
//! `slack_api_base`, ours, so tests and proxies can point it elsewhere).

use std::fmt;
use std::time::Duration;

use crate::adapter::PlatformError;
use crate::config::PlatformConfig;

/// Slack's Web API.
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";
/// Where the Events API posts in webhook mode.
pub const DEFAULT_WEBHOOK_PATH: &str = "/slack/events";
/// AstrBot's default webhook port.
pub const DEFAULT_WEBHOOK_PORT: u16 = 6197;
/// How long one Web API call may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `slack_connection_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMode {
    /// Socket Mode: we open a WebSocket to Slack with the app token.
    Socket,
    /// Events API: Slack posts signed requests to our HTTP server.
    Webhook,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SlackConfig {
    /// `bot_token` (`xoxb-…`), for the Web API.
    pub bot_token: String,
    /// `app_token` (`xapp-…`), for Socket Mode.
    pub app_token: Option<String>,
    /// `signing_secret`, to verify Events API requests.
    pub signing_secret: Option<String>,
    /// `slack_connection_mode`, `socket` unless set.
    pub mode: ConnectionMode,
    /// `slack_webhook_host`. AstrBot defaults to 0.0.0.0; we default to
    /// loopback (Slack needs HTTPS anyway, so a proxy sits in front).
    pub webhook_host: String,
    /// `slack_webhook_port`.
    pub webhook_port: u16,
    /// `slack_webhook_path`, always starting with `/`.
    pub webhook_path: String,
    /// `slack_api_base` (ours), without a trailing `/`.
    pub api_base: String,
    /// Not a config key: the timeout of each Web API call.
    pub request_timeout: Duration,
}

/// Tokens and the secret stay out of logs.
impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| if set { "<set>" } else { "<unset>" };
        f.debug_struct("SlackConfig")
            .field("bot_token", &redacted(!self.bot_token.is_empty()))
            .field("app_token", &redacted(self.app_token.is_some()))
            .field("signing_secret", &redacted(self.signing_secret.is_some()))
            .field("mode", &self.mode)
            .field("webhook_host", &self.webhook_host)
            .field("webhook_port", &self.webhook_port)
            .field("webhook_path", &self.webhook_path)
            .field("api_base", &self.api_base)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl SlackConfig {
    /// Socket Mode with the given tokens and Slack's real API.
    pub fn socket(bot_token: &str, app_token: &str) -> Self {
        SlackConfig {
            bot_token: bot_token.to_owned(),
            app_token: Some(app_token.to_owned()),
            signing_secret: None,
            mode: ConnectionMode::Socket,
            webhook_host: "127.0.0.1".to_owned(),
            webhook_port: DEFAULT_WEBHOOK_PORT,
            webhook_path: DEFAULT_WEBHOOK_PATH.to_owned(),
            api_base: DEFAULT_API_BASE.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Events API on `host:port` with the given bot token and secret.
    pub fn webhook(bot_token: &str, signing_secret: &str, host: &str, port: u16) -> Self {
        SlackConfig {
            app_token: None,
            signing_secret: Some(signing_secret.to_owned()),
            mode: ConnectionMode::Webhook,
            webhook_host: host.to_owned(),
            webhook_port: port,
            ..SlackConfig::socket(bot_token, "")
        }
    }

    pub fn from_platform(config: &PlatformConfig) -> Result<Self, PlatformError> {
        let text = |key: &str| {
            config
                .string(key)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let bot_token = text("bot_token")
            .ok_or_else(|| PlatformError::Config("slack: bot_token (xoxb-…) is not set".into()))?;
        let mode = match text("slack_connection_mode").as_deref() {
            None | Some("socket") => ConnectionMode::Socket,
            Some("webhook") => ConnectionMode::Webhook,
            Some(other) => {
                return Err(PlatformError::Config(format!(
                    "slack_connection_mode must be socket or webhook, not {other}"
                )))
            }
        };
        let app_token = text("app_token");
        let signing_secret = text("signing_secret");
        match mode {
            ConnectionMode::Socket if app_token.is_none() => {
                return Err(PlatformError::Config(
                    "slack: Socket Mode needs app_token (xapp-…)".into(),
                ))
            }
            ConnectionMode::Webhook if signing_secret.is_none() => {
                return Err(PlatformError::Config(
                    "slack: webhook mode needs signing_secret".into(),
                ))
            }
            _ => {}
        }
        let mut webhook_path = text("slack_webhook_path").unwrap_or(DEFAULT_WEBHOOK_PATH.into());
        if !webhook_path.starts_with('/') {
            webhook_path.insert(0, '/');
        }
        let api_base = text("slack_api_base")
            .unwrap_or(DEFAULT_API_BASE.into())
            .trim_end_matches('/')
            .to_owned();
        Ok(SlackConfig {
            bot_token,
            app_token,
            signing_secret,
            mode,
            webhook_host: text("slack_webhook_host").unwrap_or("127.0.0.1".into()),
            webhook_port: config
                .u16("slack_webhook_port")?
                .unwrap_or(DEFAULT_WEBHOOK_PORT),
            webhook_path,
            api_base,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<SlackConfig, PlatformError> {
        SlackConfig::from_platform(&PlatformConfig::from_json(&value).unwrap())
    }

    #[test]
    fn astrbot_keys_and_defaults() {
        let socket = parse(json!({
            "id": "s", "type": "slack", "bot_token": "xoxb-1", "app_token": "xapp-1",
            "signing_secret": "", "slack_connection_mode": "socket",
        }))
        .unwrap();
        assert_eq!(socket, SlackConfig::socket("xoxb-1", "xapp-1"));
        let webhook = parse(json!({
            "id": "s", "type": "slack", "bot_token": "xoxb-1", "signing_secret": "sec",
            "slack_connection_mode": "webhook", "slack_webhook_host": "0.0.0.0",
            "slack_webhook_port": "7000", "slack_webhook_path": "hook",
            "slack_api_base": "http://127.0.0.1:9/api/",
        }))
        .unwrap();
        assert_eq!(webhook.mode, ConnectionMode::Webhook);
        assert_eq!(
            (webhook.webhook_host.as_str(), webhook.webhook_port),
            ("0.0.0.0", 7000)
        );
        assert_eq!(webhook.webhook_path, "/hook");
        assert_eq!(webhook.api_base, "http://127.0.0.1:9/api");
        assert!(!format!("{webhook:?}").contains("xoxb-1"));
    }

    #[test]
    fn missing_keys_are_config_errors() {
        let no_bot = parse(json!({"id": "s", "type": "slack", "app_token": "xapp"}));
        assert!(no_bot.unwrap_err().to_string().contains("bot_token"));
        let no_app = parse(json!({"id": "s", "type": "slack", "bot_token": "xoxb"}));
        assert!(no_app.unwrap_err().to_string().contains("app_token"));
        let no_secret = parse(json!({"id": "s", "type": "slack", "bot_token": "xoxb",
            "slack_connection_mode": "webhook"}));
        assert!(no_secret
            .unwrap_err()
            .to_string()
            .contains("signing_secret"));
        let bad_mode = parse(json!({"id": "s", "type": "slack", "bot_token": "xoxb",
            "slack_connection_mode": "rtm"}));
        assert!(bad_mode.unwrap_err().to_string().contains("rtm"));
    }
}
