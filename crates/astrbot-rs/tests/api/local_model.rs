//! The offline demo model answers through the real chat endpoint. Needs the
//! model file that `scripts/fetch-model.sh` downloads (CI fetches it first);
//! without it the test says so and passes nothing off as run.

use std::path::PathBuf;

use fake_openai::Behaviour;
use serde_json::json;

use crate::helpers::*;

fn model_path() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    path.is_file().then(|| path.canonicalize().unwrap())
}

#[tokio::test]
async fn the_demo_model_answers_a_short_question() {
    let Some(model) = model_path() else {
        eprintln!("SKIPPED: models/SmolLM2-135M-Instruct.Q4_1.gguf is missing; run scripts/fetch-model.sh");
        return;
    };
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["provider_sources"] = json!([]);
        config["provider"] = json!([{
            "id": "demo", "type": "local", "provider_type": "chat_completion",
            "model_path": model.display().to_string(), "enable": true
        }]);
        config["provider_settings"]["default_provider_id"] = json!("demo");
    })
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "What is the capital of France?", "username": "u"}),
        )
        .await;

    let types = stream.types();
    assert_eq!(types.first().unwrap(), "session_id");
    assert_eq!(types.last().unwrap(), "end");
    let text = stream.text();
    assert!(!text.trim().is_empty(), "{types:?}");
    assert!(!text.contains("LLM 响应错误"), "{text}");
    let stats = &stream.first_of("agent_stats").unwrap()["data"]["token_usage"];
    assert!(stats["output"].as_u64().unwrap() > 0);
    assert!(
        app.fake.requests().is_empty(),
        "the demo model ran in-process"
    );
}

#[tokio::test]
async fn with_no_provider_configured_the_demo_model_in_the_root_answers() {
    let Some(model) = model_path() else {
        eprintln!("SKIPPED: models/SmolLM2-135M-Instruct.Q4_1.gguf is missing; run scripts/fetch-model.sh");
        return;
    };
    let fake = fake_openai::FakeOpenAi::start(Behaviour::default()).await;
    let root = temp_root();
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::os::unix::fs::symlink(&model, root.join("models").join(model.file_name().unwrap()))
        .unwrap();
    let app = start_server(root, fake).await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "Say hello.", "username": "u", "enable_streaming": false}),
        )
        .await;

    assert_eq!(
        stream.types(),
        ["session_id", "plain", "message_saved", "agent_stats", "end"]
    );
    assert!(!stream.text().trim().is_empty());
    assert!(!stream.text().contains("LLM 响应错误"), "{}", stream.text());
}
