//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A fast, single-binary server compatible with AstrBot's developer API.
#[derive(Debug, Parser)]
#[command(name = "astrbot-rs", version)]
pub struct Cli {
    /// The data root (holds data/cmd_config.json, the database and uploads).
    /// Defaults to the current directory.
    #[arg(long, global = true, env = "ASTRBOT_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Create, list, revoke or delete developer API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on; overrides dashboard.host and the
    /// DASHBOARD_HOST / ASTRBOT_DASHBOARD_HOST variables.
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on; overrides dashboard.port and the
    /// DASHBOARD_PORT / ASTRBOT_DASHBOARD_PORT variables.
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key and print it (it is shown this once only).
    Create {
        /// A name to recognise the key by.
        #[arg(long, default_value = "Untitled API Key")]
        name: String,
        /// Comma-separated scopes: chat, config, file, im.
        #[arg(long, value_delimiter = ',', default_value = "chat,config,file,im")]
        scopes: Vec<String>,
        /// Days until the key expires; omit for a permanent key.
        #[arg(long, value_parser = whole_days)]
        expires_in_days: Option<u64>,
    },
    /// List all keys (never their secrets).
    List,
    /// Revoke a key by id; it stops working on the next request.
    Revoke { key_id: String },
    /// Delete a key by id.
    Delete { key_id: String },
}

/// A count of days: digits, any number of them. One too large for any
/// expiry is kept as the largest count, so that the key command answers
/// with the real limit instead of the parser's "too large".
fn whole_days(text: &str) -> Result<u64, String> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number of days"));
    }
    Ok(digits.parse().unwrap_or(u64::MAX))
}
