//! Files that hold users' data or secrets (the database, config files),
//! created readable and writable by their owner only.

use std::fs::File;
use std::io;
use std::path::Path;

/// Creates `path`, which must not exist yet, for writing: mode `0600` on
/// Unix, whatever the process's umask would give.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
