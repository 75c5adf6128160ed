//! The shared application state every handler receives.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use astrbot_core::store::ApiKeyRecord;
use astrbot_core::{Store, StoreResult};
use astrbot_platforms::PlatformManager;

use crate::auth::api_key;
use crate::auth::key_cache::VerifiedKeys;
use crate::auth::touch_pause::TouchPause;
use crate::chat::ChatService;
use crate::config::{ConfigRegistry, RegistryError};
use crate::paths::DataRoot;

/// Cheap to clone: one `Arc` around everything.
#[derive(Clone)]
pub struct AppState(Arc<App>);

/// What the handlers share.
pub struct App {
    pub root: DataRoot,
    pub store: Arc<dyn Store>,
    pub configs: Arc<ConfigRegistry>,
    pub chat: Arc<ChatService>,
    /// The running chat-platform bots.
    pub platforms: Arc<PlatformManager>,
    pub started_at: Instant,
    /// Keys that verified, valid until the database changes.
    pub verified_keys: VerifiedKeys,
    /// Set while recording key use is paused after a failed write.
    pub touch_pause: TouchPause,
}

impl AppState {
    pub fn new(app: App) -> Self {
        AppState(Arc::new(app))
    }
}

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Applies an edited default config file without a restart: chats
    /// use its settings and providers from their next turn, and the
    /// platform bots whose entries changed are stopped and started. On an
    /// invalid file the running config stays as it was.
    /// Returns the ids of the chat providers the new config has.
    pub async fn reload_default_config(&self) -> Result<Vec<String>, RegistryError> {
        self.configs.reload_default_file().await?;
        let config = self.configs.default_config();
        // Built now rather than at the next turn, so that a provider the
        // file gets wrong is logged at once.
        let providers = self.chat.providers().for_config(&config).ids();
        self.platforms.reload(&config.platform_entries()).await;
        Ok(providers)
    }

    /// The active (not revoked, not expired) key a plaintext belongs to.
    ///
    /// Keys we issued are found by their SHA-256. Keys imported from an
    /// AstrBot database only have the PBKDF2 hash; while any such key
    /// exists, a miss falls back to PBKDF2 once and records the SHA-256 so
    /// that later requests take the fast path.
    ///
    /// A key that verified is answered from memory until the next commit
    /// to the database (see [`VerifiedKeys`]).
    pub async fn find_active_key(&self, key: &str) -> StoreResult<Option<ApiKeyRecord>> {
        if !api_key::is_well_formed(key) {
            return Ok(None);
        }
        let now = astrbot_core::time::now();
        let lookup = api_key::lookup_hash(key);

        // Taken before the read, so a commit racing with it makes the
        // entry stale rather than hiding the change.
        let stamp = self.store.change_stamp();
        if let Some(stamp) = stamp {
            if let Some(record) = self.verified_keys.get(&lookup, stamp, now) {
                return Ok(Some(record));
            }
        }

        if let Some(record) = self
            .store
            .find_active_api_key_by_lookup(&lookup, now)
            .await?
        {
            if let Some(stamp) = stamp {
                self.verified_keys.insert(lookup, stamp, record.clone());
            }
            return Ok(Some(record));
        }
        if self.store.count_api_keys_without_lookup().await? == 0 {
            return Ok(None);
        }

        let owned = key.to_owned();
        let key_hash = tokio::task::spawn_blocking(move || api_key::pbkdf2_hash(&owned))
            .await
            .unwrap_or_default();
        let found = self
            .store
            .find_active_api_key_by_hash(&key_hash, now)
            .await?;
        if let Some(record) = &found {
            if record.lookup_hash.is_none() {
                self.store
                    .set_api_key_lookup(&record.key_id, &lookup)
                    .await?;
            }
        }
        Ok(found)
    }
}
