//! The chat-completions wire format: the request body we send and lenient
//! views of the answers (whole and streamed) we read.
//!
//! "Lenient" because OpenAI-compatible servers differ: every field is
//! optional, `null` is as good as absent, and unknown fields are ignored.

use astrbot_core::{ChatMessage, ContentPart, MessageContent, ProviderError, TokenUsage};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The JSON body of `POST /chat/completions`, written straight from the
/// request's messages (no copy of the conversation is built to send it).
///
/// `extra_body` (the provider's `custom_extra_body`: temperature, top_p …)
/// only fills in fields the request does not set itself, and never the
/// streaming switches: the parser that reads the answer depends on them.
pub fn request_body<'a>(
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    max_tokens: Option<u32>,
    extra_body: &'a Map<String, Value>,
) -> RequestBody<'a> {
    RequestBody {
        model,
        messages,
        stream,
        max_tokens,
        extra_body,
    }
}

/// See [`request_body`].
pub struct RequestBody<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    max_tokens: Option<u32>,
    extra_body: &'a Map<String, Value>,
}

impl Serialize for RequestBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut body = serializer.serialize_map(None)?;
        body.serialize_entry("model", self.model)?;
        body.serialize_entry("messages", &WireMessages(self.messages))?;
        if self.stream {
            body.serialize_entry("stream", &true)?;
            // Without this OpenAI sends no usage at all in a stream.
            body.serialize_entry(
                "stream_options",
                &StreamOptions {
                    include_usage: true,
                },
            )?;
        }
        if let Some(max_tokens) = self.max_tokens {
            body.serialize_entry("max_tokens", &max_tokens)?;
        }
        for (key, value) in self.extra_body {
            let set_here = match key.as_str() {
                "model" | "messages" | "stream" | "stream_options" => true,
                "max_tokens" => self.max_tokens.is_some(),
                _ => false,
            };
            if !set_here {
                body.serialize_entry(key, value)?;
            }
        }
        body.end()
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The messages in OpenAI shape, minus the content parts we only keep so
/// that stored conversations load (`think`, `audio_url` …): no API accepts
/// them back in that form. A message left with no part (AstrBot's
/// reasoning beside a tool call) is sent with `null` content.
struct WireMessages<'a>(&'a [ChatMessage]);

impl Serialize for WireMessages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut messages = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            match &message.content {
                MessageContent::Parts(parts) if parts.iter().any(ContentPart::is_unsupported) => {
                    let kept: Vec<ContentPart> = parts
                        .iter()
                        .filter(|part| !part.is_unsupported())
                        .cloned()
                        .collect();
                    let content = if kept.is_empty() {
                        MessageContent::Null
                    } else {
                        MessageContent::Parts(kept)
                    };
                    messages.serialize_element(&ChatMessage {
                        role: message.role.clone(),
                        content,
                        tool_calls: message.tool_calls.clone(),
                        tool_call_id: message.tool_call_id.clone(),
                    })?
                }
                _ => messages.serialize_element(message)?,
            }
        }
        messages.end()
    }
}

/// A `chat.completion` or `chat.completion.chunk` object; both have the
/// same outline, with `message` in one and `delta` in the other.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Completion {
    pub choices: Option<Vec<Choice>>,
    pub usage: Option<Usage>,
    /// Some servers report failures in a 200 body or mid-stream.
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Choice {
    pub message: Option<Message>,
    pub delta: Option<Message>,
    /// Why the answer stopped; only [`CONTENT_FILTER`] matters here.
    pub finish_reason: Option<Value>,
}

/// The `finish_reason` of an answer the provider's content filter stopped
/// (Azure OpenAI and others).
pub const CONTENT_FILTER: &str = "content_filter";

/// AstrBot's words for an answer its provider's filter stopped, so that a
/// user sees the same message from either server.
pub fn content_filtered() -> ProviderError {
    ProviderError::Other("API 返回的 completion 由于内容安全过滤被拒绝(非 AstrBot)。".to_owned())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    /// A string, `null`, or (rarely) a list of typed parts.
    pub content: Option<Value>,
    /// DeepSeek, vLLM, SiliconFlow …
    pub reasoning_content: Option<Value>,
    /// OpenRouter, Ollama's OpenAI endpoint.
    pub reasoning: Option<Value>,
}

impl Completion {
    /// The first choice's message (whole answers) or delta (chunks).
    pub fn first(&self) -> Option<&Message> {
        let choice = self.choices.as_ref()?.first()?;
        choice.message.as_ref().or(choice.delta.as_ref())
    }

    /// The first choice's message or delta, taken out of the chunk.
    pub fn into_first(self) -> Option<Message> {
        let choice = self.choices?.into_iter().next()?;
        choice.message.or(choice.delta)
    }

    /// Whether the provider's content filter stopped the first choice.
    pub fn is_content_filtered(&self) -> bool {
        let finish_reason = self
            .choices
            .as_ref()
            .and_then(|choices| choices.first())
            .and_then(|choice| choice.finish_reason.as_ref());
        finish_reason.and_then(Value::as_str) == Some(CONTENT_FILTER)
    }

    /// A readable message for an `error` object, if there is one.
    pub fn error_message(&self) -> Option<String> {
        let error = self.error.as_ref().filter(|error| !error.is_null())?;
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string());
        Some(message)
    }
}

impl Message {
    /// The answer text; `null` or missing is empty.
    pub fn text(&self) -> String {
        match &self.content {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        }
    }

    /// [`Message::text`], taking the string out instead of copying it.
    pub fn into_text(self) -> String {
        match self.content {
            Some(Value::String(text)) => text,
            _ => self.text(),
        }
    }

    /// The reasoning text, from whichever field the server uses.
    pub fn reasoning_text(&self) -> String {
        [&self.reasoning_content, &self.reasoning]
            .into_iter()
            .find_map(|field| field.as_ref().and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned()
    }
}

/// The `usage` object.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// DeepSeek reports its cache hits here instead.
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct PromptTokensDetails {
    pub cached_tokens: Option<u64>,
}

impl Usage {
    /// AstrBot's split: the cached part of the prompt is counted apart from
    /// the rest (`prompt_tokens` includes it).
    pub fn to_token_usage(&self) -> TokenUsage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0)
            .min(prompt);
        TokenUsage {
            input_other: prompt - cached,
            input_cached: cached,
            output: self.completion_tokens.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage(value: Value) -> TokenUsage {
        serde_json::from_value::<Usage>(value)
            .unwrap()
            .to_token_usage()
    }

    #[test]
    fn usage_splits_cached_prompt_tokens() {
        let got = usage(json!({
            "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 30, "audio_tokens": 0}
        }));
        assert_eq!(
            got,
            TokenUsage {
                input_other: 70,
                input_cached: 30,
                output: 20
            }
        );
    }

    #[test]
    fn usage_without_details_or_with_nulls() {
        let plain = TokenUsage {
            input_other: 5,
            input_cached: 0,
            output: 7,
        };
        assert_eq!(
            usage(json!({"prompt_tokens": 5, "completion_tokens": 7})),
            plain
        );
        let with_nulls =
            json!({"prompt_tokens": 5, "completion_tokens": 7, "prompt_tokens_details": null});
        assert_eq!(usage(with_nulls), plain);
        assert_eq!(usage(json!({})), TokenUsage::default());
    }

    #[test]
    fn usage_reads_deepseek_cache_hits_and_clamps() {
        let got = usage(
            json!({"prompt_tokens": 10, "completion_tokens": 1, "prompt_cache_hit_tokens": 4}),
        );
        assert_eq!(
            got,
            TokenUsage {
                input_other: 6,
                input_cached: 4,
                output: 1
            }
        );
        let got = usage(json!({"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 9}}));
        assert_eq!(
            got,
            TokenUsage {
                input_other: 0,
                input_cached: 3,
                output: 0
            }
        );
    }

    #[test]
    fn whole_answer_with_null_content_and_reasoning() {
        let completion: Completion = serde_json::from_value(json!({
            "id": "x", "object": "chat.completion", "unknown": [1, 2],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "reasoning_content": "hmm"}}]
        }))
        .unwrap();
        let message = completion.first().unwrap();
        assert_eq!(message.text(), "");
        assert_eq!(message.reasoning_text(), "hmm");
        assert!(completion.usage.is_none());
    }

    #[test]
    fn chunk_with_reasoning_field_and_empty_choices() {
        let chunk: Completion = serde_json::from_value(
            json!({"choices": [{"delta": {"reasoning": "r"}}], "usage": null}),
        )
        .unwrap();
        assert_eq!(chunk.first().unwrap().reasoning_text(), "r");
        let last: Completion =
            serde_json::from_value(json!({"choices": [], "usage": {"prompt_tokens": 1}})).unwrap();
        assert!(last.first().is_none());
        assert!(last.usage.is_some());
    }

    #[test]
    fn body_has_stream_options_and_extra_body_does_not_override() {
        let mut extra = Map::new();
        extra.insert("temperature".into(), json!(0.2));
        extra.insert("stream".into(), json!(false));
        extra.insert("max_tokens".into(), json!(99));
        let messages = [ChatMessage::text("user", "hi")];
        let body =
            serde_json::to_value(request_body("m", &messages, true, Some(5), &extra)).unwrap();
        assert_eq!(
            body,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                   "stream_options": {"include_usage": true}, "max_tokens": 5, "temperature": 0.2})
        );
        let body = serde_json::to_value(request_body("m", &messages, false, None, &extra)).unwrap();
        assert_eq!(body["max_tokens"], json!(99));
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn unsupported_parts_are_not_sent() {
        let message: ChatMessage = serde_json::from_value(json!({"role": "assistant", "content": [
            {"type": "think", "think": "..."}, {"type": "text", "text": "hi"}]}))
        .unwrap();
        let message = [message];
        let body =
            serde_json::to_value(request_body("m", &message, false, None, &Map::new())).unwrap();
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"type": "text", "text": "hi"}])
        );
    }
}
