//! The storage trait and its records. One implementation per database
//! (SQLite today); the server only ever talks to `dyn Store`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;

pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong in the store, split so that callers can tell a clash
/// with existing data from a broken database.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was hit (for example a session id created twice).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The database itself failed.
    #[error("database error: {0}")]
    Backend(String),
}

/// A developer API key as stored. The plaintext is never kept; `key_hash`
/// is AstrBot's PBKDF2 hash and `lookup_hash` our fast SHA-256 index.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub name: String,
    pub key_hash: String,
    pub lookup_hash: Option<String>,
    pub key_prefix: String,
    /// `None` when the stored value is NULL or not a list: all scopes apply.
    pub scopes: Option<Vec<String>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What is needed to store a new API key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key_id: String,
    pub name: String,
    pub key_hash: String,
    pub lookup_hash: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A chat session (`platform_sessions`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub session_id: String,
    pub platform_id: String,
    pub creator: String,
    pub display_name: Option<String>,
    pub is_group: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of a creator's sessions plus the size of the whole filtered set.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<SessionRecord>,
    pub total: u64,
}

/// An uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentRecord {
    pub attachment_id: String,
    /// Absolute path of the stored file.
    pub path: String,
    /// `image`, `record`, `video` or `file`.
    pub kind: String,
    pub mime_type: String,
    pub created_at: DateTime<Utc>,
}

/// One turn of the UI history (`platform_message_history`); its `id` is the
/// integer that `message_saved` reports and `reply` parts refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    pub id: i64,
    pub platform_id: String,
    pub user_id: String,
    pub sender_id: Option<String>,
    pub sender_name: Option<String>,
    /// `{"type": "user"|"bot", "message": [parts], ...}`.
    pub content: Value,
    pub created_at: DateTime<Utc>,
}

/// A conversation's new content, for [`Store::save_answer`]: its
/// messages, each as the JSON text to store.
#[derive(Debug, Clone)]
pub struct ConversationUpdate {
    pub conversation_id: String,
    pub messages: Vec<Box<RawValue>>,
    pub token_usage: i64,
}

/// What a conversation's `content` column holds.
///
/// Each message stays the JSON text it was stored as: a turn sends the
/// model what it can read of them and saves them back unchanged, so a long
/// conversation costs about its own size in memory, not a tree of maps and
/// strings per message.
#[derive(Debug, Clone)]
pub enum ConversationContent {
    /// A list of messages; a `NULL` column is an empty one.
    Messages(Vec<Box<RawValue>>),
    /// Anything else (not JSON, JSON that is not a list, not text), with
    /// why. AstrBot could not go on with it either; it is kept as it is.
    Unreadable(String),
}

impl ConversationContent {
    /// The stored messages, if the content is a list of them.
    pub fn messages(&self) -> Option<&[Box<RawValue>]> {
        match self {
            ConversationContent::Messages(messages) => Some(messages),
            ConversationContent::Unreadable(_) => None,
        }
    }
}

impl PartialEq for ConversationContent {
    /// Equal when they hold the same messages, byte for byte.
    fn eq(&self, other: &ConversationContent) -> bool {
        match (self, other) {
            (ConversationContent::Messages(ours), ConversationContent::Messages(theirs)) => {
                ours.len() == theirs.len()
                    && ours.iter().zip(theirs).all(|(a, b)| a.get() == b.get())
            }
            (ConversationContent::Unreadable(ours), ConversationContent::Unreadable(theirs)) => {
                ours == theirs
            }
            _ => false,
        }
    }
}

/// What is needed to append one UI history turn.
#[derive(Debug, Clone)]
pub struct NewHistory {
    pub platform_id: String,
    pub user_id: String,
    pub sender_id: Option<String>,
    pub sender_name: Option<String>,
    pub content: Value,
}

impl NewHistory {
    /// A turn of webchat session `session_id` (the developer API's and
    /// the ChatUI's) sent by `sender`.
    pub fn webchat(session_id: &str, sender: &str, content: Value) -> Self {
        NewHistory {
            platform_id: "webchat".to_owned(),
            user_id: session_id.to_owned(),
            sender_id: Some(sender.to_owned()),
            sender_name: Some(sender.to_owned()),
            content,
        }
    }
}

/// An LLM conversation: the context the agent sends to the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRecord {
    pub conversation_id: String,
    pub platform_id: String,
    /// The UMO this conversation belongs to.
    pub user_id: String,
    /// A JSON list of OpenAI-style messages, as stored.
    pub content: ConversationContent,
    pub title: Option<String>,
    pub persona_id: Option<String>,
    pub token_usage: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A snapshot of how far the database has been written. Two equal stamps
/// taken at different times mean that no commit happened in between, by
/// this process or any other, so anything read after the first is still
/// current. Lets callers cache hot reads without missing a change made
/// elsewhere (for example a key revoked with the CLI while the server runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    /// What the database file shows of every process's commits.
    pub shared: [u8; 96],
    /// Writes made through this store, counted in memory, so that this
    /// process's own changes always show even if the file cannot be
    /// watched reliably.
    pub local_writes: u64,
}

/// The persistence interface of astrbot-rs. Every method is one short
/// transaction; implementations must be safe to share between tasks.
#[async_trait]
pub trait Store: Send + Sync {
    /// The current [`ChangeStamp`], read without a query; `None` when this
    /// store cannot tell, and then callers must not cache.
    fn change_stamp(&self) -> Option<ChangeStamp> {
        None
    }

    // API keys.
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKeyRecord>;
    /// All keys, newest first, revoked and expired ones included.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    async fn get_api_key(&self, key_id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// The key with this SHA-256 lookup hash, if it is neither revoked nor
    /// expired at `now`.
    async fn find_active_api_key_by_lookup(
        &self,
        lookup_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>>;
    /// The key with this PBKDF2 hash, if active at `now` (keys that came from
    /// an AstrBot database and have no lookup hash yet).
    async fn find_active_api_key_by_hash(
        &self,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>>;
    /// How many keys have no lookup hash yet.
    async fn count_api_keys_without_lookup(&self) -> StoreResult<u64>;
    async fn set_api_key_lookup(&self, key_id: &str, lookup_hash: &str) -> StoreResult<()>;
    /// Sets `last_used_at` (and `updated_at`) to `now`.
    async fn touch_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Sets `revoked_at`; false when no such key exists.
    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Deletes the row; false when no such key exists.
    async fn delete_api_key(&self, key_id: &str) -> StoreResult<bool>;

    // Chat sessions.
    async fn get_session(&self, session_id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Inserts a session; `StoreError::Conflict` when the id exists.
    async fn create_session(
        &self,
        session_id: &str,
        platform_id: &str,
        creator: &str,
        is_group: bool,
    ) -> StoreResult<SessionRecord>;
    /// Inserts a webchat session (not a group) together with its first UI
    /// history turn, sent by its creator, in one transaction: a new chat's
    /// first message costs one commit, not two. `StoreError::Conflict`,
    /// with nothing written, when the session id exists.
    async fn create_session_with_turn(
        &self,
        session_id: &str,
        creator: &str,
        content: Value,
    ) -> StoreResult<HistoryRecord>;
    /// A creator's sessions, `updated_at` newest first, optionally of one
    /// platform, excluding sessions attached to a ChatUI project. `page`
    /// starts at 1.
    async fn list_sessions(
        &self,
        creator: &str,
        platform_id: Option<&str>,
        page: u32,
        page_size: u32,
    ) -> StoreResult<SessionPage>;
    /// Sets the display name and bumps `updated_at`, if the session has
    /// no name yet (checked in the same statement, so a name set
    /// meanwhile is never replaced).
    async fn set_session_display_name(&self, session_id: &str, name: &str) -> StoreResult<()>;

    // Attachments.
    async fn create_attachment(
        &self,
        attachment_id: &str,
        path: &str,
        kind: &str,
        mime_type: &str,
    ) -> StoreResult<AttachmentRecord>;
    async fn get_attachment(&self, attachment_id: &str) -> StoreResult<Option<AttachmentRecord>>;

    // UI message history.
    async fn insert_history(&self, turn: NewHistory) -> StoreResult<HistoryRecord>;
    async fn get_history(&self, id: i64) -> StoreResult<Option<HistoryRecord>>;
    /// The turns of one chat, oldest first.
    async fn list_history(
        &self,
        platform_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<HistoryRecord>>;

    // LLM conversations.
    async fn create_conversation(
        &self,
        platform_id: &str,
        umo: &str,
    ) -> StoreResult<ConversationRecord>;
    /// Creates a conversation for `umo` and makes it the current one (its
    /// id stored as the `umo` preference `selection_key`), in one
    /// transaction: no conversation is left that nothing selects.
    async fn create_selected_conversation(
        &self,
        platform_id: &str,
        umo: &str,
        selection_key: &str,
    ) -> StoreResult<ConversationRecord>;
    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Option<ConversationRecord>>;
    /// Replaces the stored messages and the token count.
    async fn update_conversation(
        &self,
        conversation_id: &str,
        content: &Value,
        token_usage: i64,
    ) -> StoreResult<()>;
    /// Saves the end of an agent run at once: the bot's turn in the UI
    /// history and, when the answer is kept, the conversation's new
    /// messages. Either both are saved or neither.
    async fn save_answer(
        &self,
        turn: NewHistory,
        conversation: Option<ConversationUpdate>,
    ) -> StoreResult<HistoryRecord>;

    // Preferences: AstrBot's scoped key/value table (config registry,
    // config routing, selected conversation …). Values are stored wrapped
    // as `{"val": value}` like AstrBot does.
    async fn get_preference(
        &self,
        scope: &str,
        scope_id: &str,
        key: &str,
    ) -> StoreResult<Option<Value>>;
    async fn put_preference(
        &self,
        scope: &str,
        scope_id: &str,
        key: &str,
        value: &Value,
    ) -> StoreResult<()>;
    async fn delete_preference(&self, scope: &str, scope_id: &str, key: &str) -> StoreResult<()>;

    /// What a chat turn reads before it calls the model, in one snapshot
    /// (see [`ChatStateQuery`]): the session's provider preference, the
    /// conversation whose id its conversation preference holds (none when
    /// that id is not a string or names no conversation), and the persona
    /// they choose. One read instead of several matters at every turn.
    async fn get_chat_state(&self, query: ChatStateQuery<'_>) -> StoreResult<ChatState>;
}

/// What [`Store::get_chat_state`] reads: preferences of `umo` by key, and
/// the persona to use when neither the session nor its conversation names
/// one.
#[derive(Debug, Clone, Copy)]
pub struct ChatStateQuery<'a> {
    pub umo: &'a str,
    pub provider_key: &'a str,
    pub conversation_key: &'a str,
    /// The preference whose object may carry a `persona_id`.
    pub session_config_key: &'a str,
    pub default_persona: &'a str,
}

/// See [`Store::get_chat_state`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatState {
    /// The session's chosen provider, as stored (normally a string id).
    pub provider_preference: Option<Value>,
    /// The session's current conversation, when it has one that exists.
    pub conversation: Option<ConversationRecord>,
    /// The persona the turn uses (see [`crate::persona::chosen_id`]);
    /// `None` for none.
    pub persona_id: Option<String>,
    /// That persona as the `personas` table holds it, when it does.
    pub stored_persona: Option<PersonaRecord>,
}

/// A persona as AstrBot 4 stores it (the `personas` table), with what a
/// chat uses of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonaRecord {
    pub persona_id: String,
    pub system_prompt: String,
    /// Opening exchanges, user and assistant alternating.
    pub begin_dialogs: Vec<String>,
}
