//! Session titles: after a session's first answered turn, the same provider
//! is asked in the background for a short title, which becomes the
//! session's `display_name`, as AstrBot does.

use std::sync::Arc;

use astrbot_core::{ChatMessage, ChatProvider, ChatRequest};

use super::{ChatService, ChatTurn};

const TITLE_PROMPT: &str = "Write a title of at most ten words for a chat that starts with the \
user message below. Answer with the title only, no quotes. If no sensible title fits, answer \
<None>.";

/// Titles longer than this (in characters) are cut.
const MAX_TITLE_CHARS: usize = 80;

impl ChatService {
    pub(super) fn spawn_title(
        &self,
        provider: Arc<dyn ChatProvider>,
        turn: &ChatTurn,
        text: String,
    ) {
        let store = self.store.clone();
        let session_id = turn.session_id.clone();
        let new_session = turn.new_session;
        let model = turn.selected_model.clone().filter(|m| !m.is_empty());
        tokio::spawn(async move {
            // A session this turn's request created is a webchat one with
            // no name; any other is read first, so that no title is asked
            // for one that has a name or is not a webchat session.
            if !new_session {
                match store.get_session(&session_id).await {
                    Ok(Some(session)) if session.display_name.is_none() => {}
                    _ => return,
                }
            }
            let request = ChatRequest {
                messages: vec![
                    ChatMessage::text("system", TITLE_PROMPT),
                    ChatMessage::text("user", text),
                ],
                model,
                max_tokens: Some(32),
            };
            let title = match provider.chat(request).await {
                Ok(response) => clean_title(&response.text),
                Err(error) => {
                    tracing::debug!(session.id = %session_id, %error, "no session title");
                    return;
                }
            };
            if let Some(title) = title {
                if let Err(error) = store.set_session_display_name(&session_id, &title).await {
                    tracing::warn!(session.id = %session_id, %error, "could not save the session title");
                }
            }
        });
    }
}

/// The first non-empty line, quotes trimmed, cut to a sane length; `None`
/// when the model declined.
fn clean_title(answer: &str) -> Option<String> {
    if answer.contains("<None>") {
        return None;
    }
    let line = answer
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())?;
    let line = line.trim_matches(|c| matches!(c, '"' | '\'' | '“' | '”' | '#' | '*'));
    let title: String = line.trim().chars().take(MAX_TITLE_CHARS).collect();
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_cleaned_or_declined() {
        assert_eq!(
            clean_title("\n \"Paris trip\"\nmore"),
            Some("Paris trip".into())
        );
        assert_eq!(clean_title("<None>"), None);
        assert_eq!(clean_title("   "), None);
        assert_eq!(clean_title(&"x".repeat(200)).map(|t| t.len()), Some(80));
    }
}
