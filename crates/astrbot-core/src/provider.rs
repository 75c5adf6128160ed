//! The chat-provider abstraction: OpenAI-shaped messages in, text, reasoning
//! and token usage out, either whole or as a stream of chunks.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::json_text::from_python_json;

/// One message of an LLM conversation, in the OpenAI chat-completions shape
/// that AstrBot also stores in its `conversations` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// `null` (or left out) in an assistant message that only calls tools.
    #[serde(default)]
    pub content: MessageContent,
    /// An assistant's calls to functions, in OpenAI's shape, as stored by
    /// AstrBot; passed back to the model as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<ToolCalls>,
    /// In a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// An assistant message's `tool_calls` as stored: its JSON text, sent back
/// to the model byte for byte (numbers of any size included), without a
/// tree of values for each message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ToolCalls(Box<RawValue>);

impl ToolCalls {
    /// Whether it is a list, the only shape of calls there is.
    pub fn is_list(&self) -> bool {
        self.0.get().starts_with('[')
    }

    /// The ids of the calls that have a string id.
    pub fn ids(&self) -> Vec<String> {
        let calls: Vec<Box<RawValue>> = from_python_json(self.0.get()).unwrap_or_default();
        calls
            .iter()
            .filter_map(|call| call_id(call.get()))
            .collect()
    }
}

/// A call's id, when it is a string. Read without the rest of the call
/// (whatever numbers it holds).
fn call_id(call: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Call {
        #[serde(default)]
        id: Option<Value>,
    }
    match from_python_json::<Call>(call).ok()?.id? {
        Value::String(id) => Some(id),
        _ => None,
    }
}

impl PartialEq for ToolCalls {
    /// Equal when their text is.
    fn eq(&self, other: &ToolCalls) -> bool {
        self.0.get() == other.0.get()
    }
}

impl ChatMessage {
    pub fn text(role: &str, text: impl Into<String>) -> Self {
        ChatMessage::new(role, MessageContent::Text(text.into()))
    }

    /// A message with no tool calls.
    pub fn new(role: &str, content: MessageContent) -> Self {
        ChatMessage {
            role: role.to_owned(),
            content,
            tool_calls: None,
            tool_call_id: None,
        }
    }

    /// The message's text parts joined together, images left out.
    pub fn plain_text(&self) -> String {
        match &self.content {
            MessageContent::Null => String::new(),
            MessageContent::Text(text) => text.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A message's content: plain text, or a list of typed parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
    /// JSON `null`: nothing but tool calls.
    #[default]
    Null,
}

/// One typed part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    /// Any part type we do not use (`think`, `audio_url` …); kept so that a
    /// stored conversation still loads.
    #[serde(other)]
    Unsupported,
}

impl ContentPart {
    /// Whether this is a part we only keep so that a stored conversation
    /// loads (`think`, `audio_url` …); no API accepts it back.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, ContentPart::Unsupported)
    }
}

/// The `image_url` object of an image part: an `https:` or `data:` URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

/// What the agent asks a provider for.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The whole context: system prompt first, then history, then the new
    /// user turn.
    pub messages: Vec<ChatMessage>,
    /// Overrides the provider's configured model name (`selected_model`).
    pub model: Option<String>,
    /// Upper bound on generated tokens, where the caller needs one (titles).
    pub max_tokens: Option<u32>,
}

/// Token counts in AstrBot's `agent_stats.token_usage` shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_other: u64,
    pub input_cached: u64,
    pub output: u64,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.input_other + self.input_cached + self.output
    }
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    pub reasoning: String,
    pub usage: TokenUsage,
}

/// A streamed delta's text. Most are a few bytes (a token or two), which
/// this keeps inline: an answer streams dozens of them a second, each made
/// by the provider's reader and dropped once sent to the client.
pub type Delta = compact_str::CompactString;

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamChunk {
    Text(Delta),
    Reasoning(Delta),
    /// Usage as reported by the provider, normally once near the end.
    Usage(TokenUsage),
}

/// A streamed answer; it ends when the provider has finished.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamChunk, ProviderError>> + Send>>;

/// Why a provider call failed. The `Display` text is what the user sees at
/// the end of the stream, so it must never contain an API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("HTTP {status} from the provider: {body}")]
    Status { status: u16, body: String },
    #[error("the provider did not answer within {seconds} s")]
    Timeout { seconds: u64 },
    #[error("could not reach the provider: {0}")]
    Transport(String),
    #[error("unreadable answer from the provider: {0}")]
    Decode(String),
    #[error("{0}")]
    Other(String),
}

/// A chat model the agent can call.
#[async_trait]
pub trait ChatProvider: Send + Sync {
    /// The provider id from the config (what `selected_provider` names).
    fn id(&self) -> &str;

    /// The model name sent when the request does not override it.
    fn model(&self) -> &str;

    /// Asks for a whole answer.
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// Asks for an answer streamed chunk by chunk.
    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_openai_shape() {
        let stored = r#"[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"think","think":"..."}]},{"role":"assistant","content":"hello"}]"#;
        let messages: Vec<ChatMessage> = serde_json::from_str(stored).unwrap();
        assert_eq!(messages[0].plain_text(), "hi");
        assert_eq!(messages[1].content, MessageContent::Text("hello".into()));
        let again = serde_json::to_string(&messages[1]).unwrap();
        assert_eq!(again, r#"{"role":"assistant","content":"hello"}"#);
    }

    #[test]
    fn tool_calls_go_back_as_they_were_stored() {
        // Numbers no f64 holds, as Python writes them.
        let calls = r#"[{"id": "c1", "index": 123456789012345678901234567890, "x": 1.0e400, "type": "function", "function": {"name": "f", "arguments": "{}"}}, 7, {"id": 2}, {"id": "old", "id": "c3"}]"#;
        let stored = format!(r#"{{"role": "assistant", "content": null, "tool_calls": {calls}}}"#);
        let message: ChatMessage = serde_json::from_str(&stored).unwrap();

        let tool_calls = message.tool_calls.as_ref().unwrap();
        assert!(tool_calls.is_list());
        assert_eq!(
            tool_calls.ids(),
            ["c1", "c3"],
            "only string ids of calls, the last of two"
        );
        let sent = serde_json::to_string(&message).unwrap();
        assert!(sent.contains(calls), "{sent}");
    }

    #[test]
    fn tool_calls_and_their_answers_round_trip() {
        let stored = r#"[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"done"},{"role":"assistant"}]"#;
        let messages: Vec<ChatMessage> = serde_json::from_str(stored).unwrap();

        assert_eq!(messages[0].content, MessageContent::Null);
        assert_eq!(messages[0].tool_calls.as_ref().unwrap().ids(), ["c1"]);
        assert_eq!(messages[1].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(messages[0].plain_text(), "");
        // A message without content is sent with `null`, as OpenAI allows.
        let again = serde_json::to_value(&messages).unwrap();
        let expected = stored.replace(
            r#"{"role":"assistant"}"#,
            r#"{"role":"assistant","content":null}"#,
        );
        assert_eq!(again, serde_json::from_str::<Value>(&expected).unwrap());
    }
}
