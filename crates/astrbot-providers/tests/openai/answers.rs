//! The OpenAI-compatible provider against the fake server: answers,
//! streaming, usage, and what goes over the wire.

use std::time::Duration;

use crate::common::{ask, collect, config, provider};
use astrbot_core::{ChatProvider, ChatRequest, TokenUsage};
use astrbot_providers::OpenAiCompatible;
use fake_openai::{Behaviour, FakeOpenAi};
use serde_json::json;

#[tokio::test]
async fn streams_text_and_usage() {
    let fake = FakeOpenAi::start(Behaviour {
        prompt_tokens: Some(50),
        cached_tokens: 20,
        ..Default::default()
    })
    .await;
    let stream = provider(&fake, &["sk-good"])
        .chat_stream(ask("hello there world"))
        .await
        .unwrap();
    let got = collect(stream).await;
    assert_eq!(got.error, None);
    assert_eq!(got.text, "Echo: hello there world");
    assert_eq!(got.text_chunks, 4, "one delta per word");
    assert_eq!(
        got.usage,
        vec![TokenUsage {
            input_other: 30,
            input_cached: 20,
            output: 4
        }]
    );
    let body = &fake.requests()[0].body;
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "hello there world"})
    );
}

/// OpenAI pads every streamed chunk with a random `obfuscation` field; the
/// chunks then differ in more than their token.
#[tokio::test]
async fn streams_chunks_padded_as_openai_pads_them() {
    let fake = FakeOpenAi::start(Behaviour {
        text: Some("padded answer, one character at a time".into()),
        chunks: Some(38),
        reasoning: Some("first some thought".into()),
        obfuscation: true,
        ..Default::default()
    })
    .await;
    for lean_loopback_client in [true, false] {
        let provider = OpenAiCompatible::new(astrbot_providers::OpenAiConfig {
            lean_loopback_client,
            ..config(&fake, &[])
        })
        .unwrap();
        let got = collect(provider.chat_stream(ask("q")).await.unwrap()).await;
        assert_eq!(got.error, None);
        assert_eq!(got.text, "padded answer, one character at a time");
        assert_eq!(got.text_chunks, 38);
        assert_eq!(got.reasoning, "first some thought");
    }

    // The fake pads as OpenAI does, and not when the request opts out.
    let raw = |include_obfuscation: bool| {
        let url = format!("{}/chat/completions", fake.base_url());
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({
                    "model": "m", "stream": true,
                    "stream_options": {"include_obfuscation": include_obfuscation},
                    "messages": [{"role": "user", "content": "q"}],
                }))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let padded = raw(true).await;
    let paddings: Vec<&str> = padded
        .lines()
        .filter_map(|line| line.split(r#""obfuscation":""#).nth(1))
        .collect();
    assert!(paddings.len() > 30, "{padded}");
    assert!(
        paddings.windows(2).any(|pair| pair[0] != pair[1]),
        "{padded}"
    );
    assert!(!raw(false).await.contains("obfuscation"));
}

#[tokio::test]
async fn streams_reasoning_before_text() {
    let fake = FakeOpenAi::start(Behaviour {
        reasoning: Some("let me think".into()),
        text: Some("done".into()),
        ..Default::default()
    })
    .await;
    let got = collect(provider(&fake, &[]).chat_stream(ask("q")).await.unwrap()).await;
    assert_eq!(got.reasoning, "let me think");
    assert_eq!(got.text, "done");
}

#[tokio::test]
async fn streams_a_fixed_number_of_paced_chunks() {
    let fake = FakeOpenAi::start(Behaviour {
        text: Some("abcdefghij".into()),
        chunks: Some(5),
        first_token_delay: Duration::from_millis(100),
        token_delay: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let started = std::time::Instant::now();
    let got = collect(provider(&fake, &[]).chat_stream(ask("q")).await.unwrap()).await;
    assert!(started.elapsed() >= Duration::from_millis(180));
    assert_eq!((got.text.as_str(), got.text_chunks), ("abcdefghij", 5));
    assert_eq!(got.usage[0].output, 5);
}

#[tokio::test]
async fn whole_answer_with_usage() {
    let fake = FakeOpenAi::start(Behaviour {
        reasoning: Some("thinking".into()),
        prompt_tokens: Some(12),
        ..Default::default()
    })
    .await;
    let answer = provider(&fake, &["sk-good"])
        .chat(ask("non streaming please"))
        .await
        .unwrap();
    assert_eq!(answer.text, "Echo: non streaming please");
    assert_eq!(answer.reasoning, "thinking");
    assert_eq!(
        answer.usage,
        TokenUsage {
            input_other: 12,
            input_cached: 0,
            output: 4
        }
    );
    let body = &fake.requests()[0].body;
    assert!(body.get("stream").is_none());
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["model"], json!("fake-model"));
}

#[tokio::test]
async fn authorization_header_carries_the_key() {
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    provider(&fake, &["sk-the-key"])
        .chat(ask("x"))
        .await
        .unwrap();
    let recorded = &fake.requests()[0];
    assert_eq!(recorded.authorization.as_deref(), Some("Bearer sk-the-key"));
}

#[tokio::test]
async fn no_keys_send_no_authorization() {
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    provider(&fake, &[""]).chat(ask("x")).await.unwrap();
    assert_eq!(fake.requests()[0].authorization, None);
}

#[tokio::test]
async fn env_keys_are_resolved_at_construction() {
    std::env::set_var("ASTRBOT_PROVIDERS_IT_KEY", "sk-from-env");
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    provider(&fake, &["${ASTRBOT_PROVIDERS_IT_KEY}"])
        .chat(ask("x"))
        .await
        .unwrap();
    assert_eq!(fake.requests()[0].bearer_key(), Some("sk-from-env"));
}

#[tokio::test]
async fn model_override_max_tokens_extra_body_and_headers_are_sent() {
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    let mut config = config(&fake, &["k1"]);
    config.custom_headers = vec![("X-Custom".into(), "yes".into())];
    config.extra_body.insert("temperature".into(), json!(0.3));
    let provider = OpenAiCompatible::new(config).unwrap();
    let request = ChatRequest {
        model: Some("other-model".into()),
        max_tokens: Some(42),
        ..ask("title please")
    };
    provider.chat(request.clone()).await.unwrap();
    collect(provider.chat_stream(request).await.unwrap()).await;
    for recorded in fake.requests() {
        assert_eq!(recorded.body["model"], json!("other-model"));
        assert_eq!(recorded.body["max_tokens"], json!(42));
        assert_eq!(recorded.body["temperature"], json!(0.3));
        assert_eq!(recorded.header("x-custom"), Some("yes"));
    }
    assert_eq!(provider.model(), "fake-model");
    assert_eq!(provider.id(), "fake");
}

#[tokio::test]
async fn concurrent_streams_do_not_cross_talk() {
    let fake = FakeOpenAi::start(Behaviour {
        token_delay: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let provider = std::sync::Arc::new(provider(&fake, &["a-key", "b-key"]));
    let tasks: Vec<_> = (0..16)
        .map(|index| {
            let provider = provider.clone();
            tokio::spawn(async move {
                let prompt = format!("session number {index}");
                let got = collect(provider.chat_stream(ask(&prompt)).await.unwrap()).await;
                assert_eq!(got.text, format!("Echo: {prompt}"));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Round-robin start: both keys were used.
    let keys: std::collections::HashSet<_> = fake
        .requests()
        .iter()
        .map(|r| r.bearer_key().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 2);
}
