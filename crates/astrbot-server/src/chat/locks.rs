//! Per-session serialisation: a second message to a busy session waits for
//! the first to finish, so turns never interleave in one conversation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One async mutex per UMO, created on demand and forgotten when unused.
#[derive(Default)]
pub struct SessionLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

/// Held while a turn runs; dropping it lets the next turn in.
pub type SessionGuard = OwnedMutexGuard<()>;

impl SessionLocks {
    /// Waits until no other turn of `umo` is running.
    pub async fn acquire(&self, umo: &str) -> SessionGuard {
        let lock = self.lock_for(umo);
        lock.lock_owned().await
    }

    fn lock_for(&self, umo: &str) -> Arc<AsyncMutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.get(umo).and_then(Weak::upgrade) {
            return lock;
        }
        // Drop entries nobody holds any more before the map grows, so it
        // stays as large as the number of sessions busy at once.
        if locks.len() >= 1024 {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(AsyncMutex::new(()));
        locks.insert(umo.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_session_waits_other_session_does_not() {
        let locks = Arc::new(SessionLocks::default());
        let first = locks.acquire("a").await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), locks.acquire("a"))
                .await
                .is_err()
        );
        let _other = tokio::time::timeout(Duration::from_millis(50), locks.acquire("b"))
            .await
            .expect("another session is not blocked");
        drop(first);
        let _again = tokio::time::timeout(Duration::from_millis(50), locks.acquire("a"))
            .await
            .expect("released lock can be taken");
    }
}
