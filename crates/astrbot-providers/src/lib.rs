//! Chat providers of astrbot-rs. For now one: an OpenAI-compatible
//! chat-completions client (OpenAI, DeepSeek, Ollama, vLLM, OpenRouter …),
//! implementing `astrbot_core::ChatProvider`.

pub mod openai;

pub use openai::{OpenAiCompatible, OpenAiConfig};
