//! Building the request sent to the model: persona prompt, begin dialogs,
//! the stored conversation cut to `max_context_length` turns, and the new
//! user turn with quoted replies, images and notes about other files.

use astrbot_core::json_text::from_python_json;
use astrbot_core::provider::ImageUrl;
use astrbot_core::provider::ToolCalls;
use astrbot_core::store::PersonaRecord;
use astrbot_core::{ChatMessage, ContentPart, MessageContent, Store};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::value::RawValue;

use super::parts::{plain_text, UserPart};
use super::ChatTurn;
use crate::config::LoadedConfig;

/// The persona prompt used when the chosen persona is defined nowhere.
const DEFAULT_PERSONA_PROMPT: &str = "You are a helpful and friendly assistant.";

/// Images larger than this are described instead of inlined.
const MAX_INLINE_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

/// The persona a turn uses (see [`astrbot_core::persona::chosen_id`]).
#[derive(Debug, Default)]
pub struct PersonaChoice {
    /// Its id; `None` for no persona.
    pub id: Option<String>,
    /// The persona of that id in the database's `personas` table, if any.
    pub stored: Option<PersonaRecord>,
}

/// The system prompt and begin dialogs of the chosen persona: the one of
/// that name in the config's `persona` list, else the one in the database
/// (where AstrBot 4 keeps them), else the built-in default prompt.
pub fn persona_messages(config: &LoadedConfig, choice: &PersonaChoice) -> Vec<ChatMessage> {
    let Some(id) = choice.id.as_deref() else {
        return Vec::new();
    };
    let stored = choice
        .stored
        .as_ref()
        .filter(|persona| persona.persona_id == id);
    let (prompt, begin_dialogs) = match (config.persona(id), stored) {
        (Some(persona), _) => (&persona.prompt, &persona.begin_dialogs),
        (None, Some(persona)) => (&persona.system_prompt, &persona.begin_dialogs),
        (None, None) => return vec![ChatMessage::text("system", DEFAULT_PERSONA_PROMPT)],
    };
    let mut messages = Vec::new();
    if !prompt.is_empty() {
        messages.push(ChatMessage::text("system", prompt.clone()));
    }
    for (index, line) in begin_dialogs.iter().enumerate() {
        let role = if index % 2 == 0 { "user" } else { "assistant" };
        messages.push(ChatMessage::text(role, line.clone()));
    }
    messages
}

/// The stored messages that can be sent to the model, each read on its
/// own: one in a shape we do not know is left out of the request, not the
/// whole conversation, and stays stored as it is. So are messages no API
/// takes back: one with nothing to send (only AstrBot's reasoning parts),
/// and tool calls without all their answers, or answers without their call.
///
/// The list has room for `room` more messages (the persona's and the new
/// turn), so that a long conversation's request is built in it in place.
pub fn readable_history(stored: &[Box<RawValue>], room: usize) -> Vec<ChatMessage> {
    let messages = stored
        .iter()
        // As Python reads them: half a surrogate pair as U+FFFD, a key
        // given twice as its last value.
        .filter_map(|message| from_python_json::<ChatMessage>(message.get()).ok())
        .map(|mut message| {
            // Only a list of calls is a call.
            if !message.tool_calls.as_ref().is_some_and(ToolCalls::is_list) {
                message.tool_calls = None;
            }
            message
        });
    let mut sendable = Vec::with_capacity(stored.len() + room);
    let mut messages = messages.peekable();
    while let Some(mut message) = messages.next() {
        if message.role == "tool" {
            // An answer whose call was not kept.
            continue;
        }
        if let Some(calls) = message.tool_calls.take() {
            let mut answers = Vec::new();
            while let Some(answer) = messages.next_if(|next| next.role == "tool") {
                answers.push(answer);
            }
            let ids = calls.ids();
            // Answers to other calls are dropped first; the call goes only
            // if each of its ids still has an answer.
            answers.retain(|answer| {
                answer
                    .tool_call_id
                    .as_deref()
                    .is_some_and(|id| ids.iter().any(|call| call == id))
            });
            let answered = |id: &String| {
                answers
                    .iter()
                    .any(|answer| answer.tool_call_id.as_ref() == Some(id))
            };
            if !ids.is_empty() && ids.iter().all(answered) {
                message.tool_calls = Some(calls);
                sendable.push(message);
                sendable.extend(answers);
                continue;
            }
        }
        if has_content(&message) {
            sendable.push(message);
        }
    }
    sendable
}

/// Whether a message has something to send besides tool calls: text, or a
/// part other than the ones only AstrBot reads.
fn has_content(message: &ChatMessage) -> bool {
    match &message.content {
        MessageContent::Null => false,
        MessageContent::Text(_) => true,
        MessageContent::Parts(parts) => parts.iter().any(|part| !part.is_unsupported()),
    }
}

/// Where the last `max_turns` turns of a stored conversation start (all of
/// them when negative). A turn starts at a user message, so a cut never
/// splits one.
pub fn first_recent(history: &[ChatMessage], max_turns: i64) -> usize {
    let Ok(max_turns) = usize::try_from(max_turns) else {
        return 0;
    };
    let starts: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, message)| message.role == "user")
        .map(|(index, _)| index)
        .collect();
    if starts.len() <= max_turns {
        return 0;
    }
    match max_turns {
        0 => history.len(),
        _ => starts[starts.len() - max_turns],
    }
}

/// The new user turn twice over: as sent to the model (images inlined as
/// data URLs) and as kept in the conversation (images as short notes, so
/// stored conversations stay small).
pub async fn user_turn(
    config: &LoadedConfig,
    turn: &ChatTurn,
    store: &dyn Store,
) -> (ChatMessage, ChatMessage) {
    let parts = &turn.parts[..];
    let mut text = String::new();
    for part in parts {
        if let UserPart::Reply {
            message_id,
            selected_text,
        } = part
        {
            let quoted = quoted_text(message_id, selected_text, turn, store).await;
            if !quoted.is_empty() {
                text.push_str(&format!("[Quoted message: {quoted}]\n"));
            }
        }
    }
    let prompt = plain_text(parts).trim().to_owned();
    text.push_str(&apply_prefix(&config.chat.prompt_prefix, &prompt));

    let mut images = Vec::new();
    let mut model_notes = Vec::new();
    let mut stored_notes = Vec::new();
    for part in parts {
        if let UserPart::RemoteImage { url } = part {
            stored_notes.push("[Image]".to_owned());
            images.push(ContentPart::ImageUrl {
                image_url: ImageUrl { url: url.clone() },
            });
            continue;
        }
        let UserPart::Attachment {
            kind,
            filename,
            path,
            mime_type,
            ..
        } = part
        else {
            continue;
        };
        if kind == "image" {
            stored_notes.push(format!("[Image: {filename}]"));
            match inline_image(path, mime_type).await {
                Some(url) => images.push(ContentPart::ImageUrl {
                    image_url: ImageUrl { url },
                }),
                None => model_notes.push(format!("[Image: {filename} (could not be read)]")),
            }
        } else {
            let note = format!(
                "[{} attachment: {filename} ({mime_type})]",
                title_case(kind)
            );
            model_notes.push(note.clone());
            stored_notes.push(note);
        }
    }
    let model_text = with_notes(&text, &model_notes);
    let stored_text = with_notes(&text, &stored_notes);

    let for_model = if images.is_empty() {
        ChatMessage::text("user", model_text.trim().to_owned())
    } else {
        // A picture sent alone gets AstrBot's stand-in text: some
        // providers refuse an empty text part.
        let text = match model_text.trim() {
            "" => IMAGE_ONLY_TEXT.to_owned(),
            text => text.to_owned(),
        };
        let mut content = vec![ContentPart::Text { text }];
        content.extend(images);
        ChatMessage::new("user", MessageContent::Parts(content))
    };
    (
        for_model,
        ChatMessage::text("user", stored_text.trim().to_owned()),
    )
}

/// The text of a user message that is only pictures, as AstrBot writes it.
const IMAGE_ONLY_TEXT: &str = "[图片]";

fn with_notes(text: &str, notes: &[String]) -> String {
    let mut out = text.to_owned();
    for note in notes {
        out.push('\n');
        out.push_str(note);
    }
    out
}

/// AstrBot's `prompt_prefix`: `{{prompt}}` is replaced by the text, else the
/// prefix goes in front of it.
fn apply_prefix(prefix: &str, prompt: &str) -> String {
    if prefix.contains("{{prompt}}") {
        prefix.replace("{{prompt}}", prompt)
    } else {
        format!("{prefix}{prompt}")
    }
}

/// The text a reply part quotes: its `selected_text`, else the plain text
/// of the referenced UI-history turn, when that turn is of this session.
/// History ids count up across every user, so any other turn would be
/// someone else's message handed to this user's model.
async fn quoted_text(
    message_id: &serde_json::Value,
    selected: &str,
    turn: &ChatTurn,
    store: &dyn Store,
) -> String {
    if !selected.is_empty() {
        return selected.to_owned();
    }
    let id = match message_id {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let Some(id) = id else {
        return String::new();
    };
    let Ok(Some(quoted)) = store.get_history(id).await else {
        return String::new();
    };
    if quoted.platform_id != turn.platform_id || quoted.user_id != turn.session_id {
        return String::new();
    }
    quoted
        .content
        .get("message")
        .and_then(|m| m.as_array())
        .map(|parts| {
            parts
                .iter()
                .filter(|p| p.get("type").and_then(|t| t.as_str()) == Some("plain"))
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// Reads an image into a data URL with its real MIME type (AstrBot labels
/// every image JPEG).
async fn inline_image(path: &str, mime_type: &str) -> Option<String> {
    let size = tokio::fs::metadata(path).await.ok()?.len();
    if size > MAX_INLINE_IMAGE_BYTES {
        return None;
    }
    let bytes = tokio::fs::read(path).await.ok()?;
    let mime = if mime_type.starts_with("image/") {
        mime_type
    } else {
        "image/jpeg"
    };
    Some(format!("data:{mime};base64,{}", STANDARD.encode(bytes)))
}

fn title_case(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn turn(role: &str, text: &str) -> ChatMessage {
        ChatMessage::text(role, text)
    }

    /// `list`'s messages as a conversation stores them.
    fn stored(list: Value) -> Vec<Box<RawValue>> {
        serde_json::from_value::<Vec<Box<RawValue>>>(list).unwrap()
    }

    #[test]
    fn a_stored_message_that_does_not_read_is_left_out_alone() {
        let list = json!([
            {"role": "user", "content": "first"},
            {"role": "user", "content": 42},
            {"content": "no role"},
            {"role": "assistant", "content": "second"}
        ]);

        let history = readable_history(&stored(list), 0);

        assert_eq!(
            history,
            [turn("user", "first"), turn("assistant", "second")]
        );
    }

    #[test]
    fn a_key_given_twice_reads_as_its_last_value_as_python_reads_it() {
        let text = r#"[
            {"role": "user", "role": "user", "content": "first", "content": "q1"},
            {"role": "assistant", "content": [{"type": "text", "text": "zz", "text": "a1"}]}
        ]"#;
        let stored: Vec<Box<RawValue>> = serde_json::from_str(text).unwrap();

        let history = readable_history(&stored, 0);

        assert_eq!(history[0], turn("user", "q1"));
        assert_eq!(
            history[1].content,
            MessageContent::Parts(vec![ContentPart::Text { text: "a1".into() }])
        );
    }

    #[test]
    fn only_what_an_api_takes_back_is_sent() {
        let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}});
        let answer = |id: &str| json!({"role": "tool", "tool_call_id": id, "content": "done"});
        let think = json!([{"type": "think", "think": "hmm"}]);
        let list = json!([
            {"role": "user", "content": "q"},
            // Answered in full: kept, with its answers, an extra one left out.
            {"role": "assistant", "content": null, "tool_calls": [call("a"), call("b")]},
            answer("b"), answer("a"), answer("x"),
            // Only reasoning: nothing to send.
            {"role": "assistant", "content": think},
            // A call missing an answer, and the answer it has.
            {"role": "assistant", "content": think, "tool_calls": [call("c"), call("d")]},
            answer("c"),
            // A call that is no list; an answer with no call before it.
            {"role": "assistant", "content": "text", "tool_calls": "garbage"},
            answer("a"),
            {"role": "user"},
            {"role": "assistant", "content": "end"}
        ]);

        let sent = readable_history(&stored(list), 0);

        let shape: Vec<(String, Option<String>, bool)> = sent
            .iter()
            .map(|m| {
                (
                    m.role.clone(),
                    m.tool_call_id.clone(),
                    m.tool_calls.is_some(),
                )
            })
            .collect();
        let owned = |role: &str, id: Option<&str>, calls: bool| {
            (role.to_owned(), id.map(str::to_owned), calls)
        };
        assert_eq!(
            shape,
            [
                owned("user", None, false),
                owned("assistant", None, true),
                owned("tool", Some("b"), false),
                owned("tool", Some("a"), false),
                owned("assistant", None, false),
                owned("assistant", None, false),
            ]
        );
        assert_eq!(sent[4].content, MessageContent::Text("text".into()));
        assert_eq!(sent[5].content, MessageContent::Text("end".into()));
    }

    #[test]
    fn history_is_cut_at_turn_boundaries() {
        let history = vec![
            turn("user", "1"),
            turn("assistant", "a"),
            turn("user", "2"),
            turn("assistant", "b"),
        ];
        assert_eq!(first_recent(&history, -1), 0);
        assert_eq!(first_recent(&history, 1), 2);
        assert_eq!(first_recent(&history, 0), 4);
        assert_eq!(first_recent(&history, 5), 0);
    }

    #[test]
    fn prompt_prefix_wraps_or_prepends() {
        assert_eq!(apply_prefix("{{prompt}}", "hi"), "hi");
        assert_eq!(apply_prefix("Q: {{prompt}}!", "hi"), "Q: hi!");
        assert_eq!(apply_prefix("> ", "hi"), "> hi");
    }
}
