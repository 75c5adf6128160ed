//! The `astrbot-rs` command: `serve` (the default) runs the server;
//! `apikey` manages developer API keys directly in the data root.

mod apikey;
mod cli;

use std::path::PathBuf;

use anyhow::Context;
use astrbot_server::{DataRoot, Server, ServerOptions};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, ServeArgs};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();

    let root = DataRoot::new(match cli.root {
        Some(root) => root,
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    });
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
            Command::Serve(args) => serve(root, args).await,
            Command::Apikey(command) => apikey::run(root, command).await,
        }
    })
}

async fn serve(root: DataRoot, args: ServeArgs) -> anyhow::Result<()> {
    let host = args
        .host
        .or_else(|| env_first(&["ASTRBOT_DASHBOARD_HOST", "DASHBOARD_HOST"]));
    let port =
        match args.port {
            Some(port) => Some(port),
            None => match env_first(&["ASTRBOT_DASHBOARD_PORT", "DASHBOARD_PORT"]) {
                Some(port) => Some(port.trim().parse().with_context(|| {
                    format!("the dashboard port {port:?} is not a port number")
                })?),
                None => None,
            },
        };
    let server = Server::bind(ServerOptions { root, host, port }).await?;
    server.run(shutdown_signal()).await
}

/// The first of these environment variables that is set and not empty.
fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
