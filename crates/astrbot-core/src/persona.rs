//! Which persona a chat turn uses, as AstrBot chooses it.

/// The persona id that means "no persona", in a conversation or a config.
pub const NO_PERSONA: &str = "[%None]";

/// The persona id a turn uses, highest priority first: the session's
/// `session_service_config.persona_id` (`session`), the conversation's
/// `persona_id` (`conversation`), then the config's `default_personality`.
/// `None` means no persona: [`NO_PERSONA`] wherever it is chosen.
pub fn chosen_id<'a>(
    session: Option<&'a str>,
    conversation: Option<&'a str>,
    default: &'a str,
) -> Option<&'a str> {
    let chosen = session
        .filter(|id| !id.is_empty())
        .or(conversation)
        .unwrap_or(default);
    (chosen != NO_PERSONA).then_some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_then_the_conversation_then_the_config_choose() {
        assert_eq!(chosen_id(Some("s"), Some("c"), "d"), Some("s"));
        assert_eq!(chosen_id(Some(""), Some("c"), "d"), Some("c"));
        assert_eq!(chosen_id(None, Some("c"), "d"), Some("c"));
        assert_eq!(chosen_id(None, None, "d"), Some("d"));
        // A conversation set to no persona does not fall back to the config.
        assert_eq!(chosen_id(None, Some(NO_PERSONA), "d"), None);
        assert_eq!(chosen_id(Some(NO_PERSONA), Some("c"), "d"), None);
        assert_eq!(chosen_id(None, None, NO_PERSONA), None);
    }
}
