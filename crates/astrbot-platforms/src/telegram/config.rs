//! The `telegram` platform entry: AstrBot's keys (`telegram_token`,
//! `telegram_api_base_url`, `telegram_file_base_url`) plus ours for the
//! update mode, the webhook server and the long-polling timeout.

use std::fmt;
use std::time::Duration;

use crate::adapter::PlatformError;
use crate::config::PlatformConfig;

/// AstrBot's default; the token is appended: `{base}{token}/getMe`.
pub const DEFAULT_API_BASE_URL: &str = "https://api.telegram.org/bot";
/// AstrBot's default; file URLs are `{base}{token}/{file_path}`.
pub const DEFAULT_FILE_BASE_URL: &str = "https://api.telegram.org/file/bot";
/// Seconds a `getUpdates` long poll is held by Telegram.
pub const DEFAULT_POLL_TIMEOUT: u64 = 30;
/// Port of our webhook server; one of the ports Telegram itself allows, so
/// it also works without a reverse proxy in front.
pub const DEFAULT_WEBHOOK_PORT: u16 = 8443;

/// How updates reach us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TelegramMode {
    /// `getUpdates` long polling (`telegram_mode: "polling"`, the default).
    #[default]
    Polling,
    /// Telegram POSTs updates to our own HTTP server (`"webhook"`).
    Webhook,
}

/// A parsed `telegram` entry. `Debug` never prints the token or secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TelegramConfig {
    /// `telegram_token`, the BotFather token.
    pub token: String,
    /// `telegram_api_base_url`.
    pub api_base_url: String,
    /// `telegram_file_base_url`.
    pub file_base_url: String,
    /// `telegram_mode`.
    pub mode: TelegramMode,
    /// `telegram_poll_timeout`, at least one second.
    pub poll_timeout: Duration,
    /// `telegram_webhook_host`; loopback by default (put a TLS reverse
    /// proxy in front, as Telegram only posts to HTTPS).
    pub webhook_host: String,
    /// `telegram_webhook_port`.
    pub webhook_port: u16,
    /// `telegram_webhook_secret`: required in webhook mode, compared with
    /// the `X-Telegram-Bot-Api-Secret-Token` header.
    pub webhook_secret: Option<String>,
    /// `telegram_webhook_url`: when set, the adapter registers it (with the
    /// secret) through `setWebhook` at start; otherwise set it yourself.
    pub webhook_url: Option<String>,
    /// `telegram_media_group_timeout` (seconds, AstrBot's 2.5): an album
    /// is answered once no photo of it came for this long.
    pub media_group_timeout: Duration,
    /// `telegram_media_group_max_wait` (seconds, AstrBot's 10): or once its
    /// first photo came this long ago.
    pub media_group_max_wait: Duration,
}

impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("token", &"<redacted>")
            .field("api_base_url", &self.api_base_url)
            .field("file_base_url", &self.file_base_url)
            .field("mode", &self.mode)
            .field("poll_timeout", &self.poll_timeout)
            .field("webhook_host", &self.webhook_host)
            .field("webhook_port", &self.webhook_port)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("webhook_url", &self.webhook_url)
            .field("media_group_timeout", &self.media_group_timeout)
            .field("media_group_max_wait", &self.media_group_max_wait)
            .finish()
    }
}

impl TelegramConfig {
    /// Polling against the real Bot API with `token`.
    pub fn new(token: &str) -> Self {
        TelegramConfig {
            token: token.to_owned(),
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            file_base_url: DEFAULT_FILE_BASE_URL.to_owned(),
            mode: TelegramMode::Polling,
            poll_timeout: Duration::from_secs(DEFAULT_POLL_TIMEOUT),
            webhook_host: "127.0.0.1".to_owned(),
            webhook_port: DEFAULT_WEBHOOK_PORT,
            webhook_secret: None,
            webhook_url: None,
            media_group_timeout: Duration::from_millis(2500),
            media_group_max_wait: Duration::from_secs(10),
        }
    }

    pub fn from_platform(config: &PlatformConfig) -> Result<Self, PlatformError> {
        let text = |key: &str| {
            config
                .string(key)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let token = text("telegram_token")
            .ok_or_else(|| PlatformError::Config("telegram_token is not set".into()))?;
        let mut parsed = TelegramConfig::new(&token);
        if let Some(base) = text("telegram_api_base_url") {
            parsed.api_base_url = base;
        }
        if let Some(base) = text("telegram_file_base_url") {
            parsed.file_base_url = base;
        }
        parsed.mode = match text("telegram_mode").map(|mode| mode.to_ascii_lowercase()) {
            None => TelegramMode::Polling,
            Some(mode) if mode == "polling" => TelegramMode::Polling,
            Some(mode) if mode == "webhook" => TelegramMode::Webhook,
            Some(other) => {
                return Err(PlatformError::Config(format!(
                    "telegram_mode must be polling or webhook, not {other}"
                )))
            }
        };
        if let Some(seconds) = text("telegram_poll_timeout") {
            let seconds: u64 = seconds.parse().map_err(|_| {
                PlatformError::Config(format!(
                    "telegram_poll_timeout is not a number of seconds: {seconds}"
                ))
            })?;
            parsed.poll_timeout = Duration::from_secs(seconds.max(1));
        }
        for (key, setting) in [
            (
                "telegram_media_group_timeout",
                &mut parsed.media_group_timeout,
            ),
            (
                "telegram_media_group_max_wait",
                &mut parsed.media_group_max_wait,
            ),
        ] {
            if let Some(seconds) = text(key) {
                *setting = seconds
                    .parse::<f64>()
                    .ok()
                    .filter(|seconds| seconds.is_finite())
                    .and_then(|seconds| Duration::try_from_secs_f64(seconds.min(3600.0)).ok())
                    .ok_or_else(|| {
                        PlatformError::Config(format!(
                            "{key} is not a number of seconds: {seconds}"
                        ))
                    })?;
            }
        }
        if let Some(host) = text("telegram_webhook_host") {
            parsed.webhook_host = host;
        }
        if let Some(port) = config.u16("telegram_webhook_port")? {
            parsed.webhook_port = port;
        }
        parsed.webhook_secret = text("telegram_webhook_secret");
        parsed.webhook_url = text("telegram_webhook_url");
        if parsed.mode == TelegramMode::Webhook && parsed.webhook_secret.is_none() {
            return Err(PlatformError::Config(
                "telegram_webhook_secret is required in webhook mode".into(),
            ));
        }
        Ok(parsed)
    }
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
        let config = TelegramConfig::from_platform(&entry(json!({
            "id": "tg", "type": "telegram", "telegram_token": " 123:abc ",
            "telegram_api_base_url": "", "telegram_file_base_url": "",
        })))
        .unwrap();
        assert_eq!(config, TelegramConfig::new("123:abc"));
        assert_eq!(config.mode, TelegramMode::Polling);
        assert_eq!(config.poll_timeout, Duration::from_secs(30));

        let config = TelegramConfig::from_platform(&entry(json!({
            "id": "tg", "type": "telegram", "telegram_token": "123:abc",
            "telegram_api_base_url": "http://127.0.0.1:1/bot",
            "telegram_mode": "Webhook", "telegram_webhook_port": "9000",
            "telegram_webhook_secret": "s3", "telegram_poll_timeout": 0,
            "telegram_media_group_timeout": 1.5, "telegram_media_group_max_wait": "4",
        })))
        .unwrap();
        assert_eq!(config.media_group_timeout, Duration::from_millis(1500));
        assert_eq!(config.media_group_max_wait, Duration::from_secs(4));
        assert_eq!(config.api_base_url, "http://127.0.0.1:1/bot");
        assert_eq!(config.mode, TelegramMode::Webhook);
        assert_eq!(config.webhook_port, 9000);
        assert_eq!(config.poll_timeout, Duration::from_secs(1));
        assert!(!format!("{config:?}").contains("123:abc"));
        assert!(!format!("{config:?}").contains("s3\""));
    }

    #[test]
    fn bad_entries_are_config_errors() {
        let cases = [
            json!({"id": "tg", "type": "telegram"}),
            json!({"id": "tg", "type": "telegram", "telegram_token": "t", "telegram_mode": "push"}),
            json!({"id": "tg", "type": "telegram", "telegram_token": "t", "telegram_mode": "webhook"}),
            json!({"id": "tg", "type": "telegram", "telegram_token": "t", "telegram_poll_timeout": "x"}),
            json!({"id": "tg", "type": "telegram", "telegram_token": "t", "telegram_media_group_timeout": "-1"}),
        ];
        for case in cases {
            let error = TelegramConfig::from_platform(&entry(case)).unwrap_err();
            assert!(matches!(error, PlatformError::Config(_)), "{error}");
        }
    }
}
