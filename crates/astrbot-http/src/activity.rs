//! Whether an HTTP/2 connection is in use: how many of its requests are
//! still being answered, and since when none has been.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::Instant;

/// One connection's requests, shared by the tasks answering them.
#[derive(Debug, Clone)]
pub(super) struct Activity(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    open: AtomicUsize,
    /// When the last open request ended, or the connection was opened.
    quiet_since: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(Shared {
            open: AtomicUsize::new(0),
            quiet_since: Mutex::new(Instant::now()),
        }))
    }
}

impl Activity {
    /// Counts a request as open until the returned guard is dropped.
    pub(super) fn start(&self) -> OpenRequest {
        self.0.open.fetch_add(1, Ordering::AcqRel);
        OpenRequest(self.clone())
    }

    fn quiet_since(&self) -> Instant {
        *self
            .0
            .quiet_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Completes once no request has been open for `limit`. It looks at
    /// the count only at the deadlines, so requests cost no timer.
    pub(super) async fn idle_for(&self, limit: Duration) {
        loop {
            let due = self.quiet_since() + limit;
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            } else if self.0.open.load(Ordering::Acquire) == 0 {
                return;
            } else {
                // Busy: the earliest it can be idle long enough is a
                // whole limit after its last request ends.
                tokio::time::sleep(limit).await;
            }
        }
    }
}

/// A request being answered; the answer is done when this is dropped.
#[derive(Debug)]
pub(super) struct OpenRequest(Activity);

impl OpenRequest {
    /// Keeps the request open until `response`'s body has been sent (or
    /// dropped, when the client cancels).
    pub(super) fn until_sent(self, response: Response) -> Response {
        response.map(|body| Body::new(SentBody { body, _open: self }))
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let shared = &(self.0).0;
        if shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            *shared
                .quiet_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
    }
}

/// A response body that holds its request open.
struct SentBody {
    body: Body,
    _open: OpenRequest,
}

impl HttpBody for SentBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    const LIMIT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_is_idle_after_the_limit() {
        let activity = Activity::default();
        let opened = Instant::now();

        activity.idle_for(LIMIT).await;

        assert_eq!(opened.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_request_keeps_it_busy_and_the_limit_counts_from_its_end() {
        let activity = Activity::default();
        let request = activity.start();
        let response = request.until_sent(Response::new(Body::from("answer")));
        tokio::time::advance(LIMIT * 3).await;
        assert!(
            activity.idle_for(LIMIT).now_or_never().is_none(),
            "busy while the answer is unsent"
        );

        drop(response);
        let ended = Instant::now();
        activity.idle_for(LIMIT).await;

        assert!(ended.elapsed() >= LIMIT);
    }
}
