//! Request bodies with a limit on the client's silence.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use astrbot_core::IdleTimer;
use axum::body::HttpBody;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// A request body that fails when the client sends nothing for a while
/// during a read. Only time spent waiting counts: a handler that is slow to
/// ask for the next piece is not the client's fault.
pub(super) struct IdleLimitedBody<B> {
    inner: B,
    idle: IdleTimer,
    waiting: bool,
}

impl<B> IdleLimitedBody<B> {
    pub(super) fn new(inner: B, limit: Duration) -> Self {
        IdleLimitedBody {
            inner,
            idle: IdleTimer::new(limit),
            waiting: false,
        }
    }
}

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no data for {} s", .0.as_secs())]
struct BodyStalled(Duration);

impl<B> HttpBody for IdleLimitedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.idle.touch();
                }
                match this.idle.poll_elapsed(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(BodyStalled(this.idle.limit()).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::BodyExt;

    /// A body whose pieces come from a channel, as a client sends them.
    fn channel_body() -> (
        tokio::sync::mpsc::Sender<Bytes>,
        impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin,
    ) {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let frames = tokio_stream::wrappers::ReceiverStream::new(receiver)
            .map(|bytes| Ok(Frame::data(bytes)));
        (sender, http_body_util::StreamBody::new(frames))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_sending_is_read_whole() {
        let (sender, inner) = channel_body();
        let body = IdleLimitedBody::new(inner, Duration::from_secs(10));
        tokio::spawn(async move {
            for piece in ["a", "b", "c"] {
                tokio::time::sleep(Duration::from_secs(8)).await;
                sender.send(Bytes::from(piece)).await.unwrap();
            }
        });

        let whole = body.collect().await.unwrap().to_bytes();

        assert_eq!(whole, "abc", "24 s in all, but never 10 s without data");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_goes_silent_fails_after_the_limit() {
        let (sender, inner) = channel_body();
        let mut body = IdleLimitedBody::new(inner, Duration::from_secs(10));
        sender.send(Bytes::from("a")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let waiting_since = tokio::time::Instant::now();

        let error = body.frame().await.unwrap().unwrap_err();

        assert_eq!(waiting_since.elapsed(), Duration::from_secs(10));
        assert_eq!(error.to_string(), "the client sent no data for 10 s");
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_handler_takes_between_reads_is_not_counted() {
        let (sender, inner) = channel_body();
        let mut body = IdleLimitedBody::new(inner, Duration::from_secs(10));
        sender.send(Bytes::from("a")).await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(body.frame().await.unwrap().is_ok(), "data was waiting");

        // The handler is busy for 30 s before asking again; the client
        // then answers within the limit.
        tokio::time::advance(Duration::from_secs(30)).await;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            sender.send(Bytes::from("b")).await.unwrap();
        });
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "b"
        );
    }
}
