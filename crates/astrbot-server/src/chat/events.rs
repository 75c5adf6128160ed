//! The SSE event catalogue of AstrBot's chat endpoint, each rendered with
//! AstrBot's field names and order.

use astrbot_core::TokenUsage;
use serde_json::{json, Value};

/// One event of a chat stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Always first: the session the stream belongs to.
    SessionId { session_id: String },
    /// Bot text: a streamed delta, a whole reply, or a reasoning delta.
    Plain {
        text: String,
        streaming: bool,
        chain_type: Option<&'static str>,
        message_id: String,
    },
    /// Token usage and timing of the agent run.
    AgentStats(AgentStats),
    /// Streaming only: the whole text after the last delta.
    Complete {
        text: String,
        reasoning: String,
        message_id: String,
    },
    /// A bot turn was written to the UI history under this id.
    MessageSaved { id: i64, created_at: String },
    /// Always last.
    End { message_id: String },
}

/// The `agent_stats` payload.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AgentStats {
    pub usage: TokenUsage,
    /// Seconds since the epoch.
    pub start_time: f64,
    pub end_time: f64,
    /// Seconds from the start to the first text.
    pub time_to_first_token: f64,
}

impl AgentStats {
    pub fn to_json(&self) -> Value {
        json!({
            "token_usage": {
                "input_other": self.usage.input_other,
                "input_cached": self.usage.input_cached,
                "output": self.usage.output,
            },
            "start_time": self.start_time,
            "end_time": self.end_time,
            "time_to_first_token": self.time_to_first_token,
        })
    }
}

impl ChatEvent {
    /// The event's JSON, keys in AstrBot's order.
    pub fn to_json(&self) -> Value {
        match self {
            ChatEvent::SessionId { session_id } => {
                json!({"type": "session_id", "data": null, "session_id": session_id})
            }
            ChatEvent::Plain {
                text,
                streaming,
                chain_type,
                message_id,
            } => json!({
                "type": "plain",
                "data": text,
                "streaming": streaming,
                "chain_type": chain_type,
                "message_id": message_id,
            }),
            ChatEvent::AgentStats(stats) => {
                json!({"type": "agent_stats", "data": stats.to_json()})
            }
            ChatEvent::Complete {
                text,
                reasoning,
                message_id,
            } => json!({
                "type": "complete",
                "data": text,
                "reasoning": reasoning,
                "streaming": true,
                "message_id": message_id,
            }),
            ChatEvent::MessageSaved { id, created_at } => json!({
                "type": "message_saved",
                "data": {"id": id, "created_at": created_at},
            }),
            ChatEvent::End { message_id } => json!({
                "type": "end",
                "data": "",
                "streaming": false,
                "message_id": message_id,
            }),
        }
    }
}
