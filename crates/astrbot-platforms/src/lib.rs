//! Chat-platform adapters for astrbot-rs and the manager that runs them.
//!
//! The adapter API is platform-neutral: an adapter turns its platform's
//! wire format into [`InboundMessage`]s on a channel and sends
//! [`OutboundChain`]s to a [`SessionTarget`]. The [`PlatformManager`]
//! builds adapters from AstrBot's `platform` config entries through a
//! [`PlatformRegistry`], keeps each one running (restarting failures with
//! backoff) and looks them up for proactive sends.
//!
//! Adding a platform: one module implementing [`PlatformAdapter`] plus one
//! `register` line in [`PlatformRegistry::builtin`].

mod adapter;
mod config;
pub mod discord;
mod download;
mod in_order;
mod manager;
mod message;
pub mod onebot;
mod refusal_log;
mod registry;
mod seen;
pub mod slack;
pub mod telegram;

pub use adapter::{wait_for_shutdown, PlatformAdapter, PlatformError, PlatformStatus, StatusCell};
pub use config::{sanitize_platform_id, PlatformConfig};
pub use in_order::{InOrder, Place};
pub use manager::{Backoff, BotStatus, PlatformManager};
pub use message::{
    InboundMessage, Media, MessagePart, OutboundChain, OutboundPart, Sender, SessionTarget,
};
pub use registry::{AdapterFactory, PlatformRegistry};
