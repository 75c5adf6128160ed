//! The turns in progress, so that shutdown can interrupt them and wait for
//! them to be saved.
//!
//! Each turn holds a one-shot interrupt instead of watching a shared flag:
//! the model's stream is polled once per token, and re-polling a one-shot
//! receiver costs an atomic load, where a shared notification takes a lock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::{oneshot, watch, Notify};

/// Every turn running or waiting for its session.
#[derive(Default)]
pub(super) struct Turns {
    registry: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    state: Mutex<State>,
    /// Told when the last turn ends.
    idle: Notify,
    /// Set for good by [`Turns::interrupt_all`], always under the state's
    /// lock (so later turns start interrupted); also watched by waits that
    /// are not on the model (a turn blocked on a client that stopped
    /// reading).
    interrupted: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Turns whose handle is alive.
    active: usize,
    /// Their interrupts, until fired.
    interrupts: HashMap<u64, oneshot::Sender<()>>,
}

impl Registry {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Turns {
    /// Registers a turn until the returned handle is dropped.
    pub(super) fn enter(&self) -> Turn {
        let (sender, receiver) = oneshot::channel();
        let mut state = self.registry.state();
        let id = state.next_id;
        state.next_id += 1;
        state.active += 1;
        if *self.registry.interrupted.borrow() {
            let _ = sender.send(());
        } else {
            state.interrupts.insert(id, sender);
        }
        drop(state);
        Turn {
            id,
            registry: self.registry.clone(),
            interrupt: Interrupt(Some(receiver)),
        }
    }

    /// Interrupts every turn, and every turn entered from now on.
    pub(super) fn interrupt_all(&self) {
        let mut state = self.registry.state();
        self.registry.interrupted.send_replace(true);
        for (_, interrupt) in state.interrupts.drain() {
            let _ = interrupt.send(());
        }
    }

    /// Becomes true when the turns are interrupted; for the rare waits
    /// where a lock per poll does not matter.
    pub(super) fn interrupted(&self) -> watch::Receiver<bool> {
        self.registry.interrupted.subscribe()
    }

    /// Completes when no turn is in progress.
    pub(super) async fn finished(&self) {
        loop {
            let idle = self.registry.idle.notified();
            let mut idle = std::pin::pin!(idle);
            // Registered before looking, so an end in between is not missed.
            idle.as_mut().enable();
            if self.registry.state().active == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One turn in progress; dropping it ends the turn.
pub(super) struct Turn {
    id: u64,
    registry: Arc<Registry>,
    pub interrupt: Interrupt,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut state = self.registry.state();
        state.interrupts.remove(&self.id);
        state.active -= 1;
        let idle = state.active == 0;
        drop(state);
        if idle {
            self.registry.idle.notify_waiters();
        }
    }
}

/// Completes when the turn is interrupted; pending otherwise, also once
/// it has completed (so it can be polled again in a loop).
pub(super) struct Interrupt(Option<oneshot::Receiver<()>>);

impl Future for Interrupt {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(receiver) = self.0.as_mut() else {
            return Poll::Pending;
        };
        match Pin::new(receiver).poll(cx) {
            Poll::Ready(Ok(())) => {
                self.0 = None;
                Poll::Ready(())
            }
            // The registry is gone: nobody can interrupt any more.
            Poll::Ready(Err(_)) => {
                self.0 = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn interrupting_reaches_running_and_later_turns() {
        let turns = Turns::default();
        let mut running = turns.enter();
        assert!((&mut running.interrupt).now_or_never().is_none());

        turns.interrupt_all();
        let mut later = turns.enter();

        assert!((&mut running.interrupt).now_or_never().is_some());
        assert!((&mut later.interrupt).now_or_never().is_some());
        assert!(
            (&mut running.interrupt).now_or_never().is_none(),
            "fires once"
        );
    }

    #[tokio::test]
    async fn finished_waits_for_the_last_turn() {
        let turns = Arc::new(Turns::default());
        assert!(turns.finished().now_or_never().is_some(), "none running");
        let first = turns.enter();
        let second = turns.enter();
        turns.interrupt_all();

        let waiting = tokio::spawn({
            let turns = turns.clone();
            async move { turns.finished().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one turn is still saving");
        drop(second);

        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("finished once both ended")
            .unwrap();
    }
}
