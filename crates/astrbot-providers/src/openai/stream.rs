//! Turns a streamed chat-completions body into a `ChatStream`.
//!
//! The body is read chunk by chunk with a limit on the gap between chunks,
//! so an upstream that stops sending mid-answer ends the stream with a
//! `Timeout` error instead of hanging the session forever. Keep-alive
//! comments count as chunks, but only for so long after the last data.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use astrbot_core::json_text::from_python_json;
use astrbot_core::{ChatStream, IdleTimer, ProviderError, StreamChunk, TokenUsage};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::fast_chunk::{ChunkFields, ChunkReader};
use super::keys::{truncate, KeyRing};
use super::sse::{is_done, SseParser};
use super::wire::{content_filtered, Completion};

/// The largest single event of a stream (a token is a few bytes; a whole
/// answer in one event a few kilobytes). A provider sending one event
/// without end must not fill memory.
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// The most a streamed answer may send in all, framing included (about
/// 200,000 tokens of OpenAI's chunks). The answer is kept in memory and
/// stored whole, so a provider that never stops must not fill memory.
const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;

/// How long a stream may send nothing but keep-alive comments before it
/// is given up on (or the provider's timeout, when that is longer).
const COMMENTS_ALONE: Duration = Duration::from_secs(600);

/// A response body as it arrives, from either HTTP client.
pub(super) type Body = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// Why reading a body failed.
pub(super) struct BodyError {
    /// The error with its causes, without the URL.
    pub message: String,
    /// One of our own deadlines ran out (not the operating system's).
    pub own_timeout: bool,
}

impl BodyError {
    pub fn from_reqwest(error: reqwest::Error) -> BodyError {
        BodyError {
            own_timeout: super::is_own_timeout(&error),
            message: super::error_text(error),
        }
    }

    pub fn from_io(error: &std::io::Error) -> BodyError {
        BodyError {
            own_timeout: false,
            message: astrbot_core::with_causes(error),
        }
    }
}

struct State {
    body: Body,
    parser: SseParser,
    /// Reads each event's chunk, against the answer's earlier ones.
    chunks: ChunkReader,
    decoded: Decoded,
    /// Fires when no chunk came for the gap limit. A fast stream has one
    /// chunk per token, so this must not cost a timer per chunk.
    gap: IdleTimer,
    /// Body bytes read so far.
    received: usize,
    /// When the body last brought a `data` line.
    last_data: Instant,
}

/// What the events decoded so far amount to.
struct Decoded {
    /// Items decoded from the last network chunk, not yet handed out.
    pending: VecDeque<Result<StreamChunk, ProviderError>>,
    /// The latest usage seen. Some servers repeat (growing) usage on every
    /// chunk; it is handed out once, at the end.
    usage: Option<TokenUsage>,
    /// No more reading: `[DONE]`, end of body, or an error.
    finished: bool,
    keys: Arc<KeyRing>,
}

/// Wraps the body of a successful streaming response.
pub fn chat_stream(body: Body, gap_timeout: Duration, keys: Arc<KeyRing>) -> ChatStream {
    let state = State {
        body,
        parser: SseParser::new(),
        chunks: ChunkReader::default(),
        decoded: Decoded {
            pending: VecDeque::new(),
            usage: None,
            finished: false,
            keys,
        },
        gap: IdleTimer::new(gap_timeout),
        received: 0,
        last_data: Instant::now(),
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.decoded.pending.pop_front() {
                return Some((item, state));
            }
            if state.decoded.finished {
                return None;
            }
            state.read_more().await;
        }
    }))
}

impl State {
    async fn read_more(&mut self) {
        let Some(next) = self.next_chunk().await else {
            return self.decoded.fail(self.timeout());
        };
        let decoded = &mut self.decoded;
        let chunks = &mut self.chunks;
        match next {
            Some(Err(error)) => {
                let error = if error.own_timeout {
                    self.timeout()
                } else {
                    // The provider was reached and had begun to answer.
                    ProviderError::Other(format!(
                        "the provider's answer broke off: {}",
                        error.message
                    ))
                };
                self.decoded.fail(error)
            }
            Some(Ok(bytes)) => {
                self.received += bytes.len();
                if self.received > MAX_STREAM_BYTES {
                    return decoded.fail(ProviderError::Other(format!(
                        "the provider's answer is larger than {} MiB",
                        MAX_STREAM_BYTES >> 20
                    )));
                }
                let comments_limit = self.gap.limit().max(COMMENTS_ALONE);
                let data_before = self.parser.data_lines();
                self.parser
                    .push(&bytes, &mut |data| decoded.event(chunks, data));
                if self.parser.data_lines() != data_before {
                    self.last_data = Instant::now();
                } else if self.last_data.elapsed() >= comments_limit {
                    // Keep-alive comments hold a slow model's request open
                    // (OpenRouter sends them while a model thinks), but not
                    // forever: the turn holds its session.
                    return decoded.fail(ProviderError::Other(format!(
                        "the provider sent keep-alive lines but no answer for {} s",
                        comments_limit.as_secs()
                    )));
                }
                self.gap.touch();
                if self.parser.pending_bytes() > MAX_EVENT_BYTES {
                    decoded.fail(ProviderError::Decode(format!(
                        "an event of the provider's stream is larger than {} MiB",
                        MAX_EVENT_BYTES >> 20
                    )));
                }
            }
            None => {
                // Some servers close without `[DONE]`; that still ends the
                // answer normally.
                self.parser.finish(&mut |data| decoded.event(chunks, data));
                decoded.end();
            }
        }
    }

    /// The body's next item, or `None` when nothing came for the gap
    /// limit since the last chunk.
    async fn next_chunk(&mut self) -> Option<Option<Result<Bytes, BodyError>>> {
        tokio::select! {
            biased;
            next = self.body.next() => Some(next),
            () = self.gap.elapsed() => None,
        }
    }

    fn timeout(&self) -> ProviderError {
        ProviderError::Timeout {
            seconds: super::whole_seconds(self.gap.limit()),
        }
    }
}

impl Decoded {
    fn event(&mut self, chunks: &mut ChunkReader, data: &str) {
        if self.finished {
            return;
        }
        if is_done(data) {
            self.end();
            return;
        }
        if let Err(error) = decode(chunks, data, &mut |chunk| self.chunk(chunk)) {
            self.fail(error);
        }
    }

    fn chunk(&mut self, chunk: Result<ChunkFields, String>) {
        if self.finished {
            return;
        }
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(message) => {
                let message = truncate(&self.keys.scrub(&message), 500);
                return self.fail(ProviderError::Other(format!(
                    "the provider reported an error: {message}"
                )));
            }
        };
        if !chunk.reasoning.is_empty() {
            self.pending
                .push_back(Ok(StreamChunk::Reasoning(chunk.reasoning)));
        }
        if !chunk.text.is_empty() {
            self.pending.push_back(Ok(StreamChunk::Text(chunk.text)));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.to_token_usage());
        }
        // What came before stays shown, as in AstrBot, which streams the
        // text and then fails the answer.
        if chunk.content_filtered {
            self.fail(content_filtered());
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
/// Every chunk goes to `on_chunk`; nothing does when the data is not JSON.
fn decode(
    chunks: &mut ChunkReader,
    data: &str,
    on_chunk: &mut impl FnMut(Result<ChunkFields, String>),
) -> Result<(), ProviderError> {
    if let Some(chunk) = chunks.read(data) {
        on_chunk(Ok(chunk));
        return Ok(());
    }
    // Half a surrogate pair, as a server written in Python may send for an
    // emoji cut in two, is read as U+FFFD.
    let error = match from_python_json::<Completion>(data) {
        Ok(chunk) => {
            on_chunk(fields_of(chunk));
            return Ok(());
        }
        Err(error) if !data.contains('\n') => return Err(decode_error(&error)),
        Err(error) => error,
    };
    let chunks = data
        .lines()
        .filter(|line| !line.trim().is_empty() && !is_done(line))
        .map(|line| serde_json::from_str::<Completion>(line).map_err(|_| decode_error(&error)))
        .collect::<Result<Vec<_>, _>>()?;
    chunks.into_iter().map(fields_of).for_each(on_chunk);
    Ok(())
}

/// What a chunk decoded by serde carries, or the error it reports.
pub(super) fn fields_of(mut chunk: Completion) -> Result<ChunkFields, String> {
    if let Some(message) = chunk.error_message() {
        return Err(message);
    }
    let usage = chunk.usage.take();
    let content_filtered = chunk.is_content_filtered();
    let (reasoning, text) = chunk
        .into_first()
        .map(|delta| (delta.reasoning_text(), delta.into_text()))
        .unwrap_or_default();
    Ok(ChunkFields {
        text: text.into(),
        reasoning: reasoning.into(),
        usage,
        content_filtered,
    })
}

fn decode_error(error: &serde_json::Error) -> ProviderError {
    // The serde message names the position, never the (possibly long) data.
    ProviderError::Decode(format!("a stream chunk is not valid JSON: {error}"))
}
