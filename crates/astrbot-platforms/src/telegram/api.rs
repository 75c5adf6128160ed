//! A thin Bot API client: `{base}{token}/{method}` calls with JSON or
//! multipart bodies, Telegram's `{ok, result | error_code, description}`
//! envelope turned into results and [`PlatformError`]s.
//!
//! A call Telegram rate-limits (`429` with `parameters.retry_after`) is
//! tried once more after the wait when that is short; a longer wait fails
//! the call with the wait in its message.
//!
//! Every URL here contains the bot token, so URLs are never logged and
//! never put into errors: transport errors drop their URL and any text
//! that came back is scrubbed of the token.

use std::time::Duration;

use reqwest::multipart::Form;
use serde_json::Value;

use crate::adapter::{retry_wait, with_one_retry, PlatformError, Refusal};
use crate::download::read_limited;

/// Requests other than long polls (uploads included) give up after this.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time a long poll may take beyond its `timeout` parameter.
pub(super) const POLL_SLACK: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct BotApi {
    client: reqwest::Client,
    api_base: String,
    file_base: String,
    token: String,
}

impl BotApi {
    pub(super) fn new(api_base: &str, file_base: &str, token: &str) -> Result<Self, PlatformError> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| {
                PlatformError::Config(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(BotApi {
            client,
            api_base: api_base.to_owned(),
            file_base: file_base.to_owned(),
            token: token.to_owned(),
        })
    }

    /// The bytes of a file `getFile` named, at most `limit` of them. The
    /// download URL holds the bot token, so it never leaves this client:
    /// not in errors, not to the model.
    pub(super) async fn download(
        &self,
        file_path: &str,
        limit: usize,
    ) -> Result<Vec<u8>, PlatformError> {
        let failed = |reason: String| PlatformError::Action {
            action: "download".to_owned(),
            retcode: 0,
            message: reason,
        };
        let sent = self
            .client
            .get(self.file_url(file_path))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        read_limited(sent, limit).await.map_err(failed)
    }

    /// Where Telegram serves a file from `getFile`; contains the token.
    fn file_url(&self, file_path: &str) -> String {
        format!(
            "{}{}/{}",
            self.file_base,
            self.token,
            file_path.trim_start_matches('/')
        )
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}{}/{method}", self.api_base, self.token)
    }

    /// A method with a JSON body; returns its `result`.
    pub(super) async fn call(&self, method: &str, params: &Value) -> Result<Value, PlatformError> {
        self.call_with_timeout(method, params, REQUEST_TIMEOUT)
            .await
    }

    pub(super) async fn call_with_timeout(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, PlatformError> {
        self.with_one_retry(method, timeout, || {
            Ok(self
                .client
                .post(self.method_url(method))
                .timeout(timeout)
                .json(params))
        })
        .await
    }

    /// A method with a multipart body (file uploads). `form` builds the
    /// body afresh for each attempt.
    pub(super) async fn call_multipart(
        &self,
        method: &str,
        form: impl Fn() -> Result<Form, PlatformError>,
    ) -> Result<Value, PlatformError> {
        self.with_one_retry(method, REQUEST_TIMEOUT, || {
            Ok(self
                .client
                .post(self.method_url(method))
                .timeout(REQUEST_TIMEOUT)
                .multipart(form()?))
        })
        .await
    }

    /// Sends what `request` builds, once more after a short rate-limit
    /// wait.
    async fn with_one_retry(
        &self,
        method: &str,
        timeout: Duration,
        request: impl Fn() -> Result<reqwest::RequestBuilder, PlatformError>,
    ) -> Result<Value, PlatformError> {
        with_one_retry("telegram", method, || async {
            let sent = request()?.send().await;
            self.finish(method, timeout, sent).await
        })
        .await
    }

    async fn finish(
        &self,
        method: &str,
        timeout: Duration,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value, Refusal> {
        let response = sent.map_err(|error| self.transport_error(method, timeout, error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(method, timeout, error))?;
        let Ok(envelope) = serde_json::from_slice::<Value>(&body) else {
            return Err(PlatformError::Action {
                action: method.to_owned(),
                retcode: i64::from(status.as_u16()),
                message: format!("HTTP {status} without a Bot API answer"),
            }
            .into());
        };
        if envelope.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(envelope.get("result").cloned().unwrap_or(Value::Null));
        }
        let retcode = envelope
            .get("error_code")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| i64::from(status.as_u16()));
        let mut message = envelope
            .get("description")
            .and_then(Value::as_str)
            .map(|text| self.scrub(text))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let retry_after = envelope
            .pointer("/parameters/retry_after")
            .and_then(Value::as_i64);
        if let Some(seconds) = retry_after {
            message.push_str(&format!(" (retry after {seconds} s)"));
        }
        Err(Refusal {
            error: PlatformError::Action {
                action: method.to_owned(),
                retcode,
                message,
            },
            retry_after: retry_after
                .filter(|_| retcode == 429)
                .and_then(|seconds| retry_wait(seconds as f64)),
        })
    }

    fn transport_error(
        &self,
        method: &str,
        timeout: Duration,
        error: reqwest::Error,
    ) -> PlatformError {
        if error.is_timeout() {
            return PlatformError::Timeout {
                action: method.to_owned(),
                after: timeout,
            };
        }
        // The URL holds the token; drop it, then describe the cause chain.
        let error = error.without_url();
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        PlatformError::Other(format!(
            "{method}: cannot reach the Telegram Bot API: {}",
            self.scrub(&reason)
        ))
    }

    /// Replaces the token wherever it shows up in text from the outside.
    fn scrub(&self, text: &str) -> String {
        if self.token.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.token, "<token>")
        }
    }
}
