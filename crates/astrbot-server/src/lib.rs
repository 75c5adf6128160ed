//! The astrbot-rs server: AstrBot's developer HTTP API (`/api/v1/*`), the
//! admin endpoints it needs (login, API keys, config files) and the chat
//! pipeline behind them, on one axum router.

pub mod auth;
pub mod chat;
pub mod config;
pub mod json;
pub mod paths;
pub mod platforms;
pub mod routes;
pub mod server;
pub mod state;

pub use astrbot_http::ConnectionLimits;
pub use paths::DataRoot;
pub use server::{Server, ServerOptions};
