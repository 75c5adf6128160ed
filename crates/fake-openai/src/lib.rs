//! A local fake of an OpenAI-compatible chat-completions server, speaking
//! the real wire protocol (JSON answers and SSE streams), for astrbot-rs's
//! black-box tests and benchmarks.
//!
//! ```no_run
//! # async fn demo() {
//! use fake_openai::{Behaviour, FakeOpenAi};
//! let fake = FakeOpenAi::start(Behaviour::default()).await;
//! let api_base = fake.base_url(); // http://127.0.0.1:<port>/v1
//! # let _ = api_base;
//! # }
//! ```

mod answer;
mod behaviour;
mod handlers;
mod server;
mod wire;

pub use behaviour::Behaviour;
pub use server::{FakeOpenAi, RecordedRequest};
