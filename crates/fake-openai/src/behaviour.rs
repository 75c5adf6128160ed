//! What the fake server answers and how: text, pacing, usage and failure
//! modes. Tests change it at run time through `FakeOpenAi::set_behaviour`.

use std::time::Duration;

/// How the fake server answers chat-completion requests.
///
/// Every field has a harmless default, so tests write
/// `Behaviour { reject_keys: vec!["bad".into()], ..Default::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// The answer text. `None` answers `"Echo: <last user text>"`, which lets
    /// tests check which prompt was answered and that concurrent sessions do
    /// not get each other's answers.
    pub text: Option<String>,
    /// How many content deltas the answer is split into. `None` sends one
    /// delta per word (with its leading space). `Some(n)` sends exactly `n`
    /// non-empty deltas, repeating the text as needed to have enough
    /// characters (benchmarks ask for a fixed token count).
    pub chunks: Option<usize>,
    /// Delay before the first delta (streaming) or before the whole answer
    /// (non-streaming, where the inter-token delays are added too).
    pub first_token_delay: Duration,
    /// Delay between two deltas.
    pub token_delay: Duration,
    /// Reported `prompt_tokens`. `None` uses a rough count: a quarter of the
    /// characters of all messages plus four per message.
    pub prompt_tokens: Option<u64>,
    /// Reported `prompt_tokens_details.cached_tokens` (part of
    /// `prompt_tokens`, clamped to it).
    pub cached_tokens: u64,
    /// Reasoning sent before the answer as `reasoning_content` deltas (one
    /// per word) or, non-streaming, as `message.reasoning_content`.
    pub reasoning: Option<String>,
    /// Answer every chat request with this HTTP status and an OpenAI-style
    /// error JSON (e.g. 500, 503) instead of an answer.
    pub fail_status: Option<u16>,
    /// Bearer keys answered with 401 `invalid_api_key`.
    pub reject_keys: Vec<String>,
    /// Bearer keys answered with 429 `rate_limit_exceeded`.
    pub rate_limited_keys: Vec<String>,
    /// Never answer: no status line, no headers, until the server shuts down.
    pub hang_before_answer: bool,
    /// Streaming: send this many content deltas, then keep the connection
    /// open without sending anything more. Non-streaming: never answer.
    pub hang_after_chunks: Option<usize>,
    /// Model ids listed by `GET /v1/models`.
    pub models: Vec<String>,
    /// Streaming: pad every chunk with an `obfuscation` field of random
    /// letters and digits, as OpenAI does unless the request sets
    /// `stream_options.include_obfuscation` to false.
    pub obfuscation: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            text: None,
            chunks: None,
            first_token_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            prompt_tokens: None,
            cached_tokens: 0,
            reasoning: None,
            fail_status: None,
            reject_keys: Vec::new(),
            rate_limited_keys: Vec::new(),
            hang_before_answer: false,
            hang_after_chunks: None,
            models: vec!["fake-model".to_owned()],
            obfuscation: false,
        }
    }
}
