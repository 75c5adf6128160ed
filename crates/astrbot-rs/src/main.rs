//! The `astrbot-rs` command: `serve` (the default) runs the server;
//! `apikey` manages developer API keys directly in the data root.

mod apikey;
mod cli;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use astrbot_server::{ConnectionLimits, DataRoot, Server, ServerOptions};
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
        .with_ansi(std::io::stderr().is_terminal())
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

/// Refuses a data root that does not exist, so that a mistyped `--root`
/// does not quietly start a new, empty one.
fn require_root(root: &DataRoot) -> anyhow::Result<()> {
    if !root.root().is_dir() {
        anyhow::bail!(
            "the data root {} does not exist: check --root (or ASTRBOT_ROOT), or create the folder first",
            root.root().display()
        );
    }
    Ok(())
}

async fn serve(root: DataRoot, args: ServeArgs) -> anyhow::Result<()> {
    require_root(&root)?;
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
    let server = Server::bind(ServerOptions {
        root,
        host,
        port,
        limits: ConnectionLimits::default(),
    })
    .await?;

    // Open streams end when their turn is answered. Turns still answering
    // near the end of a short grace period are interrupted, so that they
    // are saved with the answer so far, and then the process exits even if
    // something still hangs.
    let interrupting = server.state().chat.clone();
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    };
    let grace = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE - SAVE_TIME).await;
        tracing::warn!(
            "chats still answering after {:?}: stopping them and saving what they have",
            SHUTDOWN_GRACE - SAVE_TIME
        );
        interrupting.interrupt_runs();
        tokio::time::sleep(SAVE_TIME).await;
        tracing::warn!(
            "connections still open after {SHUTDOWN_GRACE:?} (streams still answering, or \
             clients still sending a request); exiting"
        );
    };
    tokio::select! {
        result = server.run(signal) => result,
        () = grace => Ok(()),
    }
}

/// How long open requests and running turns may go on after a shutdown
/// signal, and the part of it left for interrupted turns to be saved.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
const SAVE_TIME: std::time::Duration = std::time::Duration::from_secs(2);

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
