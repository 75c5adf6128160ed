//! Slack's Web API over HTTPS: `POST {api_base}/{method}` with a Bearer
//! token; every answer carries `ok`, and `ok: false` carries `error`.
//! Errors name the method and Slack's reason, never a token. A call Slack
//! rate-limits (`429` with `Retry-After`) is tried once more after the
//! wait when that is short.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde_json::Value;

use crate::adapter::{retry_wait, with_one_retry, PlatformError, Refusal};
use crate::download::read_limited;

/// A request body: JSON for the methods that take it, a form for the
/// ones that do not (`files.getUploadURLExternal`, `users.info` …).
#[derive(Clone)]
pub(super) enum Body {
    Empty,
    Json(Value),
    Form(Vec<(&'static str, String)>),
}

pub(super) struct WebApi {
    http: reqwest::Client,
    base: String,
}

impl WebApi {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, PlatformError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| PlatformError::Other(format!("cannot build HTTP client: {error}")))?;
        Ok(WebApi {
            http,
            base: base.to_owned(),
        })
    }

    /// Calls `method`; the answer when `ok` is true.
    pub async fn call(
        &self,
        method: &str,
        token: &str,
        body: Body,
    ) -> Result<Value, PlatformError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| PlatformError::Config("the Slack token has invalid characters".into()))?;
        auth.set_sensitive(true);
        with_one_retry("slack", method, || {
            self.call_once(method, &auth, body.clone())
        })
        .await
    }

    async fn call_once(
        &self,
        method: &str,
        auth: &HeaderValue,
        body: Body,
    ) -> Result<Value, Refusal> {
        let request = self
            .http
            .post(format!("{}/{method}", self.base))
            .header(AUTHORIZATION, auth.clone());
        let request = match body {
            Body::Empty => request,
            Body::Json(value) => request.json(&value),
            Body::Form(fields) => request.form(&fields),
        };
        let response = request.send().await.map_err(|error| {
            PlatformError::Other(format!(
                "{method}: cannot reach Slack: {}",
                error.without_url()
            ))
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let answer: Value = match serde_json::from_str(&text) {
            Ok(answer) => answer,
            Err(_) if status.as_u16() == 429 => {
                serde_json::json!({"ok": false, "error": "ratelimited"})
            }
            Err(_) => {
                return Err(action_error(
                    method,
                    status.as_u16(),
                    format!("HTTP {status} without a JSON answer"),
                )
                .into())
            }
        };
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer);
        }
        let code = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error");
        let mut message = describe(code);
        if let Some(needed) = answer.get("needed").and_then(Value::as_str) {
            message.push_str(&format!(" (needs scope {needed})"));
        }
        if let Some(seconds) = &retry_after {
            message.push_str(&format!(" (retry after {seconds}s)"));
        }
        let wait = retry_after
            .filter(|_| status.as_u16() == 429 || code == "ratelimited")
            .and_then(|seconds| seconds.trim().parse::<f64>().ok())
            .and_then(retry_wait);
        Err(Refusal {
            error: action_error(method, status.as_u16(), message),
            retry_after: wait,
        })
    }

    /// Downloads a file Slack shares privately (`url_private`), which only
    /// the bot token opens: at most `limit` bytes, with their type. The
    /// token goes to Slack's own hosts only (or the API's, for a gateway
    /// in front of it), never to a host an event names otherwise.
    pub async fn download_private(
        &self,
        url: &str,
        token: &str,
        limit: usize,
    ) -> Result<(Vec<u8>, Option<String>), PlatformError> {
        let failed = |reason: String| PlatformError::Other(format!("file download: {reason}"));
        let url = reqwest::Url::parse(url).map_err(|_| failed("not a URL".into()))?;
        if !self.may_have_the_token(&url) {
            return Err(failed(format!(
                "{} is not a Slack host",
                url.host_str().unwrap_or_default()
            )));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| PlatformError::Config("the Slack token has invalid characters".into()))?;
        auth.set_sensitive(true);
        let sent = self.http.get(url).header(AUTHORIZATION, auth).send().await;
        let kind = sent.as_ref().ok().and_then(|response| {
            let kind = response.headers().get("content-type")?.to_str().ok()?;
            Some(kind.to_owned())
        });
        let bytes = read_limited(sent, limit).await.map_err(failed)?;
        Ok((bytes, kind))
    }

    /// Whether the bot token may be sent to `url`'s host.
    fn may_have_the_token(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let slack = ["slack.com", "slack-edge.com"]
            .iter()
            .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")));
        let api = reqwest::Url::parse(&self.base).ok();
        let same_as_api = api.is_some_and(|api| {
            api.host_str() == Some(host)
                && api.port_or_known_default() == url.port_or_known_default()
        });
        url.scheme() == "https" && slack || same_as_api
    }

    /// Uploads raw bytes to a URL from `files.getUploadURLExternal`
    /// (pre-signed: no token is sent there).
    pub async fn upload(&self, url: &str, data: Vec<u8>) -> Result<(), PlatformError> {
        let response = self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .map_err(|error| {
                PlatformError::Other(format!(
                    "file upload: cannot reach Slack: {}",
                    error.without_url()
                ))
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(action_error(
                "file upload",
                status.as_u16(),
                format!("HTTP {status}"),
            ))
        }
    }
}

fn action_error(method: &str, status: u16, message: String) -> PlatformError {
    PlatformError::Action {
        action: method.to_owned(),
        retcode: i64::from(status),
        message,
    }
}

/// Slack's error code with a hint for the ones users hit most.
fn describe(code: &str) -> String {
    let hint = match code {
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
            "the token was rejected"
        }
        "not_allowed_token_type" => "wrong kind of token (bot xoxb- vs app xapp-)",
        "missing_scope" => "the app lacks a permission scope",
        "channel_not_found" => "no such channel, or the bot cannot see it",
        "not_in_channel" => "the bot is not a member of the channel",
        "is_archived" => "the channel is archived",
        "msg_too_long" => "the message is too long",
        "no_text" => "the message is empty",
        "ratelimited" => "rate limited by Slack",
        "user_not_found" => "no such user",
        _ => return code.to_owned(),
    };
    format!("{code}: {hint}")
}

/// Whether an error is Slack refusing the token itself (retrying with the
/// same token cannot help).
pub(super) fn is_auth_error(error: &PlatformError) -> bool {
    matches!(error, PlatformError::Action { message, .. }
        if ["invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type"]
            .iter()
            .any(|code| message.starts_with(code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_described() {
        let error = action_error("chat.postMessage", 200, describe("not_in_channel"));
        assert_eq!(
            error.to_string(),
            "chat.postMessage failed: retcode 200: not_in_channel: the bot is not a member of the channel"
        );
        assert!(!is_auth_error(&error));
        assert!(is_auth_error(&action_error(
            "auth.test",
            200,
            describe("invalid_auth")
        )));
        assert_eq!(describe("weird"), "weird");
    }

    #[test]
    fn the_bot_token_goes_to_slack_hosts_and_the_api_host_only() {
        let api = WebApi::new("https://slack.com/api", Duration::from_secs(5)).unwrap();
        let gateway = WebApi::new("http://127.0.0.1:8080/api", Duration::from_secs(5)).unwrap();
        let allowed =
            |api: &WebApi, url: &str| api.may_have_the_token(&reqwest::Url::parse(url).unwrap());

        assert!(allowed(
            &api,
            "https://files.slack.com/files-pri/T1-F1/cat.png"
        ));
        assert!(allowed(&api, "https://slack.com/files-pri/T1-F1/cat.png"));
        assert!(allowed(&api, "https://a.slack-edge.com/x.png"));
        assert!(!allowed(
            &api,
            "http://files.slack.com/files-pri/T1-F1/cat.png"
        ));
        assert!(!allowed(
            &api,
            "https://files.slack.com.evil.example/cat.png"
        ));
        assert!(!allowed(&api, "https://evilslack.com/cat.png"));
        assert!(allowed(&gateway, "http://127.0.0.1:8080/files-pri/cat.png"));
        assert!(!allowed(
            &gateway,
            "http://127.0.0.1:9090/files-pri/cat.png"
        ));
    }
}
