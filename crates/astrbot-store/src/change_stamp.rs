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
//! file is still linked and reopens it when it is not; that read reports
//! "cannot tell", which makes callers go to the database. A reopened file
//! is trusted only while the database path still names the file the store
//! opened: if the database was replaced under the server, the stamp stays
//! "cannot tell". SQLite keeps the `-shm` file beside the real database, so
//! the path is resolved through symlinks first.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Bytes of the wal-index header: two copies of a 48-byte header.
pub(crate) const HEADER_BYTES: usize = 96;

/// Watches one database's wal-index header.
#[derive(Debug)]
pub(crate) struct WalIndexWatch {
    database: PathBuf,
    /// Device and inode of the database file the store opened.
    identity: Option<(u64, u64)>,
    shm: PathBuf,
    file: RwLock<Option<File>>,
}

impl WalIndexWatch {
    /// Watches the `-shm` file beside the database at `database`, which
    /// the store has just opened.
    pub(crate) fn new(database: &Path) -> WalIndexWatch {
        let database = std::fs::canonicalize(database).unwrap_or_else(|_| database.to_owned());
        let identity = file_identity(&database);
        let mut name = database.as_os_str().to_owned();
        name.push("-shm");
        let watch = WalIndexWatch {
            database,
            identity,
            shm: PathBuf::from(name),
            file: RwLock::new(None),
        };
        watch.reopen();
        watch
    }

    /// The current header, or `None` when it cannot be trusted (no WAL,
    /// the file was replaced, a short read while SQLite rebuilds it).
    pub(crate) fn header(&self) -> Option<[u8; HEADER_BYTES]> {
        if let Some(header) = self.read_linked() {
            return Some(header);
        }
        self.reopen();
        None
    }

    fn read_linked(&self) -> Option<[u8; HEADER_BYTES]> {
        let guard = self.file.read().ok()?;
        let file = guard.as_ref()?;
        if file.metadata().ok()?.nlink() == 0 {
            return None;
        }
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact_at(&mut header, 0).ok()?;
        Some(header)
    }

    fn reopen(&self) {
        let same_database =
            self.identity.is_some() && file_identity(&self.database) == self.identity;
        let file = if same_database {
            File::open(&self.shm).ok()
        } else {
            None
        };
        if let Ok(mut guard) = self.file.write() {
            *guard = file;
        }
    }
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.dev(), metadata.ino()))
}
