//! The registry of config files and of the UMO → config routing table.
//!
//! Like AstrBot, extra configs are registered in the preferences table
//! (`global/global/abconf_mapping`) and routes in
//! `global/global/umop_config_routing`. Unlike AstrBot, a config is usable
//! the moment it is created and every save is live: readers always get the
//! latest `Arc<LoadedConfig>` without a restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use astrbot_core::{Store, StoreError};
use serde_json::{json, Map, Value};

use super::admin_credentials::{ensure_jwt_secret, fill_blank_credentials, keep_secret};
use super::checks::check_config;
use super::seen_file::SeenFile;
use super::token_cutoff::TokenCutoff;
use super::{
    default_config, fill_defaults, read_config_file, umo_pattern_matches, write_config_file,
    ConfigError, LoadedConfig,
};
use crate::paths::DataRoot;

/// The id (and name) of `data/cmd_config.json`.
pub const DEFAULT_CONFIG_ID: &str = "default";

const GLOBAL: &str = "global";
const MAPPING_KEY: &str = "abconf_mapping";
const ROUTING_KEY: &str = "umop_config_routing";

/// One entry of the config list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigInfo {
    pub id: String,
    pub name: String,
    /// Absolute for the default config, the bare file name for the others,
    /// as AstrBot reports them.
    pub path: String,
}

/// Why a registry operation failed; `Display` is the message users see.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("config not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    File(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Extra {
    config: Arc<LoadedConfig>,
    file_name: String,
}

struct State {
    default: Arc<LoadedConfig>,
    extras: Vec<Extra>,
    /// Registered configs whose file was missing at start-up: their
    /// entries stay in the stored mapping as they were, as AstrBot keeps
    /// them, so that the file can be put back.
    missing: Map<String, Value>,
    routes: Vec<(String, String)>,
}

/// All config files and the routing table, kept in memory and persisted on
/// every change.
pub struct ConfigRegistry {
    root: DataRoot,
    store: Arc<dyn Store>,
    state: RwLock<State>,
    writes: tokio::sync::Mutex<()>,
    /// The default config file as last read or written here.
    default_file: SeenFile,
    /// Admin tokens issued before the credentials last changed are refused.
    tokens: TokenCutoff,
}

impl ConfigRegistry {
    /// Loads the default config (creating it, filling missing keys and
    /// generating the JWT secret when needed), the registered extra configs
    /// and the routing table.
    pub async fn load(root: DataRoot, store: Arc<dyn Store>) -> Result<Self, RegistryError> {
        let default_path = root.default_config();
        let existing = read_checked(&default_path, DEFAULT_CONFIG_ID)?;
        let mut document = existing.clone().unwrap_or_else(|| json!({}));
        let mut changed = fill_defaults(&mut document, &default_config());
        changed |= ensure_jwt_secret(&mut document);
        changed |= fill_blank_credentials(&mut document);
        if changed || existing.is_none() {
            write_config_file(&default_path, &document)?;
        }
        let default = Arc::new(LoadedConfig::new(
            DEFAULT_CONFIG_ID,
            DEFAULT_CONFIG_ID,
            document,
        ));

        let mapping = store
            .get_preference(GLOBAL, GLOBAL, MAPPING_KEY)
            .await?
            .and_then(|value| value.as_object().cloned())
            .unwrap_or_default();
        let mut extras = Vec::new();
        let mut missing = Map::new();
        for (id, entry) in mapping {
            let file_name = entry
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("abconf_{id}.json"));
            let name = entry.get("name").and_then(Value::as_str).unwrap_or(&id);
            let path = root.config_dir().join(&file_name);
            let Some(mut document) = read_checked(&path, &id)? else {
                tracing::warn!(config.id = %id, path = %path.display(), "registered config file is missing; skipping it");
                missing.insert(id, entry);
                continue;
            };
            fill_defaults(&mut document, &default_config());
            extras.push(Extra {
                config: Arc::new(LoadedConfig::new(&id, name, document)),
                file_name,
            });
        }

        let routes = store
            .get_preference(GLOBAL, GLOBAL, ROUTING_KEY)
            .await?
            .and_then(|value| value.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(pattern, id)| Some((pattern, id.as_str()?.to_owned())))
            .collect();

        let registry = ConfigRegistry {
            root,
            store,
            state: RwLock::new(State {
                default,
                extras,
                missing,
                routes,
            }),
            writes: tokio::sync::Mutex::new(()),
            default_file: SeenFile::new(default_path),
            tokens: TokenCutoff::default(),
        };
        registry.track_credentials().await;
        Ok(registry)
    }

    /// Admin tokens issued before this (seconds since the epoch) are
    /// refused: the admin's credentials changed since.
    pub fn admin_tokens_not_before(&self) -> i64 {
        self.tokens.not_before()
    }

    /// Moves the token cutoff on when the default config's credentials
    /// are not the ones last seen.
    async fn track_credentials(&self) {
        let config = self.default_config();
        let now = chrono::Utc::now().timestamp();
        if let Err(error) = self.tokens.track(&*self.store, &config, now).await {
            tracing::error!(%error, "could not store when the admin credentials changed");
        }
    }

    pub fn default_config(&self) -> Arc<LoadedConfig> {
        self.read().default.clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<LoadedConfig>> {
        let state = self.read();
        if id == DEFAULT_CONFIG_ID {
            return Some(state.default.clone());
        }
        state
            .extras
            .iter()
            .find(|extra| extra.config.id == id)
            .map(|extra| extra.config.clone())
    }

    /// The extra configs in registration order, then the default.
    pub fn list(&self) -> Vec<ConfigInfo> {
        let state = self.read();
        let mut infos: Vec<ConfigInfo> = state
            .extras
            .iter()
            .map(|extra| ConfigInfo {
                id: extra.config.id.clone(),
                name: extra.config.name.clone(),
                path: extra.file_name.clone(),
            })
            .collect();
        infos.push(ConfigInfo {
            id: DEFAULT_CONFIG_ID.to_owned(),
            name: DEFAULT_CONFIG_ID.to_owned(),
            path: self.root.default_config().display().to_string(),
        });
        infos
    }

    /// The config bound to a UMO: the first matching route whose config
    /// still exists, else the default.
    pub fn resolve_for_umo(&self, umo: &str) -> Arc<LoadedConfig> {
        let target = {
            let state = self.read();
            // An exact binding (the usual case) needs no pattern matching.
            let exact = state.routes.iter().find(|(pattern, _)| pattern == umo);
            exact
                .or_else(|| {
                    state
                        .routes
                        .iter()
                        .find(|(pattern, _)| umo_pattern_matches(pattern, umo))
                })
                .map(|(_, id)| id.clone())
        };
        target
            .and_then(|id| self.get(&id))
            .unwrap_or_else(|| self.default_config())
    }

    /// Creates `data/config/abconf_<uuid>.json` from `document` (or the
    /// defaults) and registers it under `name`. Returns the new id.
    pub async fn create(
        &self,
        name: Option<String>,
        document: Option<Value>,
    ) -> Result<String, RegistryError> {
        let _guard = self.writes.lock().await;
        let id = uuid::Uuid::new_v4().to_string();
        let name = name
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| format!("config-{}", &id[..8]));
        let mut document = match document {
            Some(Value::Object(map)) => Value::Object(map),
            Some(_) => return Err(RegistryError::Invalid("config must be an object".into())),
            None => default_config(),
        };
        check_config(&document, &id).map_err(RegistryError::Invalid)?;
        fill_defaults(&mut document, &default_config());
        let file_name = format!("abconf_{id}.json");
        write_config_file(&self.root.config_dir().join(&file_name), &document)?;

        let config = Arc::new(LoadedConfig::new(&id, &name, document));
        self.write().extras.push(Extra { config, file_name });
        self.persist_mapping().await?;
        Ok(id)
    }

    /// Renames an extra config; with no `name`, only checks that it exists.
    pub async fn rename(&self, id: &str, name: Option<&str>) -> Result<(), RegistryError> {
        let _guard = self.writes.lock().await;
        if id == DEFAULT_CONFIG_ID {
            return Err(RegistryError::Invalid("不能更新默认配置文件的信息".into()));
        }
        {
            let mut state = self.write();
            let extra = state
                .extras
                .iter_mut()
                .find(|extra| extra.config.id == id)
                .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;
            let Some(name) = name else {
                return Ok(());
            };
            let mut renamed = (*extra.config).clone();
            renamed.name = name.trim().to_owned();
            extra.config = Arc::new(renamed);
        }
        self.persist_mapping().await
    }

    /// Unregisters an extra config, deletes its file and the routes to it.
    pub async fn delete(&self, id: &str) -> Result<(), RegistryError> {
        let _guard = self.writes.lock().await;
        if id == DEFAULT_CONFIG_ID {
            return Err(RegistryError::Invalid("不能删除默认配置文件".into()));
        }
        let file_name = {
            let mut state = self.write();
            let index = state
                .extras
                .iter()
                .position(|extra| extra.config.id == id)
                .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;
            state.routes.retain(|(_, target)| target != id);
            state.extras.remove(index).file_name
        };
        self.persist_mapping().await?;
        self.persist_routes().await?;
        let path = self.root.config_dir().join(file_name);
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), %error, "could not remove deleted config file");
        }
        Ok(())
    }

    /// Saves a whole config document and makes it live. Keys the document
    /// lacks keep their current values. For the default config the provider
    /// and platform lists are kept as they were, and the admin credentials
    /// and JWT secret are never blanked.
    pub async fn save(&self, id: &str, document: Value) -> Result<(), RegistryError> {
        let _guard = self.writes.lock().await;
        let Value::Object(mut incoming) = document else {
            return Err(RegistryError::Invalid("config must be an object".into()));
        };
        check_config(&Value::Object(incoming.clone()), id).map_err(RegistryError::Invalid)?;
        let current = self
            .get(id)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;

        if id == DEFAULT_CONFIG_ID {
            for key in ["provider_sources", "provider", "platform"] {
                if let Some(value) = current.document.get(key) {
                    incoming.insert(key.to_owned(), value.clone());
                }
            }
            keep_secret(&mut incoming, &current.document);
        }
        let mut document = Value::Object(incoming);
        fill_defaults(&mut document, &current.document);
        fill_defaults(&mut document, &default_config());

        let path = self.file_path(id)?;
        if id == DEFAULT_CONFIG_ID {
            self.check_default_file_unchanged()?;
        }
        write_config_file(&path, &document)?;
        if id == DEFAULT_CONFIG_ID {
            self.default_file.note();
        }
        let saved = Arc::new(LoadedConfig::new(id, &current.name, document));
        {
            let mut state = self.write();
            if id == DEFAULT_CONFIG_ID {
                state.default = saved;
            } else if let Some(extra) = state.extras.iter_mut().find(|e| e.config.id == id) {
                extra.config = saved;
            }
        }
        if id == DEFAULT_CONFIG_ID {
            self.track_credentials().await;
        }
        Ok(())
    }

    /// Reads the default config file again (an admin edited it) and makes
    /// it live: checked as at start-up, missing keys filled in, and the
    /// admin credentials and JWT secret kept if the file blanks them. A
    /// file that is missing, unreadable or invalid changes nothing. The
    /// file itself is not written: an admin may be saving it again.
    pub async fn reload_default_file(&self) -> Result<(), RegistryError> {
        let _guard = self.writes.lock().await;
        let path = self.root.default_config();
        let Some(Value::Object(mut incoming)) = read_checked(&path, DEFAULT_CONFIG_ID)? else {
            return Err(RegistryError::Invalid(format!(
                "{} is missing",
                path.display()
            )));
        };
        for kept in keep_secret(&mut incoming, &self.default_config().document) {
            tracing::warn!(
                setting = %format_args!("dashboard.{kept}"),
                "the reloaded file leaves this admin setting empty; the running one is kept"
            );
        }
        let mut document = Value::Object(incoming);
        fill_defaults(&mut document, &default_config());
        self.write().default = Arc::new(LoadedConfig::new(
            DEFAULT_CONFIG_ID,
            DEFAULT_CONFIG_ID,
            document,
        ));
        self.default_file.note();
        self.track_credentials().await;
        Ok(())
    }

    /// Refuses to write the default config file over an edit made to it
    /// since the server last read or wrote it: AstrBot writes the file
    /// from memory and the edit is lost without a word.
    fn check_default_file_unchanged(&self) -> Result<(), RegistryError> {
        if self.default_file.unchanged() {
            return Ok(());
        }
        Err(RegistryError::Invalid(format!(
            "{} was edited since the server read it; send the server SIGHUP (or restart it) to load the edit, then save again",
            self.root.default_config().display()
        )))
    }

    /// Sets the admin password (MD5 hex, AstrBot's stored form) and, when
    /// given, the username in the default config. Everything else, the JWT
    /// secret included, is kept. Tokens issued before the change stop
    /// working (see [`ConfigRegistry::admin_tokens_not_before`]).
    pub async fn set_admin_credentials(
        &self,
        password_md5: &str,
        username: Option<&str>,
    ) -> Result<(), RegistryError> {
        let _guard = self.writes.lock().await;
        let current = self.default_config();
        let mut document = current.document.clone();
        let Some(root) = document.as_object_mut() else {
            return Err(RegistryError::Invalid("config must be an object".into()));
        };
        let dashboard = root.entry("dashboard").or_insert_with(|| json!({}));
        let Some(dashboard) = dashboard.as_object_mut() else {
            return Err(RegistryError::Invalid(
                "`dashboard` must be an object".into(),
            ));
        };
        dashboard.insert("password".into(), Value::String(password_md5.to_owned()));
        if let Some(username) = username {
            dashboard.insert("username".into(), Value::String(username.to_owned()));
        }
        self.check_default_file_unchanged()?;
        write_config_file(&self.root.default_config(), &document)?;
        self.default_file.note();
        self.write().default = Arc::new(LoadedConfig::new(
            DEFAULT_CONFIG_ID,
            &current.name,
            document,
        ));
        self.track_credentials().await;
        Ok(())
    }

    /// Points a UMO (or pattern) at a config.
    pub async fn set_route(&self, pattern: &str, config_id: &str) -> Result<(), RegistryError> {
        check_route_pattern(pattern)?;
        let _guard = self.writes.lock().await;
        {
            let mut state = self.write();
            match state.routes.iter_mut().find(|(p, _)| p == pattern) {
                Some(route) => route.1 = config_id.to_owned(),
                None => state
                    .routes
                    .push((pattern.to_owned(), config_id.to_owned())),
            }
        }
        self.persist_routes().await
    }

    /// Removes the route of a UMO (or pattern), if any.
    pub async fn remove_route(&self, pattern: &str) -> Result<(), RegistryError> {
        check_route_pattern(pattern)?;
        let _guard = self.writes.lock().await;
        let removed = {
            let mut state = self.write();
            let before = state.routes.len();
            state.routes.retain(|(p, _)| p != pattern);
            before != state.routes.len()
        };
        if removed {
            self.persist_routes().await?;
        }
        Ok(())
    }

    /// The config a route pattern points at, if any (exact pattern match).
    pub fn route_of(&self, pattern: &str) -> Option<String> {
        self.read()
            .routes
            .iter()
            .find(|(p, _)| p == pattern)
            .map(|(_, id)| id.clone())
    }

    fn file_path(&self, id: &str) -> Result<PathBuf, RegistryError> {
        if id == DEFAULT_CONFIG_ID {
            return Ok(self.root.default_config());
        }
        let state = self.read();
        let extra = state
            .extras
            .iter()
            .find(|extra| extra.config.id == id)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;
        Ok(self.root.config_dir().join(&extra.file_name))
    }

    async fn persist_mapping(&self) -> Result<(), RegistryError> {
        let mapping = {
            let state = self.read();
            let mut mapping = state.missing.clone();
            for extra in &state.extras {
                let entry = json!({"path": extra.file_name, "name": extra.config.name});
                mapping.insert(extra.config.id.clone(), entry);
            }
            mapping
        };
        self.store
            .put_preference(GLOBAL, GLOBAL, MAPPING_KEY, &Value::Object(mapping))
            .await?;
        Ok(())
    }

    async fn persist_routes(&self) -> Result<(), RegistryError> {
        let routes: Map<String, Value> = self
            .read()
            .routes
            .iter()
            .map(|(pattern, id)| (pattern.clone(), Value::String(id.clone())))
            .collect();
        self.store
            .put_preference(GLOBAL, GLOBAL, ROUTING_KEY, &Value::Object(routes))
            .await?;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated
        // (every write is a single assignment), so a poisoned lock is safe.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A pattern is `platform_id:message_type:session_id`. AstrBot's router
/// refuses any other count of `:` parts; here the session part may hold
/// `:`, as webchat session ids may, and a session bound to a config is
/// routed by its exact UMO.
fn check_route_pattern(pattern: &str) -> Result<(), RegistryError> {
    if pattern.splitn(3, ':').count() != 3 {
        return Err(RegistryError::Invalid(format!(
            "umop must be in the form platform_id:message_type:session_id, got {pattern}"
        )));
    }
    Ok(())
}

/// A config file's document (`None` when there is no file), checked as
/// config `config_id`'s (see [`check_config`]); errors name the file.
fn read_checked(path: &std::path::Path, config_id: &str) -> Result<Option<Value>, RegistryError> {
    let Some(document) = read_config_file(path)? else {
        return Ok(None);
    };
    check_config(&document, config_id)
        .map_err(|problem| RegistryError::Invalid(format!("{}: {problem}", path.display())))?;
    Ok(Some(document))
}
