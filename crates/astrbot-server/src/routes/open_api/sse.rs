//! The chat answer as a Server-Sent Events body: `data: {json}` blocks in
//! AstrBot's format, and a `:` comment after 15 s of silence so that
//! proxies keep the connection open.
//!
//! Events that are already waiting when the body is polled go out together
//! in one chunk. A fast provider produces tokens faster than the socket is
//! written, and one write per batch instead of one per event is most of the
//! server's CPU saving at high concurrency. The first delta of an answer
//! never waits to fill a batch; later deltas and the events that close an
//! answer wait briefly for those behind them (see the windows below).

use std::io;
use std::time::Duration;

use astrbot_core::IdleTimer;
use tokio::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};

use crate::chat::ChatEvent;

/// Silence after which a keep-alive comment is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// At most this many events go into one chunk.
const MAX_EVENTS_PER_CHUNK: usize = 64;

/// How long a text delta after the first waits for more events to share
/// its chunk, when deltas are arriving faster than this. Fast providers
/// send tokens far apart in CPU terms but close in human terms. Tokio's
/// timer rounds up to the next millisecond, so a delta is held for less
/// than 2 ms.
const GATHER_WINDOW: Duration = Duration::from_millis(1);

/// How long the events that close an answer (its stats, its whole text,
/// the saved turn's id) wait for the rest of them, so that they leave
/// with `end` in one write instead of three or four. All the text has gone
/// out as deltas before them; what they wait for is the bot turn's commit,
/// which takes a few milliseconds when the database is busy. A slower
/// commit only splits the chunk: nothing is held longer than this.
const CLOSING_WINDOW: Duration = Duration::from_millis(20);

const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

/// Room a stream's first chunk is given; see [`Batcher::chunk_capacity`].
const FIRST_CHUNK_CAPACITY: usize = 256;

/// The most room a chunk is given in advance, however large an earlier
/// chunk was.
const MAX_CHUNK_CAPACITY: usize = 16 * 1024;

/// A `text/event-stream` response carrying `events` to their end.
pub(crate) fn response(events: impl Stream<Item = ChatEvent> + Send + 'static) -> Response {
    let state = Batcher {
        events: Box::pin(events.fuse()),
        started: Vec::new(),
        last_event: None,
        keep_alive: IdleTimer::new(KEEP_ALIVE),
        chunk_capacity: FIRST_CHUNK_CAPACITY,
        ended: false,
    };
    let body = futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.next_chunk().await {
            Some(chunk) => Some((Ok(chunk), Some(state))),
            None if state.ended => None,
            // The run gave up on this reader (it stopped reading) before
            // `end`: the body fails, so that the connection is cut instead
            // of closed as if the answer were whole.
            None => Some((
                Err(io::Error::other("the answer was cut off before its end")),
                None,
            )),
        }
    });

    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Turns the events into body chunks.
struct Batcher<S> {
    events: S,
    /// The chain types (answer, reasoning) whose first delta has gone out.
    started: Vec<Option<&'static str>>,
    /// When the previous event arrived.
    last_event: Option<Instant>,
    /// Silence since the last chunk was handed out.
    keep_alive: IdleTimer,
    /// Room for the next chunk: the largest so far, so that a batch of
    /// deltas is written into one allocation instead of growing through
    /// several.
    chunk_capacity: usize,
    /// Whether `end` has gone out.
    ended: bool,
}

impl<S: Stream<Item = ChatEvent> + Unpin> Batcher<S> {
    /// The next chunk: a keep-alive comment after [`KEEP_ALIVE`] of
    /// silence, or the next event and those that follow it closely;
    /// `None` at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let Some(first) = self.next_event_or_silence().await else {
            self.keep_alive.touch();
            return Some(Bytes::from_static(KEEP_ALIVE_COMMENT));
        };
        let first = first?;

        // The first answer delta (and the first reasoning delta) go out at
        // once: that is the latency users see. A later delta waits a moment
        // for the ones behind it, but only while deltas come faster than
        // that moment; a model writing at reading speed is never held.
        let arrived = Instant::now();
        let came_fast = self
            .last_event
            .is_some_and(|last| arrived.duration_since(last) < GATHER_WINDOW);
        self.last_event = Some(arrived);
        // A chunk holding what a reader waits for (a first delta, a whole
        // answer) takes whatever has already arrived and waits for nothing.
        let mut urgent = self.awaited(&first);
        let mut window = match &first {
            ChatEvent::Plain {
                streaming: true, ..
            } => (!urgent && came_fast).then(|| arrived + GATHER_WINDOW),
            first if closes_answer(first) => Some(arrived + CLOSING_WINDOW),
            _ => None,
        };
        let mut closing = closes_answer(&first);

        let mut chunk = Vec::with_capacity(self.chunk_capacity);
        write_event(&mut chunk, &first);
        if matches!(first, ChatEvent::End { .. }) {
            self.ended = true;
            return Some(self.hand_out(chunk));
        }
        for _ in 1..MAX_EVENTS_PER_CHUNK {
            let next = match self.events.next().now_or_never() {
                Some(next) => next,
                None => match window.filter(|_| !urgent) {
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline, self.events.next()).await {
                            Ok(next) => next,
                            Err(_elapsed) => break,
                        }
                    }
                    None => break,
                },
            };
            // `None`: the end, seen again on the next poll.
            let Some(event) = next else { break };
            let now = Instant::now();
            self.last_event = Some(now);
            write_event(&mut chunk, &event);
            // Nothing follows `end`; the body ends on the next poll.
            if matches!(event, ChatEvent::End { .. }) {
                self.ended = true;
                break;
            }
            urgent |= self.awaited(&event);
            if !closing && closes_answer(&event) {
                closing = true;
                window = Some(now + CLOSING_WINDOW);
            }
        }
        Some(self.hand_out(chunk))
    }

    /// Hands a finished chunk to the body, noting its size as the room
    /// for the next one.
    fn hand_out(&mut self, chunk: Vec<u8>) -> Bytes {
        self.keep_alive.touch();
        self.chunk_capacity = self.chunk_capacity.max(chunk.len().min(MAX_CHUNK_CAPACITY));
        Bytes::from(chunk)
    }

    /// Whether a reader is waiting for `event` itself: the first delta of
    /// an answer (or of its reasoning), or a whole answer sent at once.
    /// Notes a first delta as seen.
    fn awaited(&mut self, event: &ChatEvent) -> bool {
        match event {
            ChatEvent::Plain {
                streaming: true,
                chain_type,
                ..
            } => {
                let first = !self.started.contains(chain_type);
                if first {
                    self.started.push(*chain_type);
                }
                first
            }
            ChatEvent::Plain {
                streaming: false, ..
            } => true,
            _ => false,
        }
    }

    /// The next event (`Some(None)` at the end), or `None` after
    /// [`KEEP_ALIVE`] without a chunk.
    async fn next_event_or_silence(&mut self) -> Option<Option<ChatEvent>> {
        tokio::select! {
            biased;
            event = self.events.next() => Some(event),
            () = self.keep_alive.elapsed() => None,
        }
    }
}

/// Whether `event` comes after an answer's last delta, with `end` close
/// behind it.
fn closes_answer(event: &ChatEvent) -> bool {
    matches!(
        event,
        ChatEvent::AgentStats(_) | ChatEvent::Complete { .. } | ChatEvent::MessageSaved { .. }
    )
}

/// One event: its JSON on a single `data:` line, then a blank line. The
/// JSON is compact, so it never contains a newline.
fn write_event(chunk: &mut Vec<u8>, event: &ChatEvent) {
    chunk.extend_from_slice(b"data: ");
    event.write_python_json(chunk);
    chunk.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body's chunks, up to its end or its failure.
    async fn body_chunks(events: Vec<ChatEvent>) -> Vec<String> {
        body_and_ending(events).await.0
    }

    /// The body's chunks, and whether it ended whole (`false`: it failed).
    async fn body_and_ending(events: Vec<ChatEvent>) -> (Vec<String>, bool) {
        let response = response(futures::stream::iter(events));
        let mut body = response.into_body().into_data_stream();
        let mut chunks = Vec::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                assert!(body.next().await.is_none(), "nothing follows a failure");
                return (chunks, false);
            };
            chunks.push(String::from_utf8(chunk.to_vec()).unwrap());
        }
        (chunks, true)
    }

    #[tokio::test]
    async fn a_body_that_stops_before_end_fails_instead_of_ending() {
        let (chunks, whole) = body_and_ending(vec![session("a"), end()]).await;
        assert!(whole && chunks.concat().contains("\"end\""));

        let (chunks, whole) = body_and_ending(vec![session("a"), delta("cut")]).await;
        assert!(!whole, "the connection is cut, not closed cleanly");
        assert!(
            chunks.concat().contains("cut"),
            "what was sent still arrives"
        );
    }

    fn session(id: &str) -> ChatEvent {
        ChatEvent::SessionId {
            session_id: id.into(),
        }
    }

    #[tokio::test]
    async fn waiting_events_share_one_chunk_in_order() {
        let chunks = body_chunks(vec![session("a"), session("b")]).await;

        assert_eq!(chunks.len(), 1);
        let blocks: Vec<&str> = chunks[0].split_terminator("\n\n").collect();
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].starts_with("data: {") && blocks[0].contains("\"a\""));
        assert!(blocks[1].starts_with("data: {") && blocks[1].contains("\"b\""));
    }

    fn delta(text: &str) -> ChatEvent {
        ChatEvent::Plain {
            text: text.into(),
            streaming: true,
            chain_type: None,
            message_id: "m".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_delta_goes_alone_and_later_ones_gather_briefly() {
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let response = response(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut body = response.into_body().into_data_stream();

        sender.send(delta("one")).await.unwrap();
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(String::from_utf8_lossy(&first).matches("data: ").count(), 1);

        tokio::spawn(async move {
            sender.send(delta("two")).await.unwrap();
            // "three" comes a little later, but well within the window.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            sender.send(delta("three")).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender.send(delta("four")).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender.send(end()).await.unwrap();
        });
        let gathered = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            gathered.contains("two") && gathered.contains("three"),
            "{gathered}"
        );
        assert!(
            !gathered.contains("four"),
            "the window is short: {gathered}"
        );
        let later = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&later).contains("four"));
        let last = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&last).contains("\"end\""));
        assert!(body.next().await.is_none());
    }

    fn complete() -> ChatEvent {
        ChatEvent::Complete {
            text: "whole".into(),
            reasoning: String::new(),
            message_id: "m".into(),
        }
    }

    fn saved() -> ChatEvent {
        ChatEvent::MessageSaved {
            id: 7,
            created_at: "now".into(),
        }
    }

    fn end() -> ChatEvent {
        ChatEvent::End {
            message_id: "m".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answers_closing_events_wait_for_the_commit_and_leave_with_end() {
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let response = response(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut body = response.into_body().into_data_stream();

        tokio::spawn(async move {
            sender.send(complete()).await.unwrap();
            // The bot turn's commit.
            tokio::time::sleep(Duration::from_millis(5)).await;
            sender.send(saved()).await.unwrap();
            sender.send(end()).await.unwrap();
            // The run goes on a while after `end` (its session lock …);
            // the last chunk does not wait for that.
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let started = Instant::now();
        let chunk = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        let types: Vec<&str> = ["\"complete\"", "\"message_saved\"", "\"end\""]
            .into_iter()
            .filter(|name| chunk.contains(name))
            .collect();
        assert_eq!(types.len(), 3, "{chunk}");
        assert_eq!(started.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_delta_never_waits_for_the_closing_events_behind_it() {
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let response = response(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut body = response.into_body().into_data_stream();

        // A short answer read in one go: every delta and the closing
        // events are waiting at once; the commit takes 5 ms.
        tokio::spawn(async move {
            for event in [delta("one"), delta("two"), complete()] {
                sender.send(event).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            sender.send(saved()).await.unwrap();
            sender.send(end()).await.unwrap();
        });
        let started = Instant::now();
        let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "{first}");
        assert!(
            first.contains("one") && first.contains("\"complete\""),
            "{first}"
        );
        let rest = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            rest.contains("message_saved") && rest.contains("\"end\""),
            "{rest}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_commit_holds_the_closing_events_no_longer_than_the_window() {
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let response = response(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut body = response.into_body().into_data_stream();

        tokio::spawn(async move {
            sender.send(complete()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender.send(saved()).await.unwrap();
            sender.send(end()).await.unwrap();
        });
        let started = Instant::now();
        let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(first.contains("\"complete\"") && !first.contains("message_saved"));
        assert!(started.elapsed() <= CLOSING_WINDOW + Duration::from_millis(1));
        let rest = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            rest.contains("message_saved") && rest.contains("\"end\""),
            "{rest}"
        );
        assert!(body.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn deltas_at_reading_speed_are_never_held() {
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let response = response(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut body = response.into_body().into_data_stream();

        for word in ["one", "two", "three"] {
            sender.send(delta(word)).await.unwrap();
            let sent = Instant::now();
            let chunk = body.next().await.unwrap().unwrap();
            assert!(String::from_utf8_lossy(&chunk).contains(word));
            assert_eq!(sent.elapsed(), Duration::ZERO, "{word} was held");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn events_closer_than_the_keep_alive_get_no_comment_between_them() {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let response = response(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut body = response.into_body().into_data_stream();

        // Five events 10 s apart: 50 s in all, never 15 s of silence.
        tokio::spawn(async move {
            for n in 0..4 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                sender.send(session(&format!("s{n}"))).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            sender.send(end()).await.unwrap();
        });
        let mut chunks = Vec::new();
        while let Some(chunk) = body.next().await {
            chunks.push(String::from_utf8(chunk.unwrap().to_vec()).unwrap());
        }
        assert_eq!(chunks.len(), 5, "{chunks:?}");
        assert!(chunks.iter().all(|chunk| chunk.starts_with("data: ")));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_gets_a_comment_and_a_late_event_still_arrives() {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let response = response(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut body = response.into_body().into_data_stream();

        let comment = body.next().await.unwrap().unwrap();
        assert_eq!(&comment[..], KEEP_ALIVE_COMMENT);

        tokio::spawn(async move {
            sender.send(session("late")).await.unwrap();
            sender.send(end()).await.unwrap();
        });
        let event = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&event).contains("late"));
        while let Some(chunk) = body.next().await {
            chunk.expect("the body ends whole with `end`");
        }
    }
}
