//! Domain types shared by every astrbot-rs crate: the unified message origin,
//! the storage trait and its records, the chat-provider trait and its
//! OpenAI-shaped messages, AstrBot's timestamp format, a cheap limit on
//! silence shared by the network code, and a quick scan of JSON string text.

pub mod errors;
pub mod idle;
pub mod json_text;
pub mod persona;
pub mod private_file;
pub mod provider;
pub mod store;
pub mod time;
pub mod umo;

pub use errors::with_causes;
pub use idle::IdleTimer;
pub use provider::{
    ChatMessage, ChatProvider, ChatRequest, ChatResponse, ChatStream, ContentPart, Delta,
    MessageContent, ProviderError, StreamChunk, TokenUsage,
};
pub use store::{ChangeStamp, Store, StoreError, StoreResult};
pub use umo::{MessageType, Umo, UmoError, WEBCHAT_PLATFORM_ID};
