//! The JSON objects of the OpenAI chat-completions wire protocol, as the
//! fake server sends them.

use serde_json::{json, Value};

/// Identifies one answer; every chunk of a stream carries the same id.
#[derive(Debug, Clone)]
pub struct AnswerMeta {
    pub id: String,
    pub created: u64,
    pub model: String,
}

/// The `usage` object, with the cached part in `prompt_tokens_details`.
pub fn usage(prompt: u64, cached: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// One `chat.completion.chunk` with a single choice. Like OpenAI, every
/// chunk carries `"usage": null` when the client asked for usage.
pub fn chunk(
    meta: &AnswerMeta,
    delta: Value,
    finish_reason: Option<&str>,
    with_usage: bool,
) -> Value {
    let mut value = json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    if with_usage {
        value["usage"] = Value::Null;
    }
    value
}

/// OpenAI's `obfuscation` field: random letters and digits of a random
/// length on every streamed chunk, so that a chunk's size does not tell
/// its token.
#[derive(Debug)]
pub struct Padding {
    /// xorshift state; `None` when the stream is not padded.
    state: Option<u64>,
}

impl Padding {
    pub fn new(enabled: bool) -> Padding {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.subsec_nanos().into());
        Padding {
            state: enabled.then_some(seed | 1),
        }
    }

    /// Adds the field to `chunk` if this stream is padded.
    pub fn pad(&mut self, chunk: &mut Value) {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let Some(state) = &mut self.state else {
            return;
        };
        let mut next = || {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state
        };
        let length = 1 + next() % 16;
        let padding: String = (0..length)
            .map(|_| char::from(ALPHABET[(next() % ALPHABET.len() as u64) as usize]))
            .collect();
        chunk["obfuscation"] = Value::String(padding);
    }
}

/// The last chunk when `stream_options.include_usage` is set: no choices,
/// only usage.
pub fn usage_chunk(meta: &AnswerMeta, usage: Value) -> Value {
    json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [],
        "usage": usage,
    })
}

/// A whole `chat.completion` object.
pub fn completion(meta: &AnswerMeta, text: &str, reasoning: Option<&str>, usage: Value) -> Value {
    let mut message = json!({"role": "assistant", "content": text});
    if let Some(reasoning) = reasoning {
        message["reasoning_content"] = Value::String(reasoning.to_owned());
    }
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": "stop"}],
        "usage": usage,
    })
}

/// An OpenAI-style error body.
pub fn error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// The `GET /v1/models` list.
pub fn models(ids: &[String], created: u64) -> Value {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "fake-openai"}))
        .collect();
    json!({"object": "list", "data": data})
}

/// One SSE event carrying `payload` as its data.
pub fn sse_event(payload: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!("data: {payload}\n\n"))
}
