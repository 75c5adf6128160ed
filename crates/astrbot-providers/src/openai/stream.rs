//! Turns a streamed chat-completions body into a `ChatStream`.
//!
//! The body is read chunk by chunk with a timeout on every wait, so an
//! upstream that stops sending mid-answer ends the stream with a `Timeout`
//! error instead of hanging the session forever.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use astrbot_core::{ChatStream, ProviderError, StreamChunk, TokenUsage};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::keys::{truncate, KeyRing};
use super::sse::{is_done, SseParser};
use super::transport_error;
use super::wire::Completion;

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct State {
    body: Body,
    parser: SseParser,
    /// Items decoded from the last network chunk, not yet handed out.
    pending: VecDeque<Result<StreamChunk, ProviderError>>,
    /// The latest usage seen. Some servers repeat (growing) usage on every
    /// chunk; it is handed out once, at the end.
    usage: Option<TokenUsage>,
    /// No more reading: `[DONE]`, end of body, or an error.
    finished: bool,
    gap_timeout: Duration,
    keys: Arc<KeyRing>,
}

/// Wraps the body of a successful streaming response.
pub fn chat_stream(
    response: reqwest::Response,
    gap_timeout: Duration,
    keys: Arc<KeyRing>,
) -> ChatStream {
    let state = State {
        body: Box::pin(response.bytes_stream()),
        parser: SseParser::new(),
        pending: VecDeque::new(),
        usage: None,
        finished: false,
        gap_timeout,
        keys,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                return Some((item, state));
            }
            if state.finished {
                return None;
            }
            state.read_more().await;
        }
    }))
}

impl State {
    async fn read_more(&mut self) {
        match tokio::time::timeout(self.gap_timeout, self.body.next()).await {
            Err(_) => self.fail(ProviderError::Timeout {
                seconds: super::whole_seconds(self.gap_timeout),
            }),
            Ok(Some(Err(error))) => {
                let error = if super::is_own_timeout(&error) {
                    ProviderError::Timeout {
                        seconds: super::whole_seconds(self.gap_timeout),
                    }
                } else {
                    transport_error(error)
                };
                self.fail(error)
            }
            Ok(Some(Ok(bytes))) => {
                for data in self.parser.push(&bytes) {
                    self.event(&data);
                    if self.finished {
                        break;
                    }
                }
            }
            Ok(None) => {
                // Some servers close without `[DONE]`; that still ends the
                // answer normally.
                if let Some(data) = self.parser.finish() {
                    self.event(&data);
                }
                self.end();
            }
        }
    }

    fn event(&mut self, data: &str) {
        if self.finished {
            return;
        }
        if is_done(data) {
            self.end();
            return;
        }
        match decode(data) {
            Ok(chunks) => {
                for chunk in chunks {
                    self.chunk(chunk);
                }
            }
            Err(error) => self.fail(error),
        }
    }

    fn chunk(&mut self, chunk: Completion) {
        if let Some(message) = chunk.error_message() {
            let message = truncate(&self.keys.scrub(&message), 500);
            self.fail(ProviderError::Other(format!(
                "the provider reported an error: {message}"
            )));
            return;
        }
        if let Some(delta) = chunk.first() {
            let reasoning = delta.reasoning_text();
            if !reasoning.is_empty() {
                self.pending
                    .push_back(Ok(StreamChunk::Reasoning(reasoning)));
            }
            let text = delta.text();
            if !text.is_empty() {
                self.pending.push_back(Ok(StreamChunk::Text(text)));
            }
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.to_token_usage());
        }
    }

    fn end(&mut self) {
        if let Some(usage) = self.usage.take() {
            self.pending.push_back(Ok(StreamChunk::Usage(usage)));
        }
        self.finished = true;
    }

    fn fail(&mut self, error: ProviderError) {
        self.pending.push_back(Err(error));
        self.finished = true;
    }
}

/// Decodes one event's data. Per the SSE spec consecutive `data:` lines form
/// one event, but a few servers omit the blank line between events; if the
/// joined text is not JSON, each line is tried on its own.
fn decode(data: &str) -> Result<Vec<Completion>, ProviderError> {
    match serde_json::from_str::<Completion>(data) {
        Ok(chunk) => Ok(vec![chunk]),
        Err(error) if !data.contains('\n') => Err(decode_error(&error)),
        Err(error) => data
            .lines()
            .filter(|line| !line.trim().is_empty() && !is_done(line))
            .map(|line| serde_json::from_str::<Completion>(line).map_err(|_| decode_error(&error)))
            .collect(),
    }
}

fn decode_error(error: &serde_json::Error) -> ProviderError {
    // The serde message names the position, never the (possibly long) data.
    ProviderError::Decode(format!("a stream chunk is not valid JSON: {error}"))
}
