//! Helpers shared by the integration tests: a provider pointed at a fake
//! server, requests, and collecting a stream.

#![allow(dead_code)]

use std::time::Duration;

use astrbot_core::{ChatMessage, ChatRequest, ChatStream, ProviderError, StreamChunk, TokenUsage};
use astrbot_providers::{OpenAiCompatible, OpenAiConfig};
use fake_openai::FakeOpenAi;
use futures::StreamExt;

pub fn config(fake: &FakeOpenAi, keys: &[&str]) -> OpenAiConfig {
    OpenAiConfig {
        id: "fake".into(),
        api_base: fake.base_url(),
        keys: keys.iter().map(|key| key.to_string()).collect(),
        model: "fake-model".into(),
        timeout: Duration::from_secs(1),
        custom_headers: Vec::new(),
        extra_body: Default::default(),
        lean_loopback_client: true,
    }
}

pub fn provider(fake: &FakeOpenAi, keys: &[&str]) -> OpenAiCompatible {
    OpenAiCompatible::new(config(fake, keys)).expect("valid config")
}

pub fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::text("system", "You are a test."),
            ChatMessage::text("user", text),
        ],
        ..Default::default()
    }
}

/// What a finished stream produced.
#[derive(Debug, Default)]
pub struct Collected {
    pub text: String,
    pub reasoning: String,
    pub usage: Vec<TokenUsage>,
    pub text_chunks: usize,
    pub error: Option<ProviderError>,
}

pub async fn collect(mut stream: ChatStream) -> Collected {
    let mut collected = Collected::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(StreamChunk::Text(text)) => {
                collected.text.push_str(&text);
                collected.text_chunks += 1;
            }
            Ok(StreamChunk::Reasoning(text)) => collected.reasoning.push_str(&text),
            Ok(StreamChunk::Usage(usage)) => collected.usage.push(usage),
            Err(error) => {
                assert!(collected.error.is_none(), "an item after an error");
                collected.error = Some(error);
            }
        }
    }
    collected
}
