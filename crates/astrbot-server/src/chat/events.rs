//! The SSE event catalogue of AstrBot's chat endpoint, each rendered with
//! AstrBot's field names and order.

use std::sync::Arc;

use astrbot_core::{Delta, TokenUsage};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::json::{write_json_str, write_python_json};

/// One event of a chat stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Always first: the session the stream belongs to.
    SessionId { session_id: String },
    /// Bot text: a streamed delta, a whole reply, or a reasoning delta.
    Plain {
        text: Delta,
        streaming: bool,
        chain_type: Option<&'static str>,
        message_id: Arc<str>,
    },
    /// Token usage and timing of the agent run.
    AgentStats(AgentStats),
    /// Streaming only: the whole text after the last delta.
    Complete {
        text: String,
        reasoning: String,
        message_id: Arc<str>,
    },
    /// A bot turn was written to the UI history under this id.
    MessageSaved { id: i64, created_at: String },
    /// Always last.
    End { message_id: Arc<str> },
}

/// The `agent_stats` payload, serialised with AstrBot's field names and
/// order (`token_usage` is [`TokenUsage`]'s own shape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AgentStats {
    #[serde(rename = "token_usage")]
    pub usage: TokenUsage,
    /// Seconds since the epoch.
    pub start_time: f64,
    pub end_time: f64,
    /// Seconds from the start to the first text.
    pub time_to_first_token: f64,
}

impl AgentStats {
    /// The payload as a JSON value, for storing with the bot turn.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The event's JSON, keys in AstrBot's order. Written straight to the
/// output: a stream sends one of these per token, so no intermediate
/// `Value` is built.
impl Serialize for ChatEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            ChatEvent::SessionId { session_id } => {
                map.serialize_entry("type", "session_id")?;
                map.serialize_entry("data", &())?;
                map.serialize_entry("session_id", session_id)?;
            }
            ChatEvent::Plain {
                text,
                streaming,
                chain_type,
                message_id,
            } => {
                map.serialize_entry("type", "plain")?;
                map.serialize_entry("data", text.as_str())?;
                map.serialize_entry("streaming", streaming)?;
                map.serialize_entry("chain_type", chain_type)?;
                map.serialize_entry("message_id", &**message_id)?;
            }
            ChatEvent::AgentStats(stats) => {
                map.serialize_entry("type", "agent_stats")?;
                map.serialize_entry("data", stats)?;
            }
            ChatEvent::Complete {
                text,
                reasoning,
                message_id,
            } => {
                map.serialize_entry("type", "complete")?;
                map.serialize_entry("data", text)?;
                map.serialize_entry("reasoning", reasoning)?;
                map.serialize_entry("streaming", &true)?;
                map.serialize_entry("message_id", &**message_id)?;
            }
            ChatEvent::MessageSaved { id, created_at } => {
                map.serialize_entry("type", "message_saved")?;
                map.serialize_entry("data", &SavedWire { id, created_at })?;
            }
            ChatEvent::End { message_id } => {
                map.serialize_entry("type", "end")?;
                map.serialize_entry("data", "")?;
                map.serialize_entry("streaming", &false)?;
                map.serialize_entry("message_id", &**message_id)?;
            }
        }
        map.end()
    }
}

impl ChatEvent {
    /// The event's JSON as AstrBot's SSE body carries it (see
    /// [`write_python_json`]), appended to `out`. A stream sends a `plain`
    /// delta per token, so that one is written field by field: through
    /// serde, its five keys and the constant values took about a tenth of
    /// the server's instructions under chat load. The output is the same
    /// byte for byte; the tests compare the two.
    pub fn write_python_json(&self, out: &mut Vec<u8>) {
        let ChatEvent::Plain {
            text,
            streaming,
            chain_type,
            message_id,
        } = self
        else {
            return write_python_json(out, self);
        };
        out.extend_from_slice(br#"{"type": "plain", "data": "#);
        write_json_str(out, text);
        out.extend_from_slice(if *streaming {
            br#", "streaming": true, "chain_type": "#
        } else {
            br#", "streaming": false, "chain_type": "#
        });
        match chain_type {
            Some(kind) => write_json_str(out, kind),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#", "message_id": "#);
        write_json_str(out, message_id);
        out.push(b'}');
    }
}

#[derive(Serialize)]
struct SavedWire<'a> {
    id: &'a i64,
    created_at: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_carry_astrbots_fields_in_astrbots_order() {
        let plain = ChatEvent::Plain {
            text: "hé".into(),
            streaming: true,
            chain_type: Some("reasoning"),
            message_id: "m".into(),
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"type":"plain","data":"hé","streaming":true,"chain_type":"reasoning","message_id":"m"}"#
        );

        let stats = AgentStats {
            usage: TokenUsage {
                input_other: 3,
                input_cached: 1,
                output: 2,
            },
            start_time: 1.5,
            end_time: 2.0,
            time_to_first_token: 0.25,
        };
        assert_eq!(
            serde_json::to_value(ChatEvent::AgentStats(stats)).unwrap(),
            json!({"type": "agent_stats", "data": {
                "token_usage": {"input_other": 3, "input_cached": 1, "output": 2},
                "start_time": 1.5, "end_time": 2.0, "time_to_first_token": 0.25,
            }})
        );
        let keys: Vec<String> = stats
            .to_json()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "token_usage",
                "start_time",
                "end_time",
                "time_to_first_token"
            ]
        );

        let cases = [
            (
                ChatEvent::SessionId {
                    session_id: "s".into(),
                },
                r#"{"type":"session_id","data":null,"session_id":"s"}"#,
            ),
            (
                ChatEvent::Complete {
                    text: "t".into(),
                    reasoning: String::new(),
                    message_id: "m".into(),
                },
                r#"{"type":"complete","data":"t","reasoning":"","streaming":true,"message_id":"m"}"#,
            ),
            (
                ChatEvent::MessageSaved {
                    id: 7,
                    created_at: "c".into(),
                },
                r#"{"type":"message_saved","data":{"id":7,"created_at":"c"}}"#,
            ),
            (
                ChatEvent::End {
                    message_id: "m".into(),
                },
                r#"{"type":"end","data":"","streaming":false,"message_id":"m"}"#,
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(serde_json::to_string(&event).unwrap(), expected);
        }
    }

    #[test]
    fn plain_deltas_written_by_hand_match_serde() {
        let texts = ["", "tok ", "你好 😀", "a \"b\" \\ \n\t\u{1}"];
        for text in texts {
            for streaming in [true, false] {
                for chain_type in [None, Some("reasoning"), Some("a\"b")] {
                    let event = ChatEvent::Plain {
                        text: text.into(),
                        streaming,
                        chain_type,
                        message_id: "5f0c\"id".into(),
                    };
                    let (mut by_hand, mut by_serde) = (Vec::new(), Vec::new());
                    event.write_python_json(&mut by_hand);
                    write_python_json(&mut by_serde, &event);
                    assert_eq!(
                        String::from_utf8(by_hand).unwrap(),
                        String::from_utf8(by_serde).unwrap()
                    );
                }
            }
        }
        let mut other = Vec::new();
        ChatEvent::End {
            message_id: "m".into(),
        }
        .write_python_json(&mut other);
        assert_eq!(
            String::from_utf8(other).unwrap(),
            r#"{"type": "end", "data": "", "streaming": false, "message_id": "m"}"#
        );
    }
}
