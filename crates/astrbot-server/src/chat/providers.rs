//! Chat providers built from config files, cached per config and rebuilt
//! when that config is saved, plus the in-process demo model.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use astrbot_core::{ChatProvider, ChatRequest, ChatResponse, ChatStream, ProviderError};
use astrbot_local_model::{LocalModel, LocalProvider, DEFAULT_MAX_NEW_TOKENS, DEFAULT_MODEL_NAME};
use astrbot_providers::{OpenAiCompatible, OpenAiConfig};
use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::config::{ConfigRegistry, LoadedConfig, ProviderSpec};

/// Id of the implicit provider that serves the demo model when a config has
/// no chat provider of its own.
pub const DEMO_PROVIDER_ID: &str = "smollm2-demo";

/// Provider `type` of an in-process GGUF model.
pub const LOCAL_PROVIDER_TYPE: &str = "local";

/// The chat providers of one config, in config order.
pub struct ProviderSet {
    providers: Vec<Arc<dyn ChatProvider>>,
}

impl ProviderSet {
    pub fn get(&self, id: &str) -> Option<Arc<dyn ChatProvider>> {
        self.providers.iter().find(|p| p.id() == id).cloned()
    }

    pub fn first(&self) -> Option<Arc<dyn ChatProvider>> {
        self.providers.first().cloned()
    }

    pub fn ids(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.id().to_owned()).collect()
    }
}

type SharedModel = Arc<OnceCell<Result<Arc<LocalModel>, String>>>;

/// A built provider set and the config object it was built from.
type CachedSet = (Arc<LoadedConfig>, Arc<ProviderSet>);

/// Builds and caches provider sets.
pub struct ProviderRegistry {
    configs: Arc<ConfigRegistry>,
    demo_model: PathBuf,
    sets: Mutex<HashMap<String, CachedSet>>,
    models: Mutex<HashMap<PathBuf, SharedModel>>,
}

impl ProviderRegistry {
    pub fn new(configs: Arc<ConfigRegistry>, demo_model: PathBuf) -> Self {
        ProviderRegistry {
            configs,
            demo_model,
            sets: Mutex::default(),
            models: Mutex::default(),
        }
    }

    /// Whether the demo model file is present.
    pub fn demo_available(&self) -> bool {
        self.demo_model.is_file()
    }

    /// The providers a turn under `config` may use: its own, or the
    /// default config's when it lists none. A config made with
    /// `/api/config/abconf/new` starts without any, and AstrBot's
    /// providers are those of the default config whatever config a
    /// session is bound to; the bound config only chooses among them.
    pub fn for_config(&self, config: &Arc<LoadedConfig>) -> Arc<ProviderSet> {
        if config.providers.is_empty() {
            let default = self.configs.default_config();
            if default.id != config.id {
                return self.built_for(&default);
            }
        }
        self.built_for(config)
    }

    /// The providers of `config` itself, rebuilt when the config object
    /// changed.
    fn built_for(&self, config: &Arc<LoadedConfig>) -> Arc<ProviderSet> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_from, set)) = sets.get(&config.id) {
            if Arc::ptr_eq(built_from, config) {
                return set.clone();
            }
        }
        let set = Arc::new(self.build(config));
        sets.insert(config.id.clone(), (config.clone(), set.clone()));
        set
    }

    /// Starts loading the demo model in the background so that the first
    /// chat does not wait for it.
    pub fn preload_demo(&self) {
        if self.demo_available() {
            let model = self.model(self.demo_model.clone());
            let path = self.demo_model.clone();
            tokio::spawn(async move {
                let _ = load_shared(&model, path).await;
            });
        }
    }

    fn build(&self, config: &LoadedConfig) -> ProviderSet {
        let mut providers: Vec<Arc<dyn ChatProvider>> = Vec::new();
        for spec in &config.providers {
            match self.build_one(spec) {
                Ok(provider) => providers.push(provider),
                Err(reason) => tracing::warn!(
                    config.id = %config.id,
                    provider.id = %spec.id,
                    provider.kind = %spec.kind,
                    "provider skipped: {reason}"
                ),
            }
        }
        if providers.is_empty() && self.demo_available() {
            providers.push(Arc::new(LazyLocal {
                id: DEMO_PROVIDER_ID.to_owned(),
                model_name: DEFAULT_MODEL_NAME.to_owned(),
                path: self.demo_model.clone(),
                model: self.model(self.demo_model.clone()),
            }));
        }
        ProviderSet { providers }
    }

    fn build_one(&self, spec: &ProviderSpec) -> Result<Arc<dyn ChatProvider>, String> {
        if spec.kind == LOCAL_PROVIDER_TYPE {
            let path = spec
                .model_path
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| self.demo_model.clone());
            if !path.is_file() {
                return Err(format!("model file {} not found", path.display()));
            }
            return Ok(Arc::new(LazyLocal {
                id: spec.id.clone(),
                model_name: if spec.model.is_empty() {
                    DEFAULT_MODEL_NAME.to_owned()
                } else {
                    spec.model.clone()
                },
                model: self.model(path.clone()),
                path,
            }));
        }
        if !is_openai_compatible(&spec.kind) {
            return Err(format!("provider type {} is not supported yet", spec.kind));
        }
        let provider = OpenAiCompatible::new(OpenAiConfig {
            id: spec.id.clone(),
            api_base: spec.api_base.clone(),
            keys: spec.keys.clone(),
            model: spec.model.clone(),
            timeout: spec.timeout,
            custom_headers: spec.custom_headers.clone(),
            extra_body: spec.extra_body.clone(),
            lean_loopback_client: spec.lean_http_client,
        })
        .map_err(|error| error.to_string())?;
        Ok(Arc::new(provider))
    }

    fn model(&self, path: PathBuf) -> SharedModel {
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        models.entry(path).or_default().clone()
    }
}

/// AstrBot provider types that speak OpenAI's chat-completions protocol.
fn is_openai_compatible(kind: &str) -> bool {
    // Anthropic and Gemini speak their own protocols, which no client here
    // implements; such entries are skipped with a warning.
    kind.ends_with("_chat_completion")
        && !matches!(
            kind,
            "anthropic_chat_completion" | "googlegenai_chat_completion"
        )
}

async fn load_shared(model: &SharedModel, path: PathBuf) -> Result<Arc<LocalModel>, String> {
    model
        .get_or_init(|| async move {
            let shown = path.display().to_string();
            tracing::info!(model.path = %shown, "loading the local model");
            let started = std::time::Instant::now();
            let loaded = tokio::task::spawn_blocking(move || LocalModel::load(&path))
                .await
                .map_err(|error| error.to_string())
                .and_then(|result| result.map_err(|error| format!("{error:#}")));
            match &loaded {
                Ok(_) => tracing::info!(
                    model.path = %shown,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "local model ready"
                ),
                Err(error) => {
                    tracing::error!(model.path = %shown, %error, "local model failed to load")
                }
            }
            loaded.map(Arc::new)
        })
        .await
        .clone()
}

/// A local model provider that loads its weights on first use.
struct LazyLocal {
    id: String,
    model_name: String,
    path: PathBuf,
    model: SharedModel,
}

impl LazyLocal {
    async fn provider(&self) -> Result<LocalProvider, ProviderError> {
        let model = load_shared(&self.model, self.path.clone())
            .await
            .map_err(|error| {
                ProviderError::Other(format!("the local model failed to load: {error}"))
            })?;
        Ok(
            LocalProvider::new(self.id.clone(), model, DEFAULT_MAX_NEW_TOKENS)
                .with_model_name(self.model_name.clone()),
        )
    }
}

#[async_trait]
impl ChatProvider for LazyLocal {
    fn id(&self) -> &str {
        &self.id
    }

    fn model(&self) -> &str {
        &self.model_name
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.provider().await?.chat(request).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        self.provider().await?.chat_stream(request).await
    }
}
