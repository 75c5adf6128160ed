//! The data root: one folder laid out like AstrBot's, so that an AstrBot
//! root and an astrbot-rs root look the same from outside.

use std::path::{Path, PathBuf};

use astrbot_local_model::MODEL_FILE_NAME;

/// Paths inside the data root.
#[derive(Debug, Clone)]
pub struct DataRoot {
    root: PathBuf,
}

impl DataRoot {
    /// Uses `root` as given; relative roots are made absolute so that the
    /// paths we report (config file paths, attachments) are unambiguous.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        DataRoot { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// `data/cmd_config.json`, the default config.
    pub fn default_config(&self) -> PathBuf {
        self.data_dir().join("cmd_config.json")
    }

    /// `data/config/`, where the extra `abconf_<uuid>.json` configs live.
    pub fn config_dir(&self) -> PathBuf {
        self.data_dir().join("config")
    }

    pub fn attachments_dir(&self) -> PathBuf {
        self.data_dir().join("attachments")
    }

    /// Where a stored attachment's file is. AstrBot stores absolute paths,
    /// so a root moved or copied elsewhere still names files in its old
    /// place: a path outside this root's attachments folder is looked for
    /// there by its file name first, and taken as stored otherwise.
    pub fn attachment_file(&self, stored: &str) -> PathBuf {
        let stored = Path::new(stored);
        let folder = self.attachments_dir();
        if stored.starts_with(&folder) {
            return stored.to_owned();
        }
        let here = stored.file_name().map(|name| folder.join(name));
        match here {
            Some(here) if here.is_file() => here,
            _ => stored.to_owned(),
        }
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir().join("astrbot-rs.db")
    }

    /// Where the offline demo model is looked for: `$ASTRBOT_LOCAL_MODEL`,
    /// else `models/` in the root.
    pub fn demo_model(&self) -> PathBuf {
        match std::env::var_os("ASTRBOT_LOCAL_MODEL") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => self.root.join("models").join(MODEL_FILE_NAME),
        }
    }

    /// Creates the folders the server writes into.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.config_dir())?;
        std::fs::create_dir_all(self.attachments_dir())
    }
}
