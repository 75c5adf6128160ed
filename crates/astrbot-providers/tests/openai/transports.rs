//! The two HTTP clients: reqwest, and the lean client used for providers
//! on this machine. Both must give the same answers and errors; the lean
//! one must also cope with what real local servers do on the wire (closed
//! keep-alive connections, close-delimited bodies, bytes arriving one at a
//! time).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{ask, collect, config, Collected};
use astrbot_core::{ChatProvider, ProviderError};
use astrbot_providers::{OpenAiCompatible, OpenAiConfig};
use fake_openai::{Behaviour, FakeOpenAi};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn with_client(config: OpenAiConfig, lean: bool) -> OpenAiCompatible {
    OpenAiCompatible::new(OpenAiConfig {
        lean_loopback_client: lean,
        ..config
    })
    .unwrap()
}

#[tokio::test]
async fn both_clients_give_the_same_answers_and_errors() {
    let fake = FakeOpenAi::start(Behaviour {
        reject_keys: vec!["sk-bad".into()],
        prompt_tokens: Some(9),
        ..Default::default()
    })
    .await;
    let mut seen = Vec::new();
    for lean in [true, false] {
        let provider = with_client(config(&fake, &["sk-bad", "sk-good"]), lean);
        let whole = provider.chat(ask("one two")).await.unwrap();
        let streamed = collect(provider.chat_stream(ask("three four")).await.unwrap()).await;
        let refused = with_client(config(&fake, &["sk-bad"]), lean)
            .chat_stream(ask("x"))
            .await
            .map(|_| ())
            .unwrap_err();
        let ProviderError::Status { status, body } = refused else {
            panic!("expected a status error, got {refused:?}");
        };
        seen.push((
            whole.text,
            whole.usage,
            streamed.text,
            streamed.text_chunks,
            streamed.usage,
            streamed.error.map(|error| error.to_string()),
            status,
            body,
        ));
    }
    assert_eq!(seen[0].0, "Echo: one two");
    assert_eq!(seen[0].2, "Echo: three four");
    assert_eq!(seen[0].6, 401);
    assert_eq!(seen[0], seen[1], "lean client, then reqwest");
}

/// When a raw provider closes a connection after its last answer.
#[derive(Clone, Copy)]
enum Close {
    /// At once, while the connection is idle.
    AtOnce,
    /// When the next request arrives, without reading or answering it: the
    /// race in which a server gives up on an idle connection just as it is
    /// reused.
    OnTheNextRequest,
    /// After working on the next request a while, without answering it: a
    /// model that crashed on the prompt. `true`: with a reset.
    AfterWorkingOnTheNextRequest(bool),
}

/// A provider on raw sockets: answers every request on a connection with
/// `answer`, counting connections, and closes each connection after
/// `answers_per_connection` answers.
async fn raw_provider(
    answer: &'static [u8],
    answers_per_connection: usize,
    close: Close,
) -> (String, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let base = raw_server(move |socket| {
        counted.fetch_add(1, Ordering::SeqCst);
        answer_requests(socket, answer, answers_per_connection, close)
    })
    .await;
    (base, connections)
}

/// A provider on raw sockets, at the base URL returned: each connection
/// is handed to `serve`, in a task of its own.
async fn raw_server<Serving>(serve: impl Fn(TcpStream) -> Serving + Send + 'static) -> String
where
    Serving: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    base
}

async fn answer_requests(
    mut socket: TcpStream,
    answer: &'static [u8],
    answers: usize,
    close: Close,
) {
    for _ in 0..answers {
        if !read_request(&mut socket).await {
            return;
        }
        if socket.write_all(answer).await.is_err() {
            return;
        }
    }
    match close {
        Close::AtOnce => {}
        Close::OnTheNextRequest => {
            // Closed with the request unread: the peer gets a reset.
            let mut head = [0u8; 16];
            let _ = socket.read(&mut head).await;
            let _ = socket.set_zero_linger();
            return;
        }
        Close::AfterWorkingOnTheNextRequest(reset) => {
            read_request(&mut socket).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            if reset {
                let _ = socket.set_zero_linger();
                return;
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Reads one request (head and `Content-Length` body); false at the end.
async fn read_request(socket: &mut TcpStream) -> bool {
    read_whole_request(socket).await.is_some()
}

/// Reads one request and returns it (head and body); `None` at the end.
async fn read_whole_request(socket: &mut TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => request.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&request).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    socket.read_exact(&mut body).await.ok()?;
    request.extend_from_slice(&body);
    Some(String::from_utf8_lossy(&request).into_owned())
}

/// A streamed answer from the provider at `base`, through the lean client
/// or reqwest.
async fn stream_from(base: &str, lean: bool) -> Collected {
    let provider = with_client(raw_config(base.to_owned()), lean);
    collect(provider.chat_stream(ask("x")).await.unwrap()).await
}

fn raw_config(api_base: String) -> OpenAiConfig {
    OpenAiConfig {
        api_base,
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

const WHOLE_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 48\r\n\r\n{\"choices\":[{\"message\":{\"content\":\"answered\"}}]}";

const STREAMED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n30\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";

/// Keep-alive comments, cut into two writes as a slow network may deliver
/// them.
const SPLIT_COMMENT: [&[u8]; 2] = [b": keep", b"-alive\n\n"];

/// A provider at the returned base that sends `before` fillers (each in
/// its pieces, one `interval` apart), then one token, then only fillers,
/// forever.
async fn stalling_provider(
    filler: [&'static [u8]; 2],
    before: usize,
    interval: Duration,
) -> String {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
    const TOKEN: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n";
    raw_server(move |mut socket| async move {
        if !read_request(&mut socket).await || socket.write_all(HEAD).await.is_err() {
            return;
        }
        for sent in 0.. {
            if sent == before && socket.write_all(TOKEN).await.is_err() {
                return;
            }
            for piece in filler {
                if socket.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(interval / 2).await;
            }
        }
    })
    .await
}

fn with_timeout(base: &str, timeout: Duration, lean: bool) -> OpenAiCompatible {
    let config = OpenAiConfig {
        timeout,
        ..raw_config(base.to_owned())
    };
    with_client(config, lean)
}

#[tokio::test]
async fn keep_alive_comments_hold_a_slow_first_token_past_the_timeout() {
    // As OpenRouter does while a model thinks: comments for longer than the
    // provider's timeout, then the answer.
    let base = stalling_provider(SPLIT_COMMENT, 4, Duration::from_millis(400)).await;
    for lean in [true, false] {
        let provider = with_timeout(&base, Duration::from_secs(1), lean);
        let mut stream = provider.chat_stream(ask("x")).await.unwrap();

        let first = stream.next().await.expect("a token comes");
        assert_eq!(
            first.unwrap(),
            astrbot_core::StreamChunk::Text("one".into()),
            "lean {lean}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn keep_alive_comments_alone_do_not_keep_a_stream_open_forever() {
    // Comments, a CRLF blank line cut between its CR and LF, and fields
    // other than `data`: none of them is answer.
    let fillers: [[&[u8]; 2]; 3] = [
        SPLIT_COMMENT,
        [b": processing\r\n\r", b"\n"],
        [b"id: 1\n", b"event: ping\n\n"],
    ];
    for filler in fillers {
        let base = stalling_provider(filler, 0, Duration::from_secs(5)).await;
        for lean in [true, false] {
            let provider = with_timeout(&base, Duration::from_secs(30), lean);
            let got = collect(provider.chat_stream(ask("x")).await.unwrap()).await;

            let case = format!("{filler:?}, lean {lean}");
            assert_eq!(got.text, "one", "{case}");
            let expected = "the provider sent keep-alive lines but no answer for 600 s";
            assert_eq!(
                got.error,
                Some(ProviderError::Other(expected.into())),
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn a_kept_alive_connection_is_reused() {
    let (base, connections) = raw_provider(WHOLE_ANSWER, usize::MAX, Close::AtOnce).await;
    let provider = with_client(raw_config(base), true);
    for _ in 0..3 {
        assert_eq!(provider.chat(ask("x")).await.unwrap().text, "answered");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_streamed_answer_leaves_its_connection_for_the_next_request() {
    // The stream ends at `[DONE]`; the body's last chunk is right behind.
    let (base, connections) = raw_provider(STREAMED, usize::MAX, Close::AtOnce).await;
    let provider = with_client(raw_config(base), true);
    for _ in 0..3 {
        let got = collect(provider.chat_stream(ask("x")).await.unwrap()).await;
        assert_eq!((got.text.as_str(), got.error), ("hi", None));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    // One answer per connection, then the server closes it, as servers
    // with a short keep-alive limit do.
    let (base, connections) = raw_provider(WHOLE_ANSWER, 1, Close::AtOnce).await;
    let provider = with_client(raw_config(base), true);
    for _ in 0..3 {
        assert_eq!(provider.chat(ask("x")).await.unwrap().text, "answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_request_on_a_connection_closed_as_it_was_reused_is_sent_again() {
    let (base, connections) = raw_provider(WHOLE_ANSWER, 1, Close::OnTheNextRequest).await;
    let provider = with_client(raw_config(base), true);
    for _ in 0..3 {
        assert_eq!(provider.chat(ask("x")).await.unwrap().text, "answered");
        let got = collect(provider.chat_stream(ask("x")).await.unwrap()).await;
        assert_eq!(got.error, None);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_request_the_provider_worked_on_before_closing_is_not_sent_again() {
    for reset in [false, true] {
        let (base, connections) =
            raw_provider(WHOLE_ANSWER, 1, Close::AfterWorkingOnTheNextRequest(reset)).await;
        let provider = with_client(raw_config(base), true);
        assert_eq!(provider.chat(ask("x")).await.unwrap().text, "answered");

        let error = provider.chat(ask("x")).await.unwrap_err();

        assert!(matches!(error, ProviderError::Transport(_)), "{error:?}");
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "reset {reset}: sent once"
        );
    }
}

#[tokio::test]
async fn a_body_that_ends_with_the_connection_is_read_whole() {
    const CLOSE_DELIMITED: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"old \"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"server\"}}]}\n\n";
    let (base, connections) = raw_provider(CLOSE_DELIMITED, 1, Close::AtOnce).await;
    let provider = with_client(raw_config(base), true);
    for _ in 0..2 {
        let got = collect(provider.chat_stream(ask("x")).await.unwrap()).await;
        assert_eq!(got.error, None);
        assert_eq!(got.text, "old server");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2, "never reused");
}

#[tokio::test]
async fn an_answer_arriving_a_byte_at_a_time_streams_whole() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.set_nodelay(true).unwrap();
        read_request(&mut socket).await;
        let mut answer = Vec::new();
        for word in ["slow ", "but ", "whole"] {
            let data =
                format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{word}\"}}}}]}}\n\n");
            answer.extend_from_slice(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes());
        }
        let mut wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        wire.extend_from_slice(&answer);
        wire.extend_from_slice(b"0\r\n\r\n");
        for byte in wire {
            socket.write_all(&[byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let provider = with_client(raw_config(base), true);

    let got = collect(provider.chat_stream(ask("x")).await.unwrap()).await;

    assert_eq!(got.error, None);
    assert_eq!(got.text, "slow but whole");
}

#[tokio::test]
async fn a_redirect_is_followed_by_both_clients() {
    // A local server that moved its API: the old path answers 307 (which
    // keeps the method and body), the new one answers.
    const MOVED: &[u8] = b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /v2/chat/completions\r\ncontent-length: 0\r\n\r\n";
    let base = raw_server(|mut socket| async move {
        while let Some(request) = read_whole_request(&mut socket).await {
            let answer = match request {
                old if old.starts_with("POST /v1/") => MOVED,
                streamed if streamed.contains("\"stream\":true") => STREAMED,
                _ => WHOLE_ANSWER,
            };
            if socket.write_all(answer).await.is_err() {
                return;
            }
        }
    })
    .await;

    for lean in [true, false] {
        let provider = with_client(raw_config(base.clone()), lean);
        for _ in 0..2 {
            let whole = provider.chat(ask("x")).await;
            assert_eq!(whole.unwrap().text, "answered", "lean {lean}");
            let streamed = collect(provider.chat_stream(ask("x")).await.unwrap()).await;
            assert_eq!(
                (streamed.text.as_str(), streamed.error),
                ("hi", None),
                "lean {lean}"
            );
        }
    }
}

#[tokio::test]
async fn a_garbled_answer_is_a_transport_error_for_both_clients() {
    let (base, _) = raw_provider(b"NOT HTTP AT ALL\r\n\r\n", 1, Close::AtOnce).await;
    for lean in [true, false] {
        let error = with_client(raw_config(base.clone()), lean)
            .chat(ask("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::Transport(_)),
            "lean {lean}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_key_with_a_line_break_is_never_sent() {
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    for lean in [true, false] {
        let error = with_client(config(&fake, &["sk-a\r\nx-injected: yes"]), lean)
            .chat(ask("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ProviderError::Transport(text) if !text.contains("sk-a")),
            "lean {lean}: {error:?}"
        );
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn connections_the_provider_closed_are_let_go_without_waiting_for_a_request() {
    // Each connection gets one answer, then the provider closes its end
    // and waits to see ours closed.
    let let_go = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&let_go);
    let base = raw_server(move |mut socket| {
        let counted = Arc::clone(&counted);
        async move {
            read_request(&mut socket).await;
            socket.write_all(WHOLE_ANSWER).await.unwrap();
            socket.shutdown().await.unwrap();
            let mut rest = Vec::new();
            if socket.read_to_end(&mut rest).await.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await;
    let provider = with_client(raw_config(base), true);
    let chats = (0..3).map(|_| provider.chat(ask("x")));
    for answer in futures::future::join_all(chats).await {
        assert_eq!(answer.unwrap().text, "answered");
    }

    // No further request: the idle pool's sweep must close them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let_go.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(let_go.load(Ordering::SeqCst), 3);
}

/// An answer whose body is `size` bytes of `fill`, framed by `head`.
fn huge(head: &str, size: usize, fill: u8) -> &'static [u8] {
    let mut answer = head.as_bytes().to_vec();
    answer.resize(answer.len() + size, fill);
    Box::leak(answer.into_boxed_slice())
}

#[tokio::test]
async fn an_endless_answer_is_cut_off_with_an_error_not_read_into_memory() {
    const SIZE: usize = 17 * 1024 * 1024;
    let whole = huge(
        &format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n"),
        SIZE,
        b' ',
    );
    // One streamed event that never ends: no line break at all.
    let event = huge(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: ",
        9 * 1024 * 1024,
        b'a',
    );
    // Many small events that add up to more than a streamed answer may
    // be: 33 events of 1 MiB of text each.
    let many = {
        let text = "b".repeat(1024 * 1024);
        let event = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n");
        let mut answer = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n".to_owned();
        for _ in 0..33 {
            answer.push_str(&event);
        }
        Box::leak(answer.into_boxed_str()).as_bytes()
    };
    let (whole_base, _) = raw_provider(whole, 1, Close::AtOnce).await;
    let (many_base, _) = raw_provider(many, 1, Close::AtOnce).await;
    let (event_base, _) = raw_provider(event, 1, Close::AtOnce).await;
    for lean in [true, false] {
        let error = with_client(raw_config(whole_base.clone()), lean)
            .chat(ask("x"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("larger than 16 MiB"),
            "lean {lean}: {error}"
        );
        let got = stream_from(&event_base, lean).await;
        let error = got.error.expect("an error");
        assert!(
            error.to_string().contains("larger than 8 MiB"),
            "lean {lean}: {error}"
        );
        let got = stream_from(&many_base, lean).await;
        let error = got.error.expect("an error");
        assert!(
            error.to_string().contains("larger than 32 MiB"),
            "lean {lean}: {error}"
        );
        assert!(got.text.len() <= 32 * 1024 * 1024, "{}", got.text.len());
    }
}

#[tokio::test]
async fn half_a_surrogate_pair_in_a_chunk_reads_as_the_replacement_character() {
    // Python's json module writes an emoji cut in two as it is; a server
    // written in Python can stream one.
    const CUT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"cut \\ud83d\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" pair \\ud83d\\ude00\"}}]}\n\ndata: [DONE]\n\n";
    for lean in [true, false] {
        let (base, _) = raw_provider(CUT, 1, Close::AtOnce).await;
        let provider = with_client(raw_config(base), lean);
        let got = collect(provider.chat_stream(ask("x")).await.unwrap()).await;
        assert_eq!(
            (got.text.as_str(), got.error),
            ("cut \u{fffd} pair 😀", None),
            "lean client: {lean}"
        );
    }
}

#[tokio::test]
async fn a_request_refused_before_it_was_read_whole_gets_the_providers_answer() {
    // A local server with a body limit answers as soon as it has read the
    // head of a request that is too long, and reads no more of it: then it
    // closes (the client's write fails, yet the answer is there to read),
    // or it keeps the connection open (the client's write would wait for
    // good). Some send `100 Continue` first, or a blank line, as HTTP
    // allows before a status line.
    for before in ["", "HTTP/1.1 100 Continue\r\n\r\n", "\r\n"] {
        for keep_open in [false, true] {
            let base = raw_server(move |mut socket| async move {
                let mut head = vec![0u8; 4096];
                let _ = socket.read(&mut head).await;
                let body = r#"{"error":{"message":"the request is too long","type":"invalid_request_error"}}"#;
                let answer = format!(
                    "{before}HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                if keep_open {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            })
            .await;

            let long = "x".repeat(16 * 1024 * 1024);
            for lean in [true, false] {
                let case = format!("lean {lean}, kept open {keep_open}, after {before:?}");
                let provider = with_client(raw_config(base.clone()), lean);
                let refused = provider
                    .chat_stream(ask(&long))
                    .await
                    .map(|_| ())
                    .unwrap_err();
                let ProviderError::Status { status, body } = refused else {
                    panic!("{case}: expected the provider's answer, got {refused:?}");
                };
                assert_eq!(status, 413, "{case}");
                assert!(body.contains("the request is too long"), "{case}: {body}");
            }
        }
    }
}

#[tokio::test]
async fn a_request_the_provider_acknowledged_is_not_sent_again() {
    // The first request leaves its connection idle; the provider reads the
    // second one whole, says `100 Continue` and closes: it had the request,
    // which must not reach it twice, even on a reused connection.
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let base = raw_server(move |mut socket| {
        let counted = Arc::clone(&counted);
        async move {
            while read_request(&mut socket).await {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = socket.write_all(WHOLE_ANSWER).await;
                } else {
                    let _ = socket.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
                    return;
                }
            }
        }
    })
    .await;

    let provider = with_client(raw_config(base), true);
    assert_eq!(provider.chat(ask("x")).await.unwrap().text, "answered");
    assert!(provider.chat(ask("y")).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 2, "sent once each");
}

#[tokio::test]
async fn a_long_request_arrives_whole_through_both_clients() {
    // Longer than what the lean client sends in one write with its head.
    let (received, mut requests) = tokio::sync::mpsc::unbounded_channel();
    let base = raw_server(move |mut socket| {
        let received = received.clone();
        async move {
            while let Some(request) = read_whole_request(&mut socket).await {
                let _ = received.send(request);
                if socket.write_all(WHOLE_ANSWER).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;

    let long: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for lean in [true, false] {
        let provider = with_client(raw_config(base.clone()), lean);
        for _ in 0..2 {
            assert_eq!(provider.chat(ask(&long)).await.unwrap().text, "answered");
            let request = requests.recv().await.unwrap();
            let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["messages"][1]["content"], long.as_str(), "lean {lean}");
        }
    }
}

const ERROR_IN_A_200: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: 44\r\n\r\n{\"error\":{\"message\":\"the model is loading\"}}";

#[tokio::test]
async fn a_provider_that_answers_a_stream_request_whole_is_read_whole() {
    // Some servers ignore `stream: true` and send one JSON document, an
    // answer or an error; both clients read it as a whole answer.
    let (answering, _) = raw_provider(WHOLE_ANSWER, usize::MAX, Close::AtOnce).await;
    let (failing, _) = raw_provider(ERROR_IN_A_200, usize::MAX, Close::AtOnce).await;
    for lean in [true, false] {
        let streamed = stream_from(&answering, lean).await;
        assert_eq!(streamed.text, "answered", "lean {lean}");
        assert!(streamed.error.is_none(), "lean {lean}");

        let provider = with_client(raw_config(failing.clone()), lean);
        let refused = provider
            .chat_stream(ask("x"))
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            refused.to_string().contains("the model is loading"),
            "lean {lean}: {refused}"
        );
    }
}

#[tokio::test]
async fn a_content_filters_stop_fails_the_answer_in_astrbots_words() {
    // Azure OpenAI stops an answer it filters with `finish_reason:
    // "content_filter"`, streamed after the text so far or in a whole
    // answer. AstrBot fails such an answer; so does this client, keeping
    // what was streamed before the stop.
    const STREAMED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" upon\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" a\"},\"finish_reason\":\"content_filter\"}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" time\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n";
    const WHOLE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 82\r\n\r\n{\"choices\":[{\"message\":{\"content\":\"Once upon\"},\"finish_reason\":\"content_filter\"}]}";
    let filtered = "API 返回的 completion 由于内容安全过滤被拒绝(非 AstrBot)。";
    for lean in [true, false] {
        let (streamed, _) = raw_provider(STREAMED, 1, Close::AtOnce).await;
        let got = stream_from(&streamed, lean).await;
        assert_eq!(got.text, "Once upon a", "lean {lean}");
        let error = got.error.map(|error| error.to_string());
        assert_eq!(error.as_deref(), Some(filtered), "lean {lean}");

        let (whole, _) = raw_provider(WHOLE, 1, Close::AtOnce).await;
        let provider = with_client(raw_config(whole), lean);
        let refused = provider.chat(ask("x")).await.unwrap_err();
        assert_eq!(refused.to_string(), filtered, "lean {lean}");
    }
}
