//! An OpenAI-compatible chat-completions provider: OpenAI itself and the
//! many servers that copy its API (DeepSeek, Ollama, vLLM, OpenRouter …).
//!
//! - `wire`: request body and lenient answer types;
//! - `sse`: the event-stream parser;
//! - `stream`: streamed answers as a `ChatStream`;
//! - `keys`: key resolution, rotation and scrubbing;
//! - `plain_http`, `chunked`, `idle_pool`: the lean client for providers on this
//!   machine; reqwest speaks to all others.

mod chunked;
mod fast_chunk;
mod idle_pool;
mod keys;
mod plain_http;
mod sse;
mod stream;
mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use astrbot_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, ProviderError, StreamChunk, TokenUsage,
};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{Map, Value};

use futures::StreamExt;
use keys::{truncate, KeyRing};
use plain_http::PlainHttp;
use stream::BodyError;
use wire::Completion;

/// How many characters of an upstream error body reach the user.
const ERROR_BODY_CHARS: usize = 500;

/// How much of a refused request's body is read for its error text.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The largest whole (not streamed) answer read. A chat completion is a
/// few kilobytes; a provider sending without end must not fill memory.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Settings of one OpenAI-compatible provider (AstrBot's provider source
/// merged with its model entry).
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The provider id (what `selected_provider` names).
    pub id: String,
    /// Base URL up to and including the version, e.g.
    /// `https://api.openai.com/v1` or `http://127.0.0.1:9000/v1`.
    pub api_base: String,
    /// API keys; `$ENV` / `${ENV}` entries are read from the environment.
    /// Empty (or only empty strings): no `Authorization` header.
    pub keys: Vec<String>,
    /// Model name sent when a request does not override it.
    pub model: String,
    /// Connect timeout; whole-request timeout when not streaming; time to
    /// the response headers and longest silence between chunks when
    /// streaming.
    pub timeout: Duration,
    /// Extra HTTP headers sent with every request.
    pub custom_headers: Vec<(String, String)>,
    /// Extra top-level body fields (`custom_extra_body`: temperature …).
    pub extra_body: Map<String, Value>,
    /// Whether a provider on this machine (a loopback `http://` base) is
    /// spoken to with the lean client that reads answers in the asking
    /// task. Off, reqwest speaks to every provider.
    pub lean_loopback_client: bool,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            id: String::new(),
            api_base: "https://api.openai.com/v1".to_owned(),
            keys: Vec::new(),
            model: String::new(),
            // AstrBot's default provider timeout.
            timeout: Duration::from_secs(120),
            custom_headers: Vec::new(),
            extra_body: Map::new(),
            lean_loopback_client: true,
        }
    }
}

/// A `ChatProvider` speaking the OpenAI chat-completions API.
#[derive(Debug)]
pub struct OpenAiCompatible {
    id: String,
    model: String,
    /// `…/chat/completions`, parsed once rather than on every request.
    url: reqwest::Url,
    timeout: Duration,
    extra_body: Map<String, Value>,
    keys: Arc<KeyRing>,
    client: reqwest::Client,
    /// Used instead of `client` for a provider on this machine.
    plain: Option<PlainHttp>,
    /// Set once the provider answered the lean client with a redirect,
    /// which only reqwest follows: from then on reqwest asks, whatever
    /// `plain` is.
    general_client_only: AtomicBool,
}

impl OpenAiCompatible {
    /// Checks the config, resolves the keys and builds the HTTP client.
    pub fn new(config: OpenAiConfig) -> Result<Self, ProviderError> {
        let api_base = config.api_base.trim().trim_end_matches('/');
        let base = reqwest::Url::parse(api_base)
            .map_err(|error| ProviderError::Other(format!("invalid api_base: {error}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ProviderError::Other(
                "invalid api_base: the scheme must be http or https".to_owned(),
            ));
        }
        let keys = Arc::new(KeyRing::new(&config.keys)?);
        let mut headers = HeaderMap::new();
        for (name, value) in &config.custom_headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                ProviderError::Other(format!("invalid custom header name {name:?}"))
            })?;
            // The value may be a secret, so it is not quoted in the error.
            let value = HeaderValue::from_str(value.trim()).map_err(|_| {
                ProviderError::Other(format!("invalid value of custom header {name}"))
            })?;
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .default_headers(headers);
        if is_loopback(&base) {
            // A proxy from the environment can never reach our loopback.
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(transport_error)?;
        let url = reqwest::Url::parse(&format!("{api_base}/chat/completions"))
            .map_err(|error| ProviderError::Other(format!("invalid api_base: {error}")))?;
        let plain = config
            .lean_loopback_client
            .then(|| PlainHttp::for_url(&url, &config.custom_headers, config.timeout))
            .flatten();
        Ok(OpenAiCompatible {
            id: config.id,
            model: config.model,
            url,
            timeout: config.timeout,
            extra_body: config.extra_body,
            keys,
            client,
            plain,
            general_client_only: AtomicBool::new(false),
        })
    }

    /// The request's JSON body, encoded once for every key it may be sent
    /// with.
    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, ProviderError> {
        let model = request.model.as_deref().unwrap_or(&self.model);
        let body = wire::request_body(
            model,
            &request.messages,
            stream,
            request.max_tokens,
            &self.extra_body,
        );
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|error| ProviderError::Other(format!("could not encode the request: {error}")))
    }

    fn timeout_error(&self) -> ProviderError {
        ProviderError::Timeout {
            seconds: whole_seconds(self.timeout),
        }
    }

    /// Sends `body`, trying each key once while the answer is 401 or 429;
    /// returns the first 2xx response (its body unread).
    async fn send(&self, body: &Bytes) -> Result<Answer, ProviderError> {
        let attempts = self.keys.attempt_order();
        let last = attempts.len() - 1;
        for (attempt, key) in attempts.into_iter().enumerate() {
            let (status, answer) = self.post(body, key).await?;
            if (200..300).contains(&status) {
                return Ok(answer);
            }
            let rotatable = status == StatusCode::UNAUTHORIZED.as_u16()
                || status == StatusCode::TOO_MANY_REQUESTS.as_u16();
            if rotatable && attempt < last {
                tracing::warn!(
                    provider = %self.id,
                    status,
                    "the provider refused a key; trying the next one"
                );
                continue;
            }
            let text = answer.text().await;
            return Err(ProviderError::Status {
                status,
                body: truncate(self.keys.scrub(&text).trim(), ERROR_BODY_CHARS),
            });
        }
        unreachable!("attempt_order always yields at least one attempt")
    }

    /// One request with one key: the status and the unread body.
    async fn post(&self, body: &Bytes, key: Option<&str>) -> Result<(u16, Answer), ProviderError> {
        let lean = match &self.plain {
            Some(plain) if !self.general_client_only.load(Ordering::Relaxed) => Some(plain),
            _ => None,
        };
        if let Some(plain) = lean {
            let response = plain.post(body, key).await.map_err(|error| {
                if error.kind() == std::io::ErrorKind::TimedOut {
                    self.timeout_error()
                } else {
                    ProviderError::Transport(astrbot_core::with_causes(&error))
                }
            })?;
            if !is_redirect(response.status) {
                let answer = Answer::Plain {
                    body: response.body,
                    json: response.json,
                };
                return Ok((response.status, answer));
            }
            // Following is reqwest's job (and the OpenAI SDK's, for AstrBot):
            // this request and every later one go through it.
            self.general_client_only.store(true, Ordering::Relaxed);
            tracing::info!(
                provider = %self.id,
                status = response.status,
                "the provider redirects; its requests now go through the general HTTP client, \
                 which follows redirects"
            );
        }
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.clone());
        if let Some(key) = key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.request_error(error))?;
        Ok((response.status().as_u16(), Answer::Reqwest(response)))
    }

    fn request_error(&self, error: reqwest::Error) -> ProviderError {
        if is_own_timeout(&error) {
            self.timeout_error()
        } else {
            transport_error(error)
        }
    }
}

#[async_trait]
impl ChatProvider for OpenAiCompatible {
    fn id(&self) -> &str {
        &self.id
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(&request, false)?;
        let answer = async {
            let response = self.send(&body).await?;
            self.read_whole(response).await
        };
        // One deadline for everything: key retries and reading the body.
        let bytes = self.in_time(answer).await?;
        self.whole_answer(&bytes)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = self.body(&request, true)?;
        // The timeout covers the wait for the response headers here; the
        // stream itself applies it to every wait for the next chunk.
        let response = self.in_time(self.send(&body)).await?;
        if response.is_json() {
            // A server that ignores `stream: true` (or reports an error in
            // a 200) answers with one document: read it as a whole answer.
            let bytes = self.in_time(self.read_whole(response)).await?;
            return Ok(as_stream(self.whole_answer(&bytes)?));
        }
        Ok(stream::chat_stream(
            response.into_body(),
            self.timeout,
            Arc::clone(&self.keys),
        ))
    }
}

impl OpenAiCompatible {
    /// `work`, or the timeout error if it takes longer than the provider's
    /// timeout.
    async fn in_time<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| self.timeout_error())?
    }

    /// A whole answer's body, up to [`MAX_ANSWER_BYTES`].
    async fn read_whole(&self, response: Answer) -> Result<Bytes, ProviderError> {
        let (bytes, cut) = response
            .read_up_to(MAX_ANSWER_BYTES)
            .await
            .map_err(|error| {
                if error.own_timeout {
                    self.timeout_error()
                } else {
                    ProviderError::Transport(error.message)
                }
            })?;
        if cut {
            return Err(ProviderError::Other(format!(
                "the provider's answer is larger than {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        Ok(bytes)
    }

    /// A `chat.completion` document as the answer, or the error it reports.
    fn whole_answer(&self, bytes: &[u8]) -> Result<ChatResponse, ProviderError> {
        let completion: Completion = serde_json::from_slice(bytes).map_err(|error| {
            ProviderError::Decode(format!("the answer is not valid JSON: {error}"))
        })?;
        if let Some(message) = completion.error_message() {
            let message = truncate(&self.keys.scrub(&message), ERROR_BODY_CHARS);
            return Err(ProviderError::Other(format!(
                "the provider reported an error: {message}"
            )));
        }
        // AstrBot refuses such an answer whole, whatever text it holds.
        if completion.is_content_filtered() {
            return Err(wire::content_filtered());
        }
        let message = completion.first();
        Ok(ChatResponse {
            text: message.map(wire::Message::text).unwrap_or_default(),
            reasoning: message
                .map(wire::Message::reasoning_text)
                .unwrap_or_default(),
            usage: completion
                .usage
                .map(|usage| usage.to_token_usage())
                .unwrap_or_default(),
        })
    }
}

/// A whole answer as the stream of chunks a streamed one would have been.
fn as_stream(answer: ChatResponse) -> ChatStream {
    let mut chunks = Vec::new();
    if !answer.reasoning.is_empty() {
        chunks.push(Ok(StreamChunk::Reasoning(answer.reasoning.into())));
    }
    if !answer.text.is_empty() {
        chunks.push(Ok(StreamChunk::Text(answer.text.into())));
    }
    if answer.usage != TokenUsage::default() {
        chunks.push(Ok(StreamChunk::Usage(answer.usage)));
    }
    Box::pin(futures::stream::iter(chunks))
}

/// A 2xx (or refused) response whose body is still to be read, from
/// whichever client sent the request.
enum Answer {
    Reqwest(reqwest::Response),
    Plain {
        body: plain_http::BodyReader,
        json: bool,
    },
}

/// Whether a `Content-Type` value is JSON (`application/json`, with or
/// without parameters).
fn is_json_media_type(value: &str) -> bool {
    let media_type = value.split(';').next().unwrap_or_default();
    media_type.trim().eq_ignore_ascii_case("application/json")
}

impl Answer {
    /// Whether the body is one JSON document rather than an event stream.
    fn is_json(&self) -> bool {
        match self {
            Answer::Reqwest(response) => response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(is_json_media_type),
            Answer::Plain { json, .. } => *json,
        }
    }

    /// The body up to `limit` bytes, and whether it was longer.
    async fn read_up_to(self, limit: usize) -> Result<(Bytes, bool), BodyError> {
        let mut body = self.into_body();
        let mut whole = BytesMut::new();
        while let Some(piece) = body.next().await {
            let piece = piece?;
            if whole.len() + piece.len() > limit {
                whole.extend_from_slice(&piece[..limit - whole.len()]);
                return Ok((whole.freeze(), true));
            }
            whole.extend_from_slice(&piece);
        }
        Ok((whole.freeze(), false))
    }

    /// The body as text, for an error message; empty if it cannot be read.
    async fn text(self) -> String {
        match self.read_up_to(MAX_ERROR_BODY_BYTES).await {
            Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// The body as it arrives.
    fn into_body(self) -> stream::Body {
        match self {
            Answer::Reqwest(response) => Box::pin(
                response
                    .bytes_stream()
                    .map(|piece| piece.map_err(BodyError::from_reqwest)),
            ),
            Answer::Plain { body, .. } => {
                Box::pin(futures::stream::unfold(body, |mut body| async {
                    let piece = body.next().await?;
                    Some((piece.map_err(|error| BodyError::from_io(&error)), body))
                }))
            }
        }
    }
}

/// Whether `url` names this machine, where no proxy can be in the way.
fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// The statuses reqwest follows.
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// A timeout in whole seconds for the error text, rounded up so that a
/// sub-second timeout does not read "0 s".
fn whole_seconds(timeout: Duration) -> u64 {
    timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)
}

/// Whether one of our own deadlines ran out. reqwest also calls an error
/// a timeout when the operating system gave up on the connection
/// (`ETIMEDOUT`, e.g. a provider whose accept queue overflowed): that is a
/// transport failure, and saying the provider took N seconds would be
/// wrong.
fn is_own_timeout(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        if current
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return false;
        }
        source = current.source();
    }
    error.is_timeout()
}

/// A transport error without the URL (which may carry credentials in its
/// user-info or query) but with the underlying causes, e.g. "connection
/// refused", which never include the URL or headers.
fn transport_error(error: reqwest::Error) -> ProviderError {
    ProviderError::Transport(error_text(error))
}

/// A reqwest error's text with its causes', without the URL (which may
/// carry credentials).
fn error_text(error: reqwest::Error) -> String {
    astrbot_core::with_causes(&error.without_url())
}
