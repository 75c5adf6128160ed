//! An offline demo chat model for astrbot-rs: SmolLM2-135M-Instruct (GGUF)
//! run in-process on the CPU with candle, exposed as a `ChatProvider`.
//!
//! Load the model once with [`LocalModel::load`], share it in an `Arc`, and
//! wrap it in a [`LocalProvider`]. `scripts/fetch-model.sh` downloads the file.

mod engine;
mod prompt;
mod provider;
mod tokenizer;

pub use engine::{GenerationStats, LocalModel, MAX_SEQUENCE};
pub use prompt::render_chat;
pub use provider::{
    LocalProvider, DEFAULT_CONTEXT_BUDGET, DEFAULT_MAX_NEW_TOKENS, DEFAULT_MODEL_NAME,
};
pub use tokenizer::{pre_tokenize, Tokenizer};

/// The model file's name under the repository's `models/` directory.
pub const MODEL_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
