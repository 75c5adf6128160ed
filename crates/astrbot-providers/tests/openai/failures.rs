//! The OpenAI-compatible provider against a failing fake server: HTTP
//! errors, key rotation, timeouts and unreachable hosts.

use std::time::{Duration, Instant};

use crate::common::{ask, collect, provider};
use astrbot_core::{ChatProvider, ProviderError};
use astrbot_providers::{OpenAiCompatible, OpenAiConfig};
use fake_openai::{Behaviour, FakeOpenAi};

#[tokio::test]
async fn http_500_is_a_status_error() {
    let fake = FakeOpenAi::start(Behaviour {
        fail_status: Some(500),
        ..Default::default()
    })
    .await;
    let provider = provider(&fake, &["sk-good"]);
    for result in [
        provider.chat(ask("x")).await.map(|_| ()),
        provider.chat_stream(ask("x")).await.map(|_| ()),
    ] {
        match result {
            Err(ProviderError::Status { status: 500, body }) => {
                assert!(body.contains("server_error"), "{body}")
            }
            other => panic!("expected a 500 status error, got {other:?}"),
        }
    }
    // 500 is not a key problem: no retry with another key.
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn rejected_key_rotates_to_a_good_one() {
    let fake = FakeOpenAi::start(Behaviour {
        reject_keys: vec!["sk-bad".into()],
        rate_limited_keys: vec!["sk-limited".into()],
        ..Default::default()
    })
    .await;
    let provider = provider(&fake, &["sk-bad", "sk-limited", "sk-good"]);
    // Whichever key a request starts with, it ends on the good one.
    for _ in 0..3 {
        assert_eq!(provider.chat(ask("x")).await.unwrap().text, "Echo: x");
        let got = collect(provider.chat_stream(ask("y")).await.unwrap()).await;
        assert_eq!(got.text, "Echo: y");
    }
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r.bearer_key() == Some("sk-bad")));
    assert!(requests
        .iter()
        .any(|r| r.bearer_key() == Some("sk-limited")));
    // Six answers; every key tried at most once per answer.
    assert!(requests.len() <= 18);
}

#[tokio::test]
async fn all_keys_rejected_is_a_status_error_without_keys() {
    let fake = FakeOpenAi::start(Behaviour {
        reject_keys: vec!["sk-bad-one".into(), "sk-bad-two".into()],
        ..Default::default()
    })
    .await;
    let error = provider(&fake, &["sk-bad-one", "sk-bad-two"])
        .chat(ask("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 401, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("sk-bad"));
    assert_eq!(fake.requests().len(), 2, "each key once");
}

#[tokio::test]
async fn hang_before_answer_times_out() {
    let fake = FakeOpenAi::start(Behaviour {
        hang_before_answer: true,
        ..Default::default()
    })
    .await;
    let provider = provider(&fake, &[]);
    let started = Instant::now();
    let error = provider.chat(ask("x")).await.unwrap_err();
    assert_eq!(error, ProviderError::Timeout { seconds: 1 });
    let error = provider
        .chat_stream(ask("x"))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(error, ProviderError::Timeout { seconds: 1 });
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_first_token_times_out_in_the_stream() {
    let fake = FakeOpenAi::start(Behaviour {
        first_token_delay: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let got = collect(provider(&fake, &[]).chat_stream(ask("x")).await.unwrap()).await;
    assert_eq!(got.error, Some(ProviderError::Timeout { seconds: 1 }));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn hang_mid_stream_times_out() {
    let fake = FakeOpenAi::start(Behaviour {
        text: Some("one two three four".into()),
        hang_after_chunks: Some(2),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let stream = provider(&fake, &[]).chat_stream(ask("x")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), collect(stream))
        .await
        .expect("the stream must end");
    assert_eq!(got.text, "one two");
    assert_eq!(got.error, Some(ProviderError::Timeout { seconds: 1 }));
    assert!(got.usage.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_steady_stream_longer_than_the_gap_limit_does_not_time_out() {
    // Tokens 400 ms apart for about two seconds, under a one-second limit on
    // the gap between chunks: the limit counts from the last chunk, not from
    // the start of the stream.
    let fake = FakeOpenAi::start(Behaviour {
        text: Some("a b c d e".into()),
        token_delay: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let got = collect(provider(&fake, &[]).chat_stream(ask("x")).await.unwrap()).await;
    assert_eq!(got.error, None);
    assert_eq!(got.text, "a b c d e");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreachable_host_is_a_transport_error() {
    // Bind and drop to get a port that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = OpenAiCompatible::new(OpenAiConfig {
        api_base: format!("http://user:secret-pass@127.0.0.1:{port}/v1?key=secret-query"),
        keys: vec!["sk-secret".into()],
        timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .unwrap();
    let error = provider.chat(ask("x")).await.unwrap_err();
    let ProviderError::Transport(message) = &error else {
        panic!("expected a transport error, got {error:?}");
    };
    assert!(!message.contains("secret"), "{message}");
    assert!(message.contains("connect"), "{message}");
}

#[tokio::test]
async fn an_answer_that_breaks_off_is_not_an_unreachable_provider() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A provider that sends two chunks of a chunked body, then closes the
    // connection without the closing chunk.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut request).await;
        let event = |text: &str| {
            let data = format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
            );
            format!("{:x}\r\n{data}\r\n", data.len())
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{}{}",
            event("one "),
            event("two")
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
    });
    let provider = OpenAiCompatible::new(OpenAiConfig {
        api_base: format!("http://127.0.0.1:{port}/v1"),
        timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .unwrap();

    let got = collect(provider.chat_stream(ask("x")).await.unwrap()).await;

    assert_eq!(got.text, "one two");
    let Some(ProviderError::Other(message)) = &got.error else {
        panic!(
            "expected the answer to have broken off, got {:?}",
            got.error
        );
    };
    assert!(
        message.starts_with("the provider's answer broke off"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_env_key_fails_construction() {
    let error = OpenAiCompatible::new(OpenAiConfig {
        keys: vec!["$ASTRBOT_PROVIDERS_IT_UNSET".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("ASTRBOT_PROVIDERS_IT_UNSET"));
}
