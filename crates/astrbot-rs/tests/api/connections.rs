//! Clients that go silent: a connection that says nothing, a request head
//! that never ends, a kept-alive or HTTP/2 connection left idle and a
//! request body that stalls are all let go after their limit, while a quiet
//! answer is never cut.

use std::time::{Duration, Instant};

use astrbot_server::ConnectionLimits;
use fake_openai::Behaviour;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Short limits, so that the tests wait seconds, not minutes.
const LIMITS: ConnectionLimits = ConnectionLimits {
    header_read: Duration::from_secs(1),
    body_idle: Duration::from_secs(1),
    http2_idle: Duration::from_secs(1),
};

/// Longer than any limit above plus scheduling slack; a connection still
/// open by then was never going to be closed.
const GIVE_UP: Duration = Duration::from_secs(15);

async fn spawn_limited_app(behaviour: Behaviour) -> TestApp {
    spawn_app_with_limits(behaviour, LIMITS, |_| {}).await
}

/// Everything the server sends until it closes the connection, and how
/// long that took.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    tokio::time::timeout(GIVE_UP, stream.read_to_end(&mut received))
        .await
        .expect("the server closed the connection")
        .ok();
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// The JSON body of a raw HTTP/1.1 response.
fn json_body(response: &str) -> Value {
    let (_, body) = response.split_once("\r\n\r\n").expect("a whole response");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("a JSON body in {response:?}"))
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off_and_others_are_still_served() {
    let app = spawn_limited_app(Behaviour::default()).await;
    let mut slow = app.connect().await;
    slow.write_all(b"GET /api/v1/im/bots HTTP/1.1\r\nHost: x\r\nX-Api-")
        .await
        .unwrap();

    let (_, took) = read_until_closed(&mut slow).await;

    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    let (key, _) = app.create_key(&["im"]).await;
    let (status, body) = app.get("/api/v1/im/bots", Some(&key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn a_client_that_connects_and_says_nothing_is_let_go() {
    let app = spawn_limited_app(Behaviour::default()).await;
    let mut silent = app.connect().await;
    // HTTP/2's opening words, cut short: not enough to tell the protocol.
    let mut half_preface = app.connect().await;
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();

    let (said, took) = read_until_closed(&mut silent).await;
    let (_, half_took) = read_until_closed(&mut half_preface).await;

    assert_eq!(said, "");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert!(half_took < GIVE_UP);
}

#[tokio::test]
async fn http2_clients_are_served_as_before() {
    let app = spawn_limited_app(Behaviour::default()).await;
    let (key, _) = app.create_key(&["im"]).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    let response = client
        .get(app.url("/api/v1/im/bots"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let (status, body) = into_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_its_answer() {
    let app = spawn_limited_app(Behaviour::default()).await;
    let mut client = app.connect().await;
    client
        .write_all(b"GET /api/v1/im/bots HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let (response, _) = read_until_closed(&mut client).await;

    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(json_body(&response)["status"], "error");
}

const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

/// Plays a well-behaved HTTP/2 client that never opens a request: sends
/// the preface, acknowledges the server's SETTINGS and PINGs, and returns
/// the types of the frames received until the server closed.
async fn idle_http2_client(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    stream
        .write_all(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut types = Vec::new();
    let mut buffer = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        let read = stream.read(&mut piece).await.unwrap_or(0);
        if read == 0 {
            return types;
        }
        buffer.extend_from_slice(&piece[..read]);
        while buffer.len() >= 9 {
            let length = u32::from_be_bytes([0, buffer[0], buffer[1], buffer[2]]) as usize;
            if buffer.len() < 9 + length {
                break;
            }
            let frame: Vec<u8> = buffer.drain(..9 + length).collect();
            let (kind, flags) = (frame[3], frame[4]);
            types.push(kind);
            if flags & ACK == 0 && kind == SETTINGS {
                stream
                    .write_all(&[0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0])
                    .await
                    .ok();
            }
            if flags & ACK == 0 && kind == PING {
                let mut answer = vec![0, 0, 8, PING, ACK, 0, 0, 0, 0];
                answer.extend_from_slice(&frame[9..]);
                stream.write_all(&answer).await.ok();
            }
        }
    }
}

#[tokio::test]
async fn an_http2_connection_without_requests_is_closed_with_goaway() {
    let app = spawn_limited_app(Behaviour::default()).await;
    let mut client = app.connect().await;

    let started = Instant::now();
    let types = tokio::time::timeout(GIVE_UP, idle_http2_client(&mut client))
        .await
        .expect("the server closed the connection");

    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert_eq!(types.first(), Some(&SETTINGS), "{types:?}");
    assert!(types.contains(&GOAWAY), "{types:?}");
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_before_it_is_sent() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "file"]).await;

    for (path, length) in [
        ("/api/v1/chat", 16 * 1024 * 1024 + 1),
        ("/api/v1/file", 200 * 1024 * 1024),
    ] {
        let mut client = app.connect().await;
        // No body follows: the client waits to be told to send it.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\
             Expect: 100-continue\r\n\r\n"
        );
        client.write_all(head.as_bytes()).await.unwrap();

        let (response, took) = read_until_closed(&mut client).await;

        assert!(response.starts_with("HTTP/1.1 413"), "{path}: {response}");
        assert!(!response.contains("100 Continue"), "{path}: {response}");
        assert!(
            took < Duration::from_secs(5),
            "{path}: answered after {took:?}"
        );
        assert_eq!(json_body(&response)["status"], "error", "{path}");
    }
}

#[tokio::test]
async fn a_chat_body_that_stalls_is_answered_in_the_envelope() {
    let app = spawn_limited_app(Behaviour::default()).await;
    let (key, _) = app.create_key(&["chat"]).await;
    let mut client = app.connect().await;
    let head = format!(
        "POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client
        .write_all(br#"{"username": "alice", "#)
        .await
        .unwrap();

    let (response, took) = read_until_closed(&mut client).await;

    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let body = json_body(&response);
    assert_eq!(body["status"], "error");
    assert_eq!(
        body["message"],
        "Failed to buffer the request body: the client sent no data for 1 s"
    );
}

#[tokio::test]
async fn an_upload_that_stalls_fails_and_keeps_nothing() {
    let app = spawn_limited_app(Behaviour::default()).await;
    let (key, _) = app.create_key(&["file"]).await;
    let mut client = app.connect().await;
    let boundary = "XyZ";
    let part_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"half.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let head = format!(
        "POST /api/v1/file HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: 100000\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(part_head.as_bytes()).await.unwrap();
    client.write_all(&[7u8; 4096]).await.unwrap();

    let (response, _) = read_until_closed(&mut client).await;

    let body = json_body(&response);
    assert_eq!(body["status"], "error");
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("Upload interrupted: "), "{message}");
    assert!(
        message.ends_with("the client sent no data for 1 s"),
        "the cause is told: {message}"
    );
    assert!(
        files_under(&app.data_dir().join("attachments")).is_empty(),
        "the half-written file was removed"
    );
}

#[tokio::test]
async fn an_answer_quieter_than_every_limit_still_arrives_whole() {
    let app = spawn_limited_app(Behaviour {
        text: Some("worth the wait".into()),
        first_token_delay: Duration::from_millis(2500),
        ..Default::default()
    })
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"username": "alice", "message": "hi", "enable_streaming": true}),
        )
        .await;

    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.text(), "worth the wait");
    assert_eq!(stream.types().last().map(String::as_str), Some("end"));

    // The same over HTTP/2, whose connection has a request open meanwhile.
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = http2
        .post(app.url("/api/v1/chat"))
        .header("X-API-Key", &key)
        .json(&json!({"username": "alice", "message": "again", "enable_streaming": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let stream = read_stream(response).await;
    assert_eq!(stream.text(), "worth the wait");
    assert_eq!(stream.types().last().map(String::as_str), Some("end"));
}

#[tokio::test]
async fn shutdown_does_not_wait_for_clients_that_never_spoke() {
    let root = temp_root();
    let server = astrbot_server::Server::bind(astrbot_server::ServerOptions {
        root: astrbot_server::DataRoot::new(&root),
        host: Some("127.0.0.1".into()),
        port: Some(0),
        // The default limits: a silent client would be held for 30 s.
        limits: ConnectionLimits::default(),
    })
    .await
    .unwrap();
    let address = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let _silent = TcpStream::connect(address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.send(()).unwrap();

    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the server stopped without waiting for the silent client")
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
