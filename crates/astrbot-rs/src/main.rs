//! The `astrbot-rs` command: `serve` (the default) runs the server;
//! `apikey` manages developer API keys directly in the data root.

mod apikey;
mod cli;
mod hangup;
mod log_output;
mod shutdown;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use astrbot_server::{ConnectionLimits, DataRoot, Server, ServerOptions};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, ServeArgs};
use shutdown::Asked;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The server's log goes through a writer thread, so that a stderr
    // nobody reads cannot stop it; the short commands write theirs in place.
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    let (log_output, _flush_log_at_exit) = if serving {
        let (output, flush) = log_output::queued().context("cannot start the log writer")?;
        (output, Some(flush))
    } else {
        (log_output::direct(), None)
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(log_output)
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
    let hangups = hangup::Hangups::listen()?;
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
    // near the end of a short grace period (or at a second signal) are
    // interrupted, so that they are saved with the answer so far, and then
    // the process exits even if something still hangs.
    let interrupting = server.state().chat.clone();
    let asked = shutdown::watch_signals()?;
    hangups.reload_config(server.state().clone(), asked.clone());
    let mut stop_asked = asked.clone();
    let signal = async move {
        let _ = stop_asked.wait_for(|asked| *asked >= Asked::Stop).await;
    };
    let grace = async move {
        let mut asked = asked;
        let _ = asked.wait_for(|asked| *asked >= Asked::Stop).await;
        tokio::select! {
            () = tokio::time::sleep(SHUTDOWN_GRACE - SAVE_TIME) => tracing::warn!(
                "chats still answering after {:?}: stopping them and saving what they have",
                SHUTDOWN_GRACE - SAVE_TIME
            ),
            _ = asked.wait_for(|asked| *asked == Asked::Hurry) => {}
        }
        interrupting.interrupt_runs();
        tokio::time::sleep(SAVE_TIME).await;
        tracing::warn!(
            "connections still open {SAVE_TIME:?} after stopping the chats (streams still \
             answering, or clients still sending a request); exiting"
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
