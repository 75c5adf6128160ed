//! `fake-openai`: runs the fake OpenAI-compatible server on 127.0.0.1 until
//! SIGINT/SIGTERM, for manual testing and benchmarks. Prints its API base.

use std::time::Duration;

use clap::Parser;
use fake_openai::{Behaviour, FakeOpenAi};

/// A fake OpenAI-compatible chat-completions server (127.0.0.1 only).
#[derive(Debug, Parser)]
#[command(name = "fake-openai", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Milliseconds before the first token.
    #[arg(long, default_value_t = 0)]
    first_token_ms: u64,
    /// Milliseconds between tokens.
    #[arg(long, default_value_t = 0)]
    token_ms: u64,
    /// Number of tokens (content deltas) per answer; default one per word.
    #[arg(long)]
    tokens: Option<usize>,
    /// Fixed answer text; default "Echo: <last user message>".
    #[arg(long)]
    text: Option<String>,
    /// Reasoning text streamed before the answer.
    #[arg(long)]
    reasoning: Option<String>,
    /// Answer every chat request with this HTTP status (e.g. 500).
    #[arg(long)]
    fail_status: Option<u16>,
    /// A key answered with 401 (repeatable).
    #[arg(long = "reject-key")]
    reject_keys: Vec<String>,
    /// Pad every streamed chunk with a random `obfuscation` field, as
    /// OpenAI does.
    #[arg(long)]
    obfuscation: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let behaviour = Behaviour {
        text: args.text,
        chunks: args.tokens,
        first_token_delay: Duration::from_millis(args.first_token_ms),
        token_delay: Duration::from_millis(args.token_ms),
        reasoning: args.reasoning,
        fail_status: args.fail_status,
        reject_keys: args.reject_keys,
        obfuscation: args.obfuscation,
        ..Behaviour::default()
    };
    let server = FakeOpenAi::start_on(args.port, behaviour).await?;
    // Registered before the URL is printed, so that a script which stops
    // the server as soon as it has read the URL cannot race the handler.
    let stop = stop_signal()?;
    println!("{}", server.base_url());
    stop.await;
    server.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere).
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
