//! Config files in AstrBot's format: `data/cmd_config.json` (id `default`)
//! and the extra `data/config/abconf_<uuid>.json` files. Files are kept as
//! JSON documents, so unknown keys survive a rewrite; typed views are read
//! from them for what astrbot-rs uses.

mod admin_credentials;
mod checks;
mod defaults;
mod file;
mod glob;
mod model;
mod registry;
mod seen_file;
mod token_cutoff;

pub use defaults::default_config;
pub use file::{fill_defaults, read_config_file, write_config_file, ConfigError};
pub use glob::{escape_glob, umo_pattern_matches};
pub use model::{
    ChatSettings, DashboardSettings, LoadedConfig, Persona, ProviderSpec, DEFAULT_PASSWORD_MD5,
};
pub use registry::{ConfigInfo, ConfigRegistry, RegistryError, DEFAULT_CONFIG_ID};
