//! Black-box tests of astrbot-rs: each test starts the real server on
//! 127.0.0.1 port 0 with its own temporary data root and a local fake
//! OpenAI-compatible provider, and talks to it over real HTTP.

mod helpers;

mod admin_chat;
mod admin_configs;
mod api_keys;
mod auth;
mod chat;
mod cli;
mod connections;
mod dashboard_api;
mod discord;
mod files;
mod im;
mod local_model;
mod platforms;
mod sessions;
mod slack;
mod telegram;
