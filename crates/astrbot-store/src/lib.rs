//! The SQLite implementation of `astrbot_core::Store`.
//!
//! One file per table family; each holds plain functions over a
//! connection, and the `Store` impl below only forwards to them. Queries
//! avoid SQLite-only functions and compare timestamps against values bound
//! from Rust, so the same SQL can later serve PostgreSQL.

mod api_keys;
mod attachments;
mod change_stamp;
mod checkpoint;
mod codec;
mod conversations;
mod db;
mod history;
mod migrate;
mod personas;
mod preferences;
mod sessions;
#[cfg(test)]
mod tests;
mod write_queue;
#[cfg(test)]
mod write_tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use astrbot_core::store::{
    ApiKeyRecord, AttachmentRecord, ChatState, ChatStateQuery, ConversationRecord,
    ConversationUpdate, HistoryRecord, NewApiKey, NewHistory, SessionPage, SessionRecord,
};
use astrbot_core::{persona, ChangeStamp, Store, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::Value;

use change_stamp::WalIndexWatch;
use checkpoint::Checkpointer;
use codec::to_json_text;
use db::{DbError, DbResult};
use write_queue::{Queued, Withdraw, WriteQueue};

/// Idle reading connections kept open for the next reads. Reads run on
/// the calling thread, so no more than the process's threads are ever
/// busy at once.
const IDLE_READERS: usize = 8;

/// Bytes the WAL file is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 32 * 1024 * 1024;

/// A `Store` backed by one SQLite file. Cheap to clone: clones share the
/// connections.
///
/// SQLite takes one writer at a time, so writes share a single connection
/// and queue for it (in order, run in batches by one task at a time)
/// instead of colliding on the file lock. Reads take a read-only
/// connection of their own; in WAL mode they never wait for the writer.
/// See `db` for why statements run on the calling thread.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// Shared with the checkpoint thread, weakly.
    writer: Arc<checkpoint::Writer>,
    /// Writes waiting for the writer; see `write_queue`.
    queue: Arc<WriteQueue>,
    idle_readers: Mutex<Vec<Connection>>,
    wal_index: WalIndexWatch,
    /// Writes made through this store (and its clones), for change stamps
    /// and checkpoints.
    local_writes: Arc<AtomicU64>,
    checkpointer: Option<Checkpointer>,
}

/// Creates the database file, empty and readable by its owner only, when
/// there is none yet: it holds every user's chats, and SQLite gives its
/// WAL and shared-memory files the same permissions. An existing file is
/// left as it is (another server may share it).
fn create_private(path: &Path) -> std::io::Result<()> {
    match astrbot_core::private_file::create_new(path) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error),
        _ => Ok(()),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings
    /// its schema up to date. Safe to call on a file opened before, also
    /// while another process has it open.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let opening = |e: rusqlite::Error| backend(format!("opening {}: {e}", path.display()));
        create_private(path).map_err(|e| backend(format!("creating {}: {e}", path.display())))?;
        let mut writer = db::open(path, false).map_err(opening)?;
        db::run(&mut writer, migrate::run)
            .map_err(|e| backend(format!("migrating {}: {}", path.display(), message(&e))))?;
        // A first reader proves read-only opening works before anything
        // relies on it; the `-shm` file exists now that the writer is in
        // WAL mode.
        let reader = db::open(path, true).map_err(opening)?;

        let local_writes = Arc::new(AtomicU64::new(0));
        // A WAL left large by a burst of writes is cut back to this size
        // once it starts over, instead of keeping its largest size on disk.
        writer
            .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(opening)?;
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let checkpointer = Checkpointer::start(&writer, local_writes.clone());
        if checkpointer.is_some() {
            writer
                .try_lock()
                .map_err(|_| backend("the new writer is in use".to_owned()))?
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(opening)?;
        }
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                writer,
                queue: Arc::new(WriteQueue::default()),
                idle_readers: Mutex::new(vec![reader]),
                wal_index: WalIndexWatch::new(path),
                local_writes,
                checkpointer,
            }),
        })
    }

    /// Runs reads on an idle read-only connection (opening one if none is
    /// idle).
    fn read<T>(&self, work: impl Fn(&mut Connection) -> DbResult<T>) -> StoreResult<T> {
        let idle = self.idle_readers().pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => db::open(&self.shared.path, true)
                .map_err(|e| backend(format!("opening a reader: {e}")))?,
        };
        let result = db::run(&mut connection, work);
        let mut idle = self.idle_readers();
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
        result
    }

    /// Runs a write on the writing connection, committed together with
    /// the writes queued beside it (see `write_queue`), then counts it:
    /// once the write has returned, every later change stamp differs from
    /// those taken before it.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let queue = &self.shared.queue;
        let Queued {
            mut result,
            withdraw,
            has_duty,
        } = queue.push(work);
        // Takes the write back out if this caller gives up before it ran;
        // handed to any duty this caller takes, see `WriteDuty`.
        let mut withdraw = Some(withdraw);
        if has_duty {
            let duty = self.duty(&mut withdraw);
            // Every other task that is ready runs first, so those about to
            // write queue their writes too, and this batch commits them all
            // at once. Under chat load this raised the writes per commit
            // from about 1.4 to about 4 and cut a tenth of the CPU a chat
            // costs. When nothing else is ready the write goes on at once.
            tokio::task::yield_now().await;
            duty.run_batch().await;
        }
        let outcome = loop {
            tokio::select! {
                // An offer is always taken up, so that it is never lost.
                biased;
                () = queue.duty_offered() => {
                    if queue.claim() {
                        self.duty(&mut withdraw).run_batch().await;
                    }
                }
                outcome = &mut result => break outcome,
            }
        };
        drop(withdraw);
        outcome.unwrap_or_else(|_| Err(backend("the write was dropped".to_owned())))
    }

    /// The duty just claimed, holding the caller's own write's guard.
    fn duty(&self, withdraw: &mut Option<Withdraw>) -> WriteDuty {
        WriteDuty {
            shared: self.shared.clone(),
            own_write: withdraw.take(),
        }
    }

    fn idle_readers(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        db::lock(&self.shared.idle_readers)
    }
}

impl Shared {
    /// Counts `ran` writes made, and nudges the checkpoint thread each
    /// time the count passes a multiple of [`checkpoint::NUDGE_EVERY`].
    fn count_writes(&self, ran: u64) {
        let before = self.local_writes.fetch_add(ran, Ordering::AcqRel);
        let crossed = before / checkpoint::NUDGE_EVERY != (before + ran) / checkpoint::NUDGE_EVERY;
        if crossed {
            if let Some(checkpointer) = &self.checkpointer {
                checkpointer.nudge();
            }
        }
    }
}

/// The duty of running the write queue (see `write_queue`), held by one
/// task at a time and given up when dropped. A holder cancelled before
/// its batch ran takes its own write back out first, so that the next
/// holder does not run a write whose caller has gone.
struct WriteDuty {
    shared: Arc<Shared>,
    own_write: Option<Withdraw>,
}

impl WriteDuty {
    /// Runs the writes waiting now as one batch, once the writing
    /// connection is free (the checkpoint thread may hold it).
    async fn run_batch(self) {
        let mut writer = self.shared.writer.lock().await;
        let shared = &self.shared;
        shared
            .queue
            .run_batch(&mut writer, |ran| shared.count_writes(ran));
    }
}

impl Drop for WriteDuty {
    fn drop(&mut self) {
        drop(self.own_write.take());
        self.shared.queue.release();
    }
}

fn backend(message: String) -> StoreError {
    StoreError::Backend(message)
}

/// A store error's own text, without the variant's prefix.
fn message(error: &StoreError) -> &str {
    match error {
        StoreError::Conflict(text) | StoreError::Corrupt(text) | StoreError::Backend(text) => text,
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn change_stamp(&self) -> Option<ChangeStamp> {
        let local_writes = self.shared.local_writes.load(Ordering::Acquire);
        let shared = self.shared.wal_index.header()?;
        Some(ChangeStamp {
            shared,
            local_writes,
        })
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKeyRecord> {
        self.write(move |c| api_keys::create(c, &key)).await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|c| api_keys::list(c))
    }

    async fn get_api_key(&self, key_id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|c| api_keys::get(c, key_id))
    }

    async fn find_active_api_key_by_lookup(
        &self,
        lookup_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|c| api_keys::find_active(c, api_keys::By::Lookup, lookup_hash, now))
    }

    async fn find_active_api_key_by_hash(
        &self,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|c| api_keys::find_active(c, api_keys::By::Hash, key_hash, now))
    }

    async fn count_api_keys_without_lookup(&self) -> StoreResult<u64> {
        self.read(|c| api_keys::count_without_lookup(c))
    }

    async fn set_api_key_lookup(&self, key_id: &str, lookup_hash: &str) -> StoreResult<()> {
        let (key_id, lookup_hash) = (key_id.to_owned(), lookup_hash.to_owned());
        self.write(move |c| api_keys::set_lookup(c, &key_id, &lookup_hash))
            .await
    }

    async fn touch_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let key_id = key_id.to_owned();
        self.write(move |c| api_keys::touch(c, &key_id, now)).await
    }

    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let key_id = key_id.to_owned();
        self.write(move |c| api_keys::revoke(c, &key_id, now)).await
    }

    async fn delete_api_key(&self, key_id: &str) -> StoreResult<bool> {
        let key_id = key_id.to_owned();
        self.write(move |c| api_keys::delete(c, &key_id)).await
    }

    async fn get_session(&self, session_id: &str) -> StoreResult<Option<SessionRecord>> {
        self.read(|c| sessions::get(c, session_id))
    }

    async fn create_session(
        &self,
        session_id: &str,
        platform_id: &str,
        creator: &str,
        is_group: bool,
    ) -> StoreResult<SessionRecord> {
        let (session_id, platform_id, creator) = (
            session_id.to_owned(),
            platform_id.to_owned(),
            creator.to_owned(),
        );
        self.write(move |c| sessions::create(c, &session_id, &platform_id, &creator, is_group))
            .await
    }

    async fn create_session_with_turn(
        &self,
        session_id: &str,
        creator: &str,
        content: Value,
    ) -> StoreResult<HistoryRecord> {
        let turn = NewHistory::webchat(session_id, creator, content);
        let creator = creator.to_owned();
        self.write(move |c| {
            sessions::create(c, &turn.user_id, "webchat", &creator, false)?;
            history::insert(c, turn)
        })
        .await
    }

    async fn list_sessions(
        &self,
        creator: &str,
        platform_id: Option<&str>,
        page: u32,
        page_size: u32,
    ) -> StoreResult<SessionPage> {
        self.read(|c| sessions::list(c, creator, platform_id, page, page_size))
    }

    async fn set_session_display_name(&self, session_id: &str, name: &str) -> StoreResult<()> {
        let (session_id, name) = (session_id.to_owned(), name.to_owned());
        self.write(move |c| sessions::set_display_name(c, &session_id, &name))
            .await
    }

    async fn create_attachment(
        &self,
        attachment_id: &str,
        path: &str,
        kind: &str,
        mime_type: &str,
    ) -> StoreResult<AttachmentRecord> {
        let [attachment_id, path, kind, mime_type] =
            [attachment_id, path, kind, mime_type].map(str::to_owned);
        self.write(move |c| attachments::create(c, &attachment_id, &path, &kind, &mime_type))
            .await
    }

    async fn get_attachment(&self, attachment_id: &str) -> StoreResult<Option<AttachmentRecord>> {
        self.read(|c| attachments::get(c, attachment_id))
    }

    async fn insert_history(&self, turn: NewHistory) -> StoreResult<HistoryRecord> {
        self.write(move |c| history::insert(c, turn)).await
    }

    async fn get_history(&self, id: i64) -> StoreResult<Option<HistoryRecord>> {
        self.read(|c| history::get(c, id))
    }

    async fn list_history(
        &self,
        platform_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<HistoryRecord>> {
        self.read(|c| history::list(c, platform_id, user_id))
    }

    async fn create_conversation(
        &self,
        platform_id: &str,
        umo: &str,
    ) -> StoreResult<ConversationRecord> {
        let (platform_id, umo) = (platform_id.to_owned(), umo.to_owned());
        self.write(move |c| conversations::create(c, &platform_id, &umo))
            .await
    }

    async fn create_selected_conversation(
        &self,
        platform_id: &str,
        umo: &str,
        selection_key: &str,
    ) -> StoreResult<ConversationRecord> {
        let [platform_id, umo, selection_key] =
            [platform_id, umo, selection_key].map(str::to_owned);
        self.write(move |c| {
            let conversation = conversations::create(c, &platform_id, &umo)?;
            let selection =
                preferences::wrap(&Value::String(conversation.conversation_id.clone()))?;
            preferences::put(c, "umo", &umo, &selection_key, &selection)?;
            Ok(conversation)
        })
        .await
    }

    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Option<ConversationRecord>> {
        self.read(|c| conversations::get(c, conversation_id))
    }

    async fn update_conversation(
        &self,
        conversation_id: &str,
        content: &Value,
        token_usage: i64,
    ) -> StoreResult<()> {
        // Encoded before queueing, so the writer's turn holds no JSON work.
        let content = to_json_text(content)?;
        let conversation_id = conversation_id.to_owned();
        self.write(move |c| conversations::update(c, &conversation_id, &content, token_usage))
            .await
    }

    async fn save_answer(
        &self,
        turn: NewHistory,
        conversation: Option<ConversationUpdate>,
    ) -> StoreResult<HistoryRecord> {
        // Encoded before queueing, so the writer's turn holds no JSON work.
        let conversation = match conversation {
            Some(update) => Some((
                update.conversation_id,
                to_json_text(&update.messages)?,
                update.token_usage,
            )),
            None => None,
        };
        self.write(move |c| {
            let saved = history::insert(c, turn)?;
            if let Some((conversation_id, content, token_usage)) = &conversation {
                conversations::update(c, conversation_id, content, *token_usage)?;
            }
            Ok(saved)
        })
        .await
    }

    async fn get_preference(
        &self,
        scope: &str,
        scope_id: &str,
        key: &str,
    ) -> StoreResult<Option<Value>> {
        self.read(|c| preferences::get(c, scope, scope_id, key))
    }

    async fn get_chat_state(&self, query: ChatStateQuery<'_>) -> StoreResult<ChatState> {
        let umo = query.umo;
        // One read transaction: one read lock and one check of the WAL for
        // all the statements, and a consistent view of them.
        self.read(|c| {
            let snapshot = c.transaction()?;
            // A provider choice, session setting or persona that cannot be
            // read is no choice, and costs the turn nothing else.
            let provider_preference =
                unreadable_as_none(preferences::get(&snapshot, "umo", umo, query.provider_key))?;
            let conversation =
                match preferences::get(&snapshot, "umo", umo, query.conversation_key)? {
                    Some(Value::String(id)) => conversations::get(&snapshot, &id)?,
                    _ => None,
                };
            let session_config = unreadable_as_none(preferences::get(
                &snapshot,
                "umo",
                umo,
                query.session_config_key,
            ))?;
            let session_persona = session_config
                .as_ref()
                .and_then(|config| config.get("persona_id"))
                .and_then(Value::as_str);
            let conversation_persona = conversation
                .as_ref()
                .and_then(|conversation| conversation.persona_id.as_deref());
            let persona_id =
                persona::chosen_id(session_persona, conversation_persona, query.default_persona)
                    .map(str::to_owned);
            let stored_persona = match &persona_id {
                Some(id) => unreadable_as_none(personas::get(&snapshot, id))?,
                None => None,
            };
            snapshot.finish()?;
            Ok(ChatState {
                provider_preference,
                conversation,
                persona_id,
                stored_persona,
            })
        })
    }

    async fn put_preference(
        &self,
        scope: &str,
        scope_id: &str,
        key: &str,
        value: &Value,
    ) -> StoreResult<()> {
        let wrapped = preferences::wrap(value)?;
        let [scope, scope_id, key] = [scope, scope_id, key].map(str::to_owned);
        self.write(move |c| preferences::put(c, &scope, &scope_id, &key, &wrapped))
            .await
    }

    async fn delete_preference(&self, scope: &str, scope_id: &str, key: &str) -> StoreResult<()> {
        let [scope, scope_id, key] = [scope, scope_id, key].map(str::to_owned);
        self.write(move |c| preferences::delete(c, &scope, &scope_id, &key))
            .await
    }
}

/// `None` for a stored value that cannot be read; other failures stay
/// failures.
fn unreadable_as_none<T>(read: DbResult<Option<T>>) -> DbResult<Option<T>> {
    match read {
        Err(DbError::Store(StoreError::Corrupt(_))) => Ok(None),
        other => other,
    }
}
