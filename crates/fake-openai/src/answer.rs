//! Turning a request and a `Behaviour` into the answer's pieces: the text,
//! its deltas and the token counts. Pure functions, so they are easy to test.

use serde_json::Value;

use crate::behaviour::Behaviour;

/// The text of the last `user` message: a string content, or the `text`
/// parts of a list content joined by newlines.
pub fn last_user_text(body: &Value) -> String {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    messages
        .iter()
        .rev()
        .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
        .map(message_text)
        .unwrap_or_default()
}

fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The answer text for this request.
pub fn answer_text(behaviour: &Behaviour, body: &Value) -> String {
    match &behaviour.text {
        Some(text) => text.clone(),
        None => format!("Echo: {}", last_user_text(body)),
    }
}

/// Splits `text` into the deltas to stream.
pub fn split_deltas(text: &str, chunks: Option<usize>) -> Vec<String> {
    match chunks {
        None => split_words(text),
        Some(count) => split_even(text, count),
    }
}

/// One piece per word, each keeping the whitespace before it, so that the
/// pieces concatenate back to the text.
pub fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for ch in text.chars() {
        if ch.is_whitespace() && in_word {
            pieces.push(std::mem::take(&mut current));
            in_word = false;
        } else if !ch.is_whitespace() {
            in_word = true;
        }
        current.push(ch);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Exactly `count` non-empty pieces of near-equal length. A text shorter
/// than `count` characters is repeated (space-separated) until it is long
/// enough, because benchmarks ask for a fixed number of tokens.
fn split_even(text: &str, count: usize) -> Vec<String> {
    if count == 0 {
        return Vec::new();
    }
    let base = if text.is_empty() { "token" } else { text };
    let mut chars: Vec<char> = base.chars().collect();
    while chars.len() < count {
        chars.push(' ');
        chars.extend(base.chars());
    }
    let per_piece = chars.len() / count;
    let mut extra = chars.len() % count;
    let mut pieces = Vec::with_capacity(count);
    let mut start = 0;
    for _ in 0..count {
        let mut len = per_piece;
        if extra > 0 {
            len += 1;
            extra -= 1;
        }
        pieces.push(chars[start..start + len].iter().collect());
        start += len;
    }
    pieces
}

/// Reported usage: `(prompt_tokens, cached_tokens, completion_tokens)`.
pub fn usage_numbers(behaviour: &Behaviour, body: &Value, deltas: usize) -> (u64, u64, u64) {
    let prompt = behaviour
        .prompt_tokens
        .unwrap_or_else(|| rough_prompt_tokens(body));
    let cached = behaviour.cached_tokens.min(prompt);
    (prompt, cached, deltas as u64)
}

/// About four characters a token, plus a few tokens of framing per message.
fn rough_prompt_tokens(body: &Value) -> u64 {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return 0;
    };
    messages
        .iter()
        .map(|message| 4 + (message_text(message).chars().count() as u64).div_ceil(4))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echoes_the_last_user_message() {
        let body = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "data:"}}]}
        ]});
        assert_eq!(answer_text(&Behaviour::default(), &body), "Echo: second");
    }

    #[test]
    fn word_split_concatenates_back() {
        let pieces = split_words("Echo: hello  world");
        assert_eq!(pieces, vec!["Echo:", " hello", "  world"]);
    }

    #[test]
    fn even_split_gives_exactly_n_pieces() {
        let pieces = split_even("abcdefg", 3);
        assert_eq!(pieces, vec!["abc", "de", "fg"]);
        let pieces = split_even("hi", 5);
        assert_eq!(pieces.len(), 5);
        assert!(pieces.iter().all(|p| !p.is_empty()));
    }
}
