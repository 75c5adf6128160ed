//! What a config file held when the server last read or wrote it, so that
//! a save from the dashboard never writes over an edit an admin has made
//! to the file since and not yet loaded (with SIGHUP or a restart).

use std::path::PathBuf;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// A file and the digest of its bytes as last read or written here.
pub struct SeenFile {
    path: PathBuf,
    digest: Mutex<Option<[u8; 32]>>,
}

impl SeenFile {
    /// Notes `path` as it is now.
    pub fn new(path: PathBuf) -> Self {
        let seen = SeenFile {
            path,
            digest: Mutex::new(None),
        };
        seen.note();
        seen
    }

    /// Notes the file as it is now: it was just read or written here.
    pub fn note(&self) {
        *self.lock() = digest_of(&self.path);
    }

    /// Whether the file still holds what was last noted. A missing file
    /// counts as unchanged: writing it loses nothing.
    pub fn unchanged(&self) -> bool {
        match digest_of(&self.path) {
            None => true,
            now => now == *self.lock(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<[u8; 32]>> {
        // A digest is replaced whole; a poisoned lock holds a valid one.
        self.digest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn digest_of(path: &std::path::Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    Some(Sha256::digest(&bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_since_the_last_note_is_seen_and_a_new_note_accepts_it() {
        let path = std::env::temp_dir().join(format!("astrbot-seen-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, "{}").unwrap();
        let seen = SeenFile::new(path.clone());
        assert!(seen.unchanged());

        std::fs::write(&path, r#"{"edited": true}"#).unwrap();
        assert!(!seen.unchanged());
        seen.note();
        assert!(seen.unchanged());

        std::fs::remove_file(&path).unwrap();
        assert!(seen.unchanged(), "nothing on disk to lose");
    }
}
