//! Measures load time and generation speed on the real model:
//! `cargo run -p astrbot-local-model --example bench [MODEL_PATH]`.

use std::path::PathBuf;
use std::time::Instant;

use astrbot_core::ChatMessage;
use astrbot_local_model::{render_chat, LocalModel, MODEL_FILE_NAME};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models")
                .join(MODEL_FILE_NAME)
        });
    let started = Instant::now();
    let model = LocalModel::load(&path)?;
    println!("load: {:.2?}", started.elapsed());

    let messages = [ChatMessage::text(
        "user",
        "Tell me a story about a robot who learns to paint.",
    )];
    let prompt = render_chat(model.tokenizer(), &messages, 2048);
    let mut first_token = None;
    let mut text = Vec::new();
    let started = Instant::now();
    let stats = model.generate(&prompt, 100, |bytes| {
        first_token.get_or_insert_with(|| started.elapsed());
        text.extend_from_slice(bytes);
        true
    })?;
    let total = started.elapsed();
    let first_token = first_token.unwrap_or(total);
    let decode_secs = (total - first_token).as_secs_f64();
    println!("{}", String::from_utf8_lossy(&text));
    println!(
        "prompt {} tokens, first token after {first_token:.2?}; generated {} tokens in {total:.2?}",
        stats.prompt_tokens, stats.generated_tokens
    );
    println!(
        "decode speed: {:.1} tokens/s (overall {:.1} tokens/s)",
        (stats.generated_tokens.saturating_sub(1)) as f64 / decode_secs,
        stats.generated_tokens as f64 / total.as_secs_f64()
    );
    Ok(())
}
