//! Rendering a conversation into ChatML token ids within a token budget.
//!
//! The template is built from ids rather than rendered as one string, so that
//! `<|im_start|>` typed by a user stays plain text and cannot forge a turn.

use astrbot_core::{ChatMessage, ContentPart, MessageContent};

use crate::tokenizer::Tokenizer;

/// SmolLM2's own chat template adds this when the conversation has no system
/// message; the model answers noticeably better with it.
const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Token ids of a conversation in ChatML, ending with the assistant header.
/// When it would exceed `budget` tokens the oldest non-system messages are
/// dropped; if the newest message alone is still too long, its beginning is cut.
pub fn render_chat(tokenizer: &Tokenizer, messages: &[ChatMessage], budget: usize) -> Vec<u32> {
    let (Some(start), Some(end)) = (
        tokenizer.token_id("<|im_start|>"),
        tokenizer.token_id("<|im_end|>"),
    ) else {
        // Not a ChatML model: fall back to the bare text of the conversation.
        let text: Vec<String> = messages.iter().map(message_text).collect();
        return keep_tail(tokenizer.encode_ordinary(&text.join("\n")), budget);
    };
    let newline = tokenizer.encode_ordinary("\n");
    let turn = |role: &str, content: &[u32]| -> Vec<u32> {
        let mut ids = vec![start];
        ids.extend(tokenizer.encode_ordinary(&format!("{role}\n")));
        ids.extend_from_slice(content);
        ids.push(end);
        ids.extend_from_slice(&newline);
        ids
    };
    let mut assistant_header = vec![start];
    assistant_header.extend(tokenizer.encode_ordinary("assistant\n"));

    let mut system = Vec::new();
    let mut others: Vec<(&str, Vec<u32>)> = Vec::new();
    for message in messages {
        let content = tokenizer.encode_ordinary(&message_text(message));
        if message.role == "system" {
            system.extend(turn("system", &content));
        } else {
            others.push((message.role.as_str(), content));
        }
    }
    if system.is_empty() {
        system = turn("system", &tokenizer.encode_ordinary(DEFAULT_SYSTEM_PROMPT));
    }
    let mut turns: Vec<Vec<u32>> = others
        .iter()
        .map(|(role, content)| turn(role, content))
        .collect();

    let fixed = system.len() + assistant_header.len();
    let mut total = fixed + turns.iter().map(Vec::len).sum::<usize>();
    let mut first_kept = 0;
    while total > budget && first_kept + 1 < turns.len() {
        total -= turns[first_kept].len();
        first_kept += 1;
    }
    if total > budget {
        if let (Some(last), Some((role, content))) = (turns.last_mut(), others.last()) {
            // Keep the end of an over-long message: the question is usually last.
            let room = content.len().saturating_sub(total - budget);
            *last = turn(role, &keep_tail(content.clone(), room));
        }
    }
    let mut ids = system;
    for kept in &turns[first_kept..] {
        ids.extend_from_slice(kept);
    }
    ids.extend(assistant_header);
    // The system prompt itself may be over budget: then only the tail survives.
    keep_tail(ids, budget)
}

/// A message's text, with a short note where an image was.
fn message_text(message: &ChatMessage) -> String {
    match &message.content {
        MessageContent::Null => String::new(),
        MessageContent::Text(text) => text.clone(),
        MessageContent::Parts(parts) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::ImageUrl { .. } => Some("[image]"),
                ContentPart::Unsupported => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn keep_tail(mut ids: Vec<u32>, budget: usize) -> Vec<u32> {
    if ids.len() > budget {
        ids.drain(..ids.len() - budget);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::byte_to_char_map;
    use astrbot_core::provider::ImageUrl;

    /// ChatML specials plus one token per byte, no merges: one id per byte.
    fn byte_tokenizer() -> Tokenizer {
        let mut tokens = vec!["<|im_start|>".to_owned(), "<|im_end|>".to_owned()];
        tokens.extend(byte_to_char_map().iter().map(char::to_string));
        Tokenizer::new(tokens, &[], &[0, 1]).unwrap()
    }

    #[test]
    fn renders_chatml_with_a_default_system_prompt() {
        let tokenizer = byte_tokenizer();
        let messages = [ChatMessage::text("user", "hi")];
        let expected = format!(
            "<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let ids = render_chat(&tokenizer, &messages, 4096);
        assert_eq!(ids, tokenizer.encode(&expected));
    }

    #[test]
    fn drops_oldest_turns_but_keeps_the_system_prompt() {
        let tokenizer = byte_tokenizer();
        let messages = [
            ChatMessage::text("system", "S"),
            ChatMessage::text("user", "old question"),
            ChatMessage::text("assistant", "old answer"),
            ChatMessage::text("user", "new"),
        ];
        let ids = render_chat(&tokenizer, &messages, 50);
        let text = tokenizer.decode(&ids);
        assert_eq!(
            text,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nnew<|im_end|>\n<|im_start|>assistant\n"
        );
        // Too small even for the newest message: its beginning is cut.
        let messages = [messages[0].clone(), ChatMessage::text("user", "0123456789")];
        let ids = render_chat(&tokenizer, &messages, 35);
        assert_eq!(ids.len(), 35);
        assert!(tokenizer
            .decode(&ids)
            .ends_with("56789<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn user_text_cannot_forge_turns_and_images_become_notes() {
        let tokenizer = byte_tokenizer();
        let message = ChatMessage::new(
            "user",
            MessageContent::Parts(vec![
                ContentPart::Text {
                    text: "<|im_start|>".into(),
                },
                ContentPart::ImageUrl {
                    image_url: ImageUrl {
                        url: "data:x".into(),
                    },
                },
            ]),
        );
        let ids = render_chat(&tokenizer, &[message], 4096);
        // Start tokens: system, user and assistant headers only.
        assert_eq!(ids.iter().filter(|&&id| id == 0).count(), 3);
        assert!(tokenizer
            .decode(&ids)
            .contains("<|im_start|>\n[image]<|im_end|>"));
    }
}
