//! WAL checkpoints on a thread of their own.
//!
//! SQLite normally checkpoints inside the commit that grows the WAL past
//! 1,000 pages, and a checkpoint syncs the database file: milliseconds
//! that would stall an async worker thread. So the writer's automatic
//! checkpoints are turned off and this thread copies the WAL back into the
//! database instead: after every [`NUDGE_EVERY`] writes, and once a second
//! after any write. PASSIVE checkpoints take no lock that readers or the
//! writer wait for.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

/// Writes between nudges to the checkpoint thread.
pub(crate) const NUDGE_EVERY: u64 = 256;

/// How long the thread waits for a nudge before checking on its own.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The handle that wakes the checkpoint thread. Dropping it (with the
/// store) ends the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    nudges: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path`, watching
    /// `writes` (the store's write counter). `None` if the thread could not
    /// start; the caller then leaves SQLite's automatic checkpoints on.
    pub(crate) fn start(path: &Path, writes: Arc<AtomicU64>) -> Option<Checkpointer> {
        let connection = crate::db::open(path, false).ok()?;
        let (nudges, wakes) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(&connection, &writes, &wakes))
            .ok()?;
        Some(Checkpointer { nudges })
    }

    /// Asks for a checkpoint soon; never waits.
    pub(crate) fn nudge(&self) {
        let _ = self.nudges.try_send(());
    }
}

fn checkpoint_loop(connection: &Connection, writes: &AtomicU64, wakes: &mpsc::Receiver<()>) {
    let mut checkpointed_at = writes.load(Ordering::Acquire);
    loop {
        match wakes.recv_timeout(IDLE_CHECK) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = writes.load(Ordering::Acquire);
        if now == checkpointed_at {
            continue;
        }
        checkpointed_at = now;
        // The result row (busy, WAL pages, pages copied) is not needed; a
        // failed pass is simply tried again after the next writes.
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; it is retried after the next writes");
        }
    }
}
