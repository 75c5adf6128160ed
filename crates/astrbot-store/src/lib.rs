//! The SQLite implementation of `astrbot_core::Store`.
//!
//! One file per table family; each holds free functions over the pool, and
//! the `Store` impl below only forwards to them. Queries avoid SQLite-only
//! functions and compare timestamps against values bound from Rust, so the
//! same SQL can later serve PostgreSQL.

mod api_keys;
mod attachments;
mod change_stamp;
mod codec;
mod conversations;
mod history;
mod preferences;
mod sessions;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use astrbot_core::store::{
    ApiKeyRecord, AttachmentRecord, ConversationRecord, HistoryRecord, NewApiKey, NewHistory,
    SessionPage, SessionRecord,
};
use astrbot_core::{ChangeStamp, Store, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use change_stamp::WalIndexWatch;

/// Reading connections: WAL lets readers run beside the one writer.
const READ_CONNECTIONS: u32 = 4;

/// How long a statement waits for another connection's write lock before
/// failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations in `migrations/`, compiled into the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A `Store` backed by one SQLite file. Cheap to clone: clones share the
/// pools.
///
/// SQLite takes one writer at a time. Writes go through a pool of a single
/// connection, so concurrent writers queue in the pool (async, in order)
/// instead of colliding on the file lock, where SQLite's busy handler
/// would make them sleep and retry. Reads use their own pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    wal_index: Arc<WalIndexWatch>,
    /// Writes made through this store (and its clones), for change stamps.
    local_writes: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings
    /// its schema up to date. Safe to call on a file opened before.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode and
            // only risks the last commits on power loss; FULL costs an fsync
            // per commit.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let opening =
            |e: sqlx::Error| StoreError::Backend(format!("opening {}: {e}", path.display()));
        // Pooled connections are not pinged before each use (sqlx's
        // default): a SQLite connection is a local file that cannot drop
        // like a network link, and the ping was a second round trip to the
        // connection's worker thread for every query.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(opening)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating {}: {e}", path.display())))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(opening)?;
        // The `-shm` file exists once the connections above are open in
        // WAL mode.
        let wal_index = Arc::new(WalIndexWatch::new(path));
        Ok(SqliteStore {
            reader,
            writer,
            wal_index,
            local_writes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Runs a write, then counts it: once the write has returned, every
    /// later change stamp differs from those taken before it.
    async fn counted<T>(&self, write: impl Future<Output = T>) -> T {
        let result = write.await;
        self.local_writes.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// Closes every pooled connection, checkpointing the WAL. Optional: the
    /// pool also closes when the last clone is dropped.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn change_stamp(&self) -> Option<ChangeStamp> {
        let local_writes = self.local_writes.load(Ordering::Acquire);
        let shared = self.wal_index.header()?;
        Some(ChangeStamp {
            shared,
            local_writes,
        })
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKeyRecord> {
        self.counted(api_keys::create(&self.writer, key)).await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        api_keys::list(&self.reader).await
    }

    async fn get_api_key(&self, key_id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        api_keys::get(&self.reader, key_id).await
    }

    async fn find_active_api_key_by_lookup(
        &self,
        lookup_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        api_keys::find_active(&self.reader, api_keys::By::Lookup, lookup_hash, now).await
    }

    async fn find_active_api_key_by_hash(
        &self,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        api_keys::find_active(&self.reader, api_keys::By::Hash, key_hash, now).await
    }

    async fn count_api_keys_without_lookup(&self) -> StoreResult<u64> {
        api_keys::count_without_lookup(&self.reader).await
    }

    async fn set_api_key_lookup(&self, key_id: &str, lookup_hash: &str) -> StoreResult<()> {
        self.counted(api_keys::set_lookup(&self.writer, key_id, lookup_hash))
            .await
    }

    async fn touch_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.counted(api_keys::touch(&self.writer, key_id, now))
            .await
    }

    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.counted(api_keys::revoke(&self.writer, key_id, now))
            .await
    }

    async fn delete_api_key(&self, key_id: &str) -> StoreResult<bool> {
        self.counted(api_keys::delete(&self.writer, key_id)).await
    }

    async fn get_session(&self, session_id: &str) -> StoreResult<Option<SessionRecord>> {
        sessions::get(&self.reader, session_id).await
    }

    async fn create_session(
        &self,
        session_id: &str,
        platform_id: &str,
        creator: &str,
        is_group: bool,
    ) -> StoreResult<SessionRecord> {
        self.counted(sessions::create(
            &self.writer,
            session_id,
            platform_id,
            creator,
            is_group,
        ))
        .await
    }

    async fn list_sessions(
        &self,
        creator: &str,
        platform_id: Option<&str>,
        page: u32,
        page_size: u32,
    ) -> StoreResult<SessionPage> {
        sessions::list(&self.reader, creator, platform_id, page, page_size).await
    }

    async fn set_session_display_name(&self, session_id: &str, name: &str) -> StoreResult<()> {
        self.counted(sessions::set_display_name(&self.writer, session_id, name))
            .await
    }

    async fn create_attachment(
        &self,
        attachment_id: &str,
        path: &str,
        kind: &str,
        mime_type: &str,
    ) -> StoreResult<AttachmentRecord> {
        self.counted(attachments::create(
            &self.writer,
            attachment_id,
            path,
            kind,
            mime_type,
        ))
        .await
    }

    async fn get_attachment(&self, attachment_id: &str) -> StoreResult<Option<AttachmentRecord>> {
        attachments::get(&self.reader, attachment_id).await
    }

    async fn insert_history(&self, turn: NewHistory) -> StoreResult<HistoryRecord> {
        self.counted(history::insert(&self.writer, turn)).await
    }

    async fn get_history(&self, id: i64) -> StoreResult<Option<HistoryRecord>> {
        history::get(&self.reader, id).await
    }

    async fn list_history(
        &self,
        platform_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<HistoryRecord>> {
        history::list(&self.reader, platform_id, user_id).await
    }

    async fn create_conversation(
        &self,
        platform_id: &str,
        umo: &str,
    ) -> StoreResult<ConversationRecord> {
        self.counted(conversations::create(&self.writer, platform_id, umo))
            .await
    }

    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Option<ConversationRecord>> {
        conversations::get(&self.reader, conversation_id).await
    }

    async fn update_conversation(
        &self,
        conversation_id: &str,
        content: &Value,
        token_usage: i64,
    ) -> StoreResult<()> {
        self.counted(conversations::update(
            &self.writer,
            conversation_id,
            content,
            token_usage,
        ))
        .await
    }

    async fn get_preference(
        &self,
        scope: &str,
        scope_id: &str,
        key: &str,
    ) -> StoreResult<Option<Value>> {
        preferences::get(&self.reader, scope, scope_id, key).await
    }

    async fn put_preference(
        &self,
        scope: &str,
        scope_id: &str,
        key: &str,
        value: &Value,
    ) -> StoreResult<()> {
        self.counted(preferences::put(&self.writer, scope, scope_id, key, value))
            .await
    }

    async fn delete_preference(&self, scope: &str, scope_id: &str, key: &str) -> StoreResult<()> {
        self.counted(preferences::delete(&self.writer, scope, scope_id, key))
            .await
    }
}
