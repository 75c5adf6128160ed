//! Limits on silence ("nothing for 30 s") that cost nothing per event.
//!
//! The obvious way, a fresh timer after every chunk or token, takes the
//! timer wheel's lock twice per event. [`IdleTimer`] keeps one timer, armed
//! on the first wait, and only notes the time of each activity; when the
//! timer fires before the limit has really passed since the last activity,
//! it is moved to the new deadline and waited on again.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Fires once `limit` has passed without activity.
#[derive(Debug)]
pub struct IdleTimer {
    limit: Duration,
    last_activity: Instant,
    /// Armed on the first wait; boxed so the owner can move.
    timer: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    /// A timer whose silence starts now.
    pub fn new(limit: Duration) -> IdleTimer {
        IdleTimer {
            limit,
            last_activity: Instant::now(),
            timer: None,
        }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Records activity: the silence starts again from now.
    pub fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Ready once `limit` has passed since the last activity. It stays
    /// ready until the next [`touch`](IdleTimer::touch).
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let limit = self.limit;
        let due = self.last_activity + limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_activity + limit;
            if due <= Instant::now() {
                return Poll::Ready(());
            }
            // Fired early: there was activity since it was armed.
            timer.as_mut().reset(due);
        }
    }

    /// Waits until [`poll_elapsed`](IdleTimer::poll_elapsed) is ready.
    pub async fn elapsed(&mut self) {
        std::future::poll_fn(|cx| self.poll_elapsed(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    const LIMIT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn fires_after_the_limit_of_silence() {
        let mut idle = IdleTimer::new(LIMIT);
        let started = Instant::now();

        idle.elapsed().await;

        assert_eq!(started.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_moves_the_deadline_without_a_new_timer() {
        let mut idle = IdleTimer::new(LIMIT);
        assert!(idle.elapsed().now_or_never().is_none(), "armed at 10 s");

        tokio::time::advance(Duration::from_secs(6)).await;
        idle.touch();
        let touched = Instant::now();

        // The timer armed for 10 s fires early and is moved to 16 s.
        idle.elapsed().await;
        assert_eq!(touched.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn stays_elapsed_until_touched_then_waits_a_full_limit_again() {
        let mut idle = IdleTimer::new(LIMIT);
        idle.elapsed().await;
        assert!(idle.elapsed().now_or_never().is_some(), "still elapsed");

        idle.touch();
        let touched = Instant::now();
        assert!(idle.elapsed().now_or_never().is_none());
        idle.elapsed().await;
        assert_eq!(touched.elapsed(), LIMIT);
    }
}
