//! Commit detection through SQLite's WAL index (the `-shm` file), so that
//! callers can cache hot reads and still see every change.
//!
//! In WAL mode every commit, from any connection in any process, rewrites
//! the wal-index header at the start of the `-shm` file (both of its 48-byte
//! copies): the last valid frame number grows, or the salts change when the
//! log restarts, and the header checksum follows. Reading those 96 bytes is
//! one `pread` and no query. The layout is part of SQLite's documented file
//! format (<https://www.sqlite.org/walformat.html>).
//!
//! SQLite deletes the `-shm` file when the last connection to the database
//! closes, and a later connection creates a new one. A handle to the old
//! file would then never change again, so every read also checks that the
//! file is still linked and reopens it when it is not; that read reports "cannot
//! tell", which makes callers go to the database.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use astrbot_core::ChangeStamp;

/// Bytes of the wal-index header: two copies of a 48-byte header.
const HEADER_BYTES: usize = 96;

/// Watches one database's wal-index header.
#[derive(Debug)]
pub(crate) struct WalIndexWatch {
    path: PathBuf,
    file: RwLock<Option<File>>,
}

impl WalIndexWatch {
    /// Watches the `-shm` file beside the database at `database`.
    pub(crate) fn new(database: &Path) -> WalIndexWatch {
        let mut name = database.as_os_str().to_owned();
        name.push("-shm");
        let path = PathBuf::from(name);
        let file = File::open(&path).ok();
        WalIndexWatch {
            path,
            file: RwLock::new(file),
        }
    }

    /// The current header, or `None` when it cannot be read (no WAL, the
    /// file was replaced, a short read while SQLite rebuilds it).
    pub(crate) fn stamp(&self) -> Option<ChangeStamp> {
        if let Some(stamp) = self.read_linked() {
            return Some(stamp);
        }
        self.reopen();
        None
    }

    fn read_linked(&self) -> Option<ChangeStamp> {
        let guard = self.file.read().ok()?;
        let file = guard.as_ref()?;
        if file.metadata().ok()?.nlink() == 0 {
            return None;
        }
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact_at(&mut header, 0).ok()?;
        Some(ChangeStamp(header))
    }

    fn reopen(&self) {
        if let Ok(mut guard) = self.file.write() {
            *guard = File::open(&self.path).ok();
        }
    }
}
