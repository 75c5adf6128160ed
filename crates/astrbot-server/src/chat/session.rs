//! Per-session controls behind the built-in commands: start a new
//! conversation, clear the current one, and choose the session's provider
//! and model. Choices are preferences keyed by the UMO, as in AstrBot.

use serde_json::{json, Value};

use super::run::{CONVERSATION_PREFERENCE, PROVIDER_PREFERENCE};
use super::ChatService;
use astrbot_core::store::ConversationRecord;
use astrbot_core::StoreResult;

/// Preference holding a session's model override (ours; AstrBot changes the
/// provider's model for everyone instead).
const MODEL_PREFERENCE: &str = "selected_model";

impl ChatService {
    /// Starts a fresh conversation for the session and makes it the
    /// current one; the old one is kept.
    pub async fn new_conversation(&self, umo: &str) -> StoreResult<ConversationRecord> {
        let platform_id = umo.split(':').next().unwrap_or("webchat");
        self.store
            .create_selected_conversation(platform_id, umo, CONVERSATION_PREFERENCE)
            .await
    }

    /// Forgets the current conversation's messages.
    pub async fn reset_conversation(&self, umo: &str) -> StoreResult<()> {
        let conversation = self.current_conversation(umo).await?;
        self.store
            .update_conversation(&conversation.conversation_id, &json!([]), 0)
            .await
    }

    pub async fn set_session_provider(&self, umo: &str, provider_id: &str) -> StoreResult<()> {
        let value = Value::String(provider_id.to_owned());
        self.store
            .put_preference("umo", umo, PROVIDER_PREFERENCE, &value)
            .await
    }

    pub async fn set_session_model(&self, umo: &str, model: &str) -> StoreResult<()> {
        let value = Value::String(model.to_owned());
        self.store
            .put_preference("umo", umo, MODEL_PREFERENCE, &value)
            .await
    }

    /// The session's model override, if one was chosen.
    pub async fn session_model(&self, umo: &str) -> Option<String> {
        self.store
            .get_preference("umo", umo, MODEL_PREFERENCE)
            .await
            .ok()
            .flatten()
            .and_then(|value| value.as_str().map(str::to_owned))
            .filter(|model| !model.is_empty())
    }
}
