//! The REST side: `GET /gateway/bot` and `POST /channels/{id}/messages`
//! with `Authorization: Bot <token>`. A 429 is waited out once
//! (`retry_after`); other failures become [`PlatformError::Action`] with
//! Discord's own message and never the token.

use reqwest::{header, Method, StatusCode};
use serde_json::Value;

use super::config::DiscordConfig;
use crate::adapter::{retry_wait, with_one_retry, PlatformError, Refusal};

/// One request body.
pub(super) enum Body {
    None,
    Json(Value),
    /// `multipart/form-data` with its boundary.
    Multipart {
        boundary: String,
        data: Vec<u8>,
    },
}

pub(super) struct Rest {
    http: reqwest::Client,
    api_base: String,
    authorization: String,
}

impl Rest {
    pub fn new(config: &DiscordConfig) -> Result<Self, PlatformError> {
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .user_agent(concat!(
                "DiscordBot (https://github.com/AstrBotDevs/AstrBot, ",
                env!("CARGO_PKG_VERSION"),
                ") astrbot-rs"
            ))
            .build()
            .map_err(|error| {
                PlatformError::Other(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(Rest {
            http,
            api_base: config.api_base.clone(),
            authorization: format!("Bot {}", config.token),
        })
    }

    /// The gateway URL Discord wants this bot to use. A 401 is the bad
    /// token case, reported like the gateway's close code 4004.
    pub async fn gateway_url(&self) -> Result<String, PlatformError> {
        let answer = self
            .call("get gateway", Method::GET, "/gateway/bot", &Body::None)
            .await
            .map_err(|error| match error {
                PlatformError::Action { retcode: 401, .. } => {
                    bad_token("HTTP 401 from /gateway/bot")
                }
                other => other,
            })?;
        answer
            .get("url")
            .and_then(Value::as_str)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| PlatformError::Other("Discord's /gateway/bot answer has no url".into()))
    }

    /// Creates a message; returns Discord's message object.
    pub async fn create_message(
        &self,
        channel_id: &str,
        body: &Body,
    ) -> Result<Value, PlatformError> {
        if channel_id.is_empty() || !channel_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PlatformError::Unsupported(format!(
                "not a Discord channel id: {channel_id:?}"
            )));
        }
        let path = format!("/channels/{channel_id}/messages");
        self.call("discord create message", Method::POST, &path, body)
            .await
    }

    /// A call that waits out one 429 and retries.
    async fn call(
        &self,
        action: &str,
        method: Method,
        path: &str,
        body: &Body,
    ) -> Result<Value, PlatformError> {
        with_one_retry("discord", action, || {
            self.call_once(action, method.clone(), path, body)
        })
        .await
    }

    async fn call_once(
        &self,
        action: &str,
        method: Method,
        path: &str,
        body: &Body,
    ) -> Result<Value, Refusal> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api_base))
            .header(header::AUTHORIZATION, &self.authorization);
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Multipart { boundary, data } => request
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(data.clone()),
        };
        let response = request.send().await.map_err(|error| {
            PlatformError::Other(format!(
                "{action}: Discord unreachable: {}",
                error.without_url()
            ))
        })?;
        let status = response.status();
        let retry_header = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<f64>().ok());
        let text = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS).then(|| {
            answer
                .get("retry_after")
                .and_then(Value::as_f64)
                .or(retry_header)
                .unwrap_or(1.0)
        });
        let mut message = error_message(status, &answer, &text);
        if let Some(seconds) = retry_after {
            message.push_str(&format!(" (retry after {seconds} s)"));
        }
        Err(Refusal {
            error: PlatformError::Action {
                action: action.to_owned(),
                retcode: i64::from(status.as_u16()),
                message,
            },
            retry_after: retry_after.and_then(|seconds| retry_wait(seconds.max(0.0))),
        })
    }
}

pub(super) fn bad_token(detail: &str) -> PlatformError {
    PlatformError::Other(format!(
        "Discord rejected the bot token ({detail}); check discord_token"
    ))
}

/// Discord's `{"message", "code"}` error body, else the status reason.
fn error_message(status: StatusCode, answer: &Value, text: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("error");
    match answer.get("message").and_then(Value::as_str) {
        Some(message) => match answer.get("code").and_then(Value::as_i64) {
            Some(code) if code != 0 => format!("{message} (Discord code {code})"),
            _ => message.to_owned(),
        },
        None if text.trim().is_empty() => reason.to_owned(),
        None => format!("{reason}: {}", text.chars().take(200).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn discord_errors_are_readable() {
        let body = json!({"message": "Missing Permissions", "code": 50013});
        assert_eq!(
            error_message(StatusCode::FORBIDDEN, &body, ""),
            "Missing Permissions (Discord code 50013)"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, &Value::Null, ""),
            "Bad Gateway"
        );
    }
}
