//! Where a run's events go: the channel to the client's SSE body.
//!
//! A dropped receiver means the client left; a reader that takes nothing
//! for [`STALLED_READER`] is given up on and gets no more events. Either
//! way the run carries on, so the turn is saved and the session's lock is
//! released. At shutdown a run never waits for its reader: events the
//! reader has no room for yet queue in memory, and go out after the turn
//! is saved, while the process finishes stopping.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;
use tokio::sync::watch;

use super::events::ChatEvent;

/// How long a run waits for a reader that has stopped taking its events
/// (a client that stopped reading, an HTTP/2 window left at zero).
const STALLED_READER: Duration = Duration::from_secs(30);

pub(super) struct EventSink {
    sender: Sender<ChatEvent>,
    stalled: AtomicBool,
    /// True at shutdown: a reader that is not reading is not waited for.
    interrupted: watch::Receiver<bool>,
    /// Events held back at shutdown, in order; see [`EventSink::deliver_held`].
    held: Mutex<VecDeque<ChatEvent>>,
}

impl EventSink {
    pub fn new(sender: Sender<ChatEvent>, interrupted: watch::Receiver<bool>) -> EventSink {
        EventSink {
            sender,
            stalled: AtomicBool::new(false),
            interrupted,
            held: Mutex::default(),
        }
    }

    /// Sends `event`, waiting for room while the reader reads (see the
    /// module's notes on readers that stop).
    pub async fn send(&self, event: ChatEvent) {
        if self.stalled.load(Ordering::Relaxed) {
            return;
        }
        // Once one event is held back, all later ones are, to keep order.
        let event = {
            let mut held = self.held();
            if !held.is_empty() {
                held.push_back(event);
                return;
            }
            // Room in the channel is the usual case; only a full one needs
            // the timer (arming one per event, i.e. per token, costs a lock).
            match self.sender.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => return,
                Err(TrySendError::Full(event)) => event,
            }
        };
        let mut interrupted = self.interrupted.clone();
        tokio::select! {
            room = tokio::time::timeout(STALLED_READER, self.sender.reserve()) => match room {
                Ok(Ok(permit)) => permit.send(event),
                // The client left.
                Ok(Err(_)) => {}
                Err(_) => {
                    tracing::warn!(
                        "a chat client stopped reading its answer; the turn goes on without it"
                    );
                    self.stalled.store(true, Ordering::Relaxed);
                }
            },
            // Shutting down: the turn must be saved before the process
            // exits, so it goes on without waiting.
            Ok(_) = interrupted.wait_for(|stop| *stop) => self.held().push_back(event),
        }
    }

    /// Sends the events held back at shutdown, as the reader makes room
    /// for them. Called once the turn is saved; the process exits soon
    /// after, so a reader that does not catch up by then gets no more.
    pub async fn deliver_held(&self) {
        loop {
            let Some(event) = self.held().pop_front() else {
                return;
            };
            if self.sender.send(event).await.is_err() {
                return;
            }
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, VecDeque<ChatEvent>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end() -> ChatEvent {
        ChatEvent::End {
            message_id: "m".into(),
        }
    }

    fn saved(id: i64) -> ChatEvent {
        ChatEvent::MessageSaved {
            id,
            created_at: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_reading_is_given_up_on_once() {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
        let events = EventSink::new(sender, watch::channel(false).1);
        events.send(end()).await;

        let started = tokio::time::Instant::now();
        events.send(end()).await;
        assert_eq!(
            started.elapsed(),
            STALLED_READER,
            "waited for the reader once"
        );
        events.send(end()).await;
        assert_eq!(started.elapsed(), STALLED_READER, "then stopped waiting");

        assert!(receiver.recv().await.is_some());
        assert!(receiver.try_recv().is_err(), "later events were dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn at_shutdown_a_slow_reader_is_not_waited_for_yet_gets_every_event() {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
        let (interrupt, interrupted) = watch::channel(false);
        let events = EventSink::new(sender, interrupted);
        events.send(saved(1)).await;

        let started = tokio::time::Instant::now();
        tokio::join!(events.send(saved(2)), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            interrupt.send_replace(true);
        });
        events.send(saved(3)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(1), "not 30 s");

        // The turn is saved; the reader catches up.
        let reading = async {
            let mut ids = Vec::new();
            while let Some(event) = receiver.recv().await {
                if let ChatEvent::MessageSaved { id, .. } = event {
                    ids.push(id);
                }
            }
            ids
        };
        let delivering = async {
            events.deliver_held().await;
            drop(events);
        };
        let (ids, ()) = tokio::join!(reading, delivering);
        assert_eq!(ids, [1, 2, 3]);
    }
}
