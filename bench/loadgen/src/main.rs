//! `loadgen`: the load generator behind `bench/run.sh`, `bench/compare.sh`
//! and `bench/smoke.sh`.
//!
//! Modes (each prints a short summary on stderr and one JSON line on stdout,
//! which always carries the load generator's own CPU seconds, `cpu_s`):
//! * `json`: GET a JSON endpoint in a loop for a fixed time; 200 and
//!   `"status": "ok"` count as success.
//! * `chat`: N clients, each opening its own session and sending M streamed
//!   messages to `POST /api/v1/chat`, reading every SSE event to `end` and
//!   checking the concatenated `plain` text.
//! * `upstream`: the same workload straight against an OpenAI-compatible
//!   `/v1/chat/completions` stream (the fake provider alone), as a baseline.
//! * `hold`: N chat streams opened at once and held until they end, while
//!   sampling the server's RSS; over HTTP/1.1 or spread over a few HTTP/2
//!   (h2c) connections.
//! * `upload`: N clients each uploading M generated files to
//!   `POST /api/v1/file` (multipart).
//! * `wait`: polls a JSON endpoint until it answers; reports the time since
//!   a given start instant (cold start).
//! * `ceiling`: serves `GET /api/v1/im/bots` with the same JSON body as
//!   astrbot-rs but no auth, a minimal axum route: the reference ceiling for
//!   the JSON workload in `bench/compare.sh`. With `--provider`, it also
//!   relays `POST /api/v1/chat` to that provider with nothing else done
//!   (no key, session or storage): the reference for the added latency.
//! * `free-port`: prints a free port on 127.0.0.1 for the scripts.
//!
//! Every loop is bounded (duration, message count, stream count) and every
//! request has a timeout.

mod ceiling;
mod cpu;
mod hold;
mod json;
mod relay;
mod report;
mod streams;
mod upload;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use report::Tally;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for the astrbot-rs benchmark"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// GET a JSON endpoint in a loop for --duration-secs.
    Json {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        duration_secs: u64,
    },
    /// Streamed chats through `POST {url}/api/v1/chat`.
    Chat {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        workload: Workload,
        /// Sent as `selected_provider` (a provider id from the config);
        /// default: the server's default provider.
        #[arg(long)]
        provider: Option<String>,
    },
    /// The same chats straight against `POST {url}/chat/completions`
    /// (url = the provider's base, e.g. http://127.0.0.1:9000/v1).
    Upstream {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        workload: Workload,
    },
    /// Opens --streams chat streams at once and holds them until they end.
    Hold(hold::HoldArgs),
    /// Uploads generated files to `POST {url}/api/v1/file` (field `file`).
    Upload(upload::UploadArgs),
    /// Polls GET --url until it answers 200 / "ok"; reports milliseconds
    /// since --since-epoch (seconds since the Unix epoch, fractional).
    Wait {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        since_epoch: Option<f64>,
    },
    /// Serves `GET /api/v1/im/bots` (no auth) on 127.0.0.1 until killed.
    Ceiling {
        #[arg(long)]
        port: u16,
        /// Also relay `POST /api/v1/chat` to this OpenAI-compatible base
        /// URL (e.g. http://127.0.0.1:9000/v1).
        #[arg(long)]
        provider: Option<String>,
    },
    /// Prints a currently free TCP port on 127.0.0.1.
    FreePort,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Full URL (json, wait) or base URL (chat, hold, upstream, upload).
    #[arg(long)]
    pub url: String,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(long, default_value = "sk-bench")]
    pub key: String,
    /// Timeout for each request, from connecting to reading the whole body.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

impl Common {
    /// The base URL without a trailing slash.
    pub fn base(&self) -> String {
        self.url.trim_end_matches('/').to_owned()
    }
}

#[derive(Debug, Args)]
pub struct Workload {
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Messages each client sends (one stream each).
    #[arg(long, default_value_t = 10)]
    pub messages: usize,
    /// Messages per session: after this many a client opens a new session,
    /// so long runs keep conversations as short as short runs have them.
    /// 0 keeps one session for all of a client's messages.
    #[arg(long, default_value_t = 0)]
    pub session_messages: usize,
    /// Paced instead of back to back: all clients together start this many
    /// streams per second, each at its own slot of a fixed schedule (a
    /// client that falls behind sends at once). 0 sends back to back.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    #[command(flatten)]
    pub expect: Expect,
}

impl Workload {
    pub fn pacing(&self) -> Pacing {
        Pacing {
            rate: self.rate,
            clients: self.concurrency.max(1),
        }
    }
}

/// The fixed schedule of a paced run (see [`Workload::rate`]).
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    rate: f64,
    clients: usize,
}

impl Pacing {
    /// When client `client` sends its message `n`, counted from the start
    /// of the run; `None` when the run is not paced.
    pub fn slot(&self, client: usize, n: usize) -> Option<Duration> {
        if self.rate <= 0.0 {
            return None;
        }
        let index = n * self.clients + client;
        Some(Duration::from_secs_f64(index as f64 / self.rate))
    }
}

/// What a stream's text must be.
#[derive(Debug, Clone, Args)]
pub struct Expect {
    /// Expected answer; default "<expect-prefix><message>".
    #[arg(long)]
    pub expect_text: Option<String>,
    #[arg(long, default_value = "Echo: ")]
    pub expect_prefix: String,
}

impl Expect {
    pub fn for_message(&self, message: &str) -> String {
        self.expect_text
            .clone()
            .unwrap_or_else(|| format!("{}{message}", self.expect_prefix))
    }
}

/// A message long enough (over 100 characters) that a fake provider asked
/// for up to 100 tokens splits it without repeating it.
pub fn message_for(client: usize, n: usize) -> String {
    format!(
        "bench client {client} message {n}: the quick brown fox jumps over the lazy dog, \
         then over the sleepy cat, then home."
    )
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let failed = match cli.mode {
        Mode::Json {
            common,
            concurrency,
            duration_secs,
        } => json::run_json(&common, concurrency, Duration::from_secs(duration_secs)).await,
        Mode::Chat {
            common,
            workload,
            provider,
        } => {
            let target = streams::Target::Gateway { provider };
            streams::run_streams(&common, &workload, target).await
        }
        Mode::Upstream { common, workload } => {
            streams::run_streams(&common, &workload, streams::Target::Upstream).await
        }
        Mode::Hold(args) => hold::run_hold(&args).await,
        Mode::Upload(args) => upload::run_upload(&args).await,
        Mode::Wait {
            common,
            since_epoch,
        } => json::run_wait(&common, since_epoch).await,
        Mode::Ceiling { port, provider } => ceiling::run_ceiling(port, provider.as_deref()).await,
        Mode::FreePort => match std::net::TcpListener::bind(("127.0.0.1", 0)) {
            Ok(listener) => {
                println!("{}", listener.local_addr().map(|a| a.port()).unwrap_or(0));
                false
            }
            Err(error) => {
                eprintln!("cannot bind 127.0.0.1:0: {error}");
                true
            }
        },
    };
    if failed {
        std::process::exit(1);
    }
}

/// An HTTP/1.1 client whose connections are pooled and shared by all tasks.
/// `timeout` bounds each request from connecting to the end of its body,
/// so a slow connect under a connection storm is not an error by itself.
pub fn client(common: &Common) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(common.timeout_secs))
        .build()
        .expect("the HTTP client builds")
}

/// Waits for every client task and merges their tallies; a task that
/// panicked counts as one error.
pub async fn join_all(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok(part) => tally.merge(part),
            Err(error) => tally.error(format!("client task failed: {error}")),
        }
    }
    tally
}
