//! Per-session serialisation: a second message to a busy session waits for
//! the first to finish, so turns never interleave in one conversation, and
//! they run in the order their requests were taken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Each session's newest turn, as a lock held while that turn runs.
/// Entries are forgotten once unused.
#[derive(Default)]
pub struct SessionLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

/// Held while a turn runs; dropping it lets the next turn in.
pub type SessionGuard = OwnedMutexGuard<()>;

/// A turn's place in its session's queue, taken when its request is
/// accepted, before its task runs: two tasks started in order may first be
/// polled in either order, and the turns must still run in request order.
pub struct SessionTicket {
    /// Taken out by `wait`, or on drop.
    place: Option<Place>,
}

struct Place {
    /// The lock of the turn before this one, if it may still be running.
    ahead: Option<Arc<AsyncMutex<()>>>,
    /// This turn's own lock, locked from the start, so that the turn
    /// after it waits until this one is done.
    own: SessionGuard,
}

impl SessionTicket {
    /// Waits until the turn before this one has finished; the guard is
    /// held while this turn runs.
    pub async fn wait(mut self) -> SessionGuard {
        let place = self.place.take().expect("a ticket is only waited on once");
        place.wait().await
    }
}

impl Place {
    async fn wait(self) -> SessionGuard {
        if let Some(ahead) = self.ahead {
            drop(ahead.lock_owned().await);
        }
        self.own
    }
}

impl Drop for SessionTicket {
    /// A place given up without a turn (its request failed or was
    /// dropped) still holds the next turn back until the turn before it
    /// is done, so that those two never run side by side.
    fn drop(&mut self) {
        let Some(place) = self.place.take() else {
            return;
        };
        // With nothing ahead, dropping the place frees it at once.
        if place.ahead.is_none() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { drop(place.wait().await) });
        }
    }
}

impl SessionLocks {
    /// Takes the next place in `umo`'s queue.
    pub fn enter(&self, umo: &str) -> SessionTicket {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let ahead = locks.get(umo).and_then(Weak::upgrade);
        // Drop entries nobody holds any more before the map grows, so it
        // stays as large as the number of sessions busy at once.
        if locks.len() >= 1024 {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let own = Arc::new(AsyncMutex::new(()));
        locks.insert(umo.to_owned(), Arc::downgrade(&own));
        let own = own.try_lock_owned().expect("a lock made just now is free");
        SessionTicket {
            place: Some(Place { ahead, own }),
        }
    }

    /// Waits until no other turn of `umo` is running.
    #[cfg(test)]
    pub async fn acquire(&self, umo: &str) -> SessionGuard {
        self.enter(umo).wait().await
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

    #[tokio::test]
    async fn a_place_given_up_still_waits_for_the_turn_before_it() {
        let locks = SessionLocks::default();
        let running = locks.acquire("a").await;
        let given_up = locks.enter("a");
        let next = locks.enter("a");

        drop(given_up);
        let waiting = tokio::time::timeout(Duration::from_millis(50), next.wait()).await;
        assert!(waiting.is_err(), "the next turn ran beside the running one");

        drop(running);
        let after = tokio::time::timeout(Duration::from_millis(50), locks.acquire("a")).await;
        after.expect("the session is free once the running turn ends");
    }

    #[tokio::test]
    async fn turns_run_in_the_order_they_entered_whatever_order_they_wait_in() {
        let locks = SessionLocks::default();
        let first = locks.enter("a");
        let second = locks.enter("a");
        let third = locks.enter("a");

        // The third and second start waiting before the first does.
        let order = Arc::new(Mutex::new(Vec::new()));
        let run = |ticket: SessionTicket, name: &'static str| {
            let order = order.clone();
            async move {
                let _turn = ticket.wait().await;
                order.lock().unwrap().push(name);
                tokio::task::yield_now().await;
            }
        };
        tokio::join!(
            run(third, "third"),
            run(second, "second"),
            run(first, "first")
        );

        assert_eq!(*order.lock().unwrap(), ["first", "second", "third"]);
    }
}
