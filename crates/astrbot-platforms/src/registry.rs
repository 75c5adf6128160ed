//! The table from AstrBot's platform `type` names to adapter constructors.
//! A new platform adds one `register` line in [`PlatformRegistry::builtin`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::adapter::{PlatformAdapter, PlatformError};
use crate::config::PlatformConfig;

/// Builds an adapter from its config entry; errors are config errors.
pub type AdapterFactory =
    Arc<dyn Fn(&PlatformConfig) -> Result<Arc<dyn PlatformAdapter>, PlatformError> + Send + Sync>;

/// Known platform types.
#[derive(Clone, Default)]
pub struct PlatformRegistry {
    factories: HashMap<String, AdapterFactory>,
}

impl PlatformRegistry {
    /// An empty registry (tests register fakes into it).
    pub fn new() -> Self {
        PlatformRegistry::default()
    }

    /// Every adapter this crate ships.
    pub fn builtin() -> Self {
        let mut registry = PlatformRegistry::new();
        registry.register(crate::onebot::KIND, |config| {
            Ok(Arc::new(crate::onebot::AiocqhttpAdapter::from_config(config)?) as _)
        });
        registry.register(crate::discord::KIND, |config| {
            Ok(Arc::new(crate::discord::DiscordAdapter::from_config(config)?) as _)
        });
        registry.register(crate::telegram::KIND, |config| {
            Ok(Arc::new(crate::telegram::TelegramAdapter::from_config(config)?) as _)
        });
        registry.register(crate::slack::KIND, |config| {
            Ok(Arc::new(crate::slack::SlackAdapter::from_config(config)?) as _)
        });
        registry
    }

    pub fn register(
        &mut self,
        kind: &str,
        factory: impl Fn(&PlatformConfig) -> Result<Arc<dyn PlatformAdapter>, PlatformError>
            + Send
            + Sync
            + 'static,
    ) {
        self.factories.insert(kind.to_owned(), Arc::new(factory));
    }

    pub fn build(
        &self,
        config: &PlatformConfig,
    ) -> Result<Arc<dyn PlatformAdapter>, PlatformError> {
        let factory = self
            .factories
            .get(&config.kind)
            .ok_or_else(|| PlatformError::UnknownType(config.kind.clone()))?;
        factory(config)
    }
}
