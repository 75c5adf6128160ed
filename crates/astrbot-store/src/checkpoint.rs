//! WAL checkpoints on a thread of their own.
//!
//! SQLite normally checkpoints inside the commit that grows the WAL past
//! 1,000 pages, and a checkpoint syncs the database file: milliseconds
//! that would stall an async worker thread. So the writer's automatic
//! checkpoints are turned off and this thread checkpoints instead, after
//! every [`NUDGE_EVERY`] writes and once a second after any write.
//!
//! It checkpoints on the writing connection, holding it: SQLite starts the
//! WAL over only at the start of a write that finds every frame copied
//! back, so a checkpoint racing new commits would always end a few frames
//! short and the WAL would grow without end. The task running the write
//! queue meanwhile waits asynchronously for the connection. The
//! thread holds the connection only weakly, so dropping the store closes
//! it at once (SQLite's last close copies the WAL back and removes it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::Connection;

/// Writes between nudges to the checkpoint thread.
pub(crate) const NUDGE_EVERY: u64 = 256;

/// How long the thread waits for a nudge before checking on its own.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The writing connection, as the store shares it.
pub(crate) type Writer = tokio::sync::Mutex<Connection>;

/// The handle that wakes the checkpoint thread. Dropping it (with the
/// store) ends the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    nudges: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread for `writer`, watching `writes` (the store's write
    /// counter). `None` if the thread could not start; the caller then
    /// leaves SQLite's automatic checkpoints on.
    pub(crate) fn start(writer: &Arc<Writer>, writes: Arc<AtomicU64>) -> Option<Checkpointer> {
        let writer = Arc::downgrade(writer);
        let (nudges, wakes) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(&writer, &writes, &wakes))
            .ok()?;
        Some(Checkpointer { nudges })
    }

    /// Asks for a checkpoint soon; never waits.
    pub(crate) fn nudge(&self) {
        let _ = self.nudges.try_send(());
    }
}

fn checkpoint_loop(writer: &Weak<Writer>, writes: &AtomicU64, wakes: &mpsc::Receiver<()>) {
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
        let Some(writer) = writer.upgrade() else {
            return;
        };
        checkpointed_at = now;
        let connection = writer.blocking_lock();
        // The result row (busy, WAL frames, frames copied) is not needed; a
        // failed pass is simply tried again after the next writes.
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; it is retried after the next writes");
        }
    }
}
