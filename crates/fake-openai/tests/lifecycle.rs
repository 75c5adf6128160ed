//! The fake server's lifecycle: changing behaviour at run time, and
//! shutting down while an answer hangs.

use std::time::Duration;

use fake_openai::{Behaviour, FakeOpenAi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a raw HTTP/1.1 chat request and returns the connection.
async fn send_chat(fake: &FakeOpenAi, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(fake.addr()).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

async fn read_all(mut stream: TcpStream) -> String {
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn behaviour_changes_at_run_time_and_requests_are_recorded() {
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    let body = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let answer = read_all(send_chat(&fake, body).await).await;
    assert!(answer.contains("Echo: hi"), "{answer}");

    fake.set_behaviour(Behaviour {
        fail_status: Some(503),
        ..Default::default()
    });
    let answer = read_all(send_chat(&fake, body).await).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].bearer_key(), Some("k"));
    assert_eq!(requests[0].body["messages"][0]["content"], "hi");
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn shutdown_ends_hanging_answers() {
    let fake = FakeOpenAi::start(Behaviour {
        hang_after_chunks: Some(1),
        ..Default::default()
    })
    .await;
    let stream = send_chat(
        &fake,
        r#"{"messages":[{"role":"user","content":"a b"}],"stream":true}"#,
    )
    .await;
    let reader = tokio::spawn(read_all(stream));
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(3), fake.shutdown())
        .await
        .expect("shutdown must not wait for the hanging answer");
    let answer = tokio::time::timeout(Duration::from_secs(3), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.contains("\"content\":\"Echo:\""), "{answer}");
    assert!(!answer.contains("[DONE]"));
}
