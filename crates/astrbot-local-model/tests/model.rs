//! Tests against the real SmolLM2 file. They skip (with a message) when the
//! file is missing; run `scripts/fetch-model.sh` to get it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use astrbot_core::{ChatMessage, ChatProvider, ChatRequest, StreamChunk};
use astrbot_local_model::{LocalModel, LocalProvider, MODEL_FILE_NAME};
use futures::StreamExt;

/// `ASTRBOT_LOCAL_MODEL`, else `models/` at the repository root.
fn model_path() -> PathBuf {
    match std::env::var_os("ASTRBOT_LOCAL_MODEL") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(MODEL_FILE_NAME),
    }
}

/// The model, loaded once for all tests of this binary; `None` when absent.
fn model() -> Option<Arc<LocalModel>> {
    static MODEL: OnceLock<Option<Arc<LocalModel>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path();
            if !path.exists() {
                eprintln!(
                    "SKIPPED: no model at {} (run scripts/fetch-model.sh or set ASTRBOT_LOCAL_MODEL)",
                    path.display()
                );
                return None;
            }
            let started = std::time::Instant::now();
            let model = LocalModel::load(&path).expect("the model file loads");
            eprintln!("model loaded in {:?}", started.elapsed());
            Some(Arc::new(model))
        })
        .clone()
}

#[test]
fn tokenizer_round_trips_real_text() {
    let Some(model) = model() else { return };
    let tokenizer = model.tokenizer();
    assert_eq!(tokenizer.vocab_size(), 49152);

    let ids = tokenizer.encode("Hello, world!");
    eprintln!("\"Hello, world!\" -> {ids:?}");
    // "Hello" "," " world" "!" are each one token in SmolLM2's vocabulary.
    assert_eq!(ids.len(), 4);
    assert_eq!(tokenizer.decode(&ids), "Hello, world!");

    assert_eq!(tokenizer.encode("<|im_start|>"), vec![1]);
    assert_eq!(tokenizer.encode("<|im_end|>"), vec![2]);
    for text in [
        "Ünïcödé 漢字 🙂 tabs\tand\n\nnewlines  ",
        "it's 1234.5 km",
        "  x",
    ] {
        assert_eq!(tokenizer.decode(&tokenizer.encode(text)), text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_question_with_usage() {
    let Some(model) = model() else { return };
    let provider = LocalProvider::new("local".into(), model, 64);
    let request = ChatRequest {
        messages: vec![ChatMessage::text("user", "What is the capital of France?")],
        ..ChatRequest::default()
    };
    let mut stream = provider.chat_stream(request).await.unwrap();
    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            StreamChunk::Text(delta) => text.push_str(&delta),
            StreamChunk::Usage(reported) => usage = Some(reported),
            StreamChunk::Reasoning(_) => panic!("the local model has no reasoning"),
        }
    }
    eprintln!("answer: {text:?}\nusage: {usage:?}");
    assert!(!text.trim().is_empty());
    let usage = usage.expect("usage is reported last");
    assert!(usage.input_other > 0 && usage.output > 0);
    assert_eq!(usage.input_cached, 0);
    assert!(usage.output <= 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_frees_the_model() {
    let Some(model) = model() else { return };
    let provider = LocalProvider::new("local".into(), model, 512);
    let request = |question: &str, max_tokens| ChatRequest {
        messages: vec![ChatMessage::text("user", question)],
        max_tokens,
        ..ChatRequest::default()
    };
    let mut long = provider
        .chat_stream(request("Write a long essay about the sea.", None))
        .await
        .unwrap();
    long.next().await.expect("a first chunk").unwrap();
    drop(long);
    // Would wait for all 512 tokens if the dropped stream kept generating.
    let started = std::time::Instant::now();
    let answer = provider.chat(request("Say hi.", Some(8))).await.unwrap();
    eprintln!("after drop: {:?} in {:?}", answer.text, started.elapsed());
    assert!(answer.usage.output > 0 && answer.usage.output <= 8);
}
