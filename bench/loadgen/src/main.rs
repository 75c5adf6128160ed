//! `loadgen`: the load generator behind `bench/run.sh` and `bench/smoke.sh`.
//!
//! Modes (each prints a short summary on stderr and one JSON line on stdout):
//! * `json`: GET a JSON endpoint in a loop for a fixed time; 200 and
//!   `"status": "ok"` count as success.
//! * `chat`: N clients, each opening its own session and sending M streamed
//!   messages to `POST /api/v1/chat`, reading every SSE event to `end` and
//!   checking the concatenated `plain` text.
//! * `upstream`: the same workload straight against an OpenAI-compatible
//!   `/v1/chat/completions` stream (the fake provider alone), as a baseline.
//! * `hold`: N chat streams opened at once and held until they end, while
//!   sampling the server's RSS.
//! * `wait`: polls a JSON endpoint until it answers; reports the time since
//!   a given start instant (cold start).
//! * `ceiling`: serves `GET /api/v1/im/bots` with the same JSON body as
//!   astrbot-rs but no auth, a minimal axum route: the reference ceiling for
//!   the JSON workload in `bench/compare.sh`.
//! * `free-port`: prints a free port on 127.0.0.1 for the scripts.
//!
//! Every loop is bounded (duration, message count, stream count) and every
//! request has a timeout.

mod report;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use report::{print_summary, round3, Sample, SseBuffer, Tally};

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
    Hold {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 100)]
        streams: usize,
        /// Sample this process's VmRSS every 100 ms while streams are open.
        #[arg(long)]
        rss_pid: Option<u32>,
        /// Expected answer; default "<expect-prefix><message>".
        #[arg(long)]
        expect_text: Option<String>,
        #[arg(long, default_value = "Echo: ")]
        expect_prefix: String,
    },
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
    },
    /// Prints a currently free TCP port on 127.0.0.1.
    FreePort,
}

#[derive(Debug, Args)]
struct Common {
    /// Full URL (json, wait) or base URL (chat, hold, upstream).
    #[arg(long)]
    url: String,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(long, default_value = "sk-bench")]
    key: String,
    /// Timeout for each request, including reading the whole body.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

#[derive(Debug, Args)]
struct Workload {
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Messages each client sends (one stream each).
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Expected answer; default "<expect-prefix><message>".
    #[arg(long)]
    expect_text: Option<String>,
    #[arg(long, default_value = "Echo: ")]
    expect_prefix: String,
}

impl Workload {
    fn expected(&self, message: &str) -> String {
        expected(&self.expect_text, &self.expect_prefix, message)
    }
}

fn expected(text: &Option<String>, prefix: &str, message: &str) -> String {
    text.clone().unwrap_or_else(|| format!("{prefix}{message}"))
}

/// A message long enough (over 100 characters) that a fake provider asked
/// for up to 100 tokens splits it without repeating it.
fn message_for(client: usize, n: usize) -> String {
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
        } => run_json(&common, concurrency, Duration::from_secs(duration_secs)).await,
        Mode::Chat { common, workload } => run_streams(&common, &workload, Target::Gateway).await,
        Mode::Upstream { common, workload } => {
            run_streams(&common, &workload, Target::Upstream).await
        }
        Mode::Hold {
            common,
            streams,
            rss_pid,
            expect_text,
            expect_prefix,
        } => run_hold(&common, streams, rss_pid, expect_text, expect_prefix).await,
        Mode::Wait {
            common,
            since_epoch,
        } => run_wait(&common, since_epoch).await,
        Mode::Ceiling { port } => run_ceiling(port).await,
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

fn client(common: &Common) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(common.timeout_secs))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("the HTTP client builds")
}

// ---- json -------------------------------------------------------------

async fn run_json(common: &Common, concurrency: usize, duration: Duration) -> bool {
    let http = client(common);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let http = http.clone();
        let url = common.url.clone();
        let key = common.key.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let begun = Instant::now();
                match json_once(&http, &url, &key).await {
                    Ok(()) => tally.ok(Sample {
                        total: begun.elapsed(),
                        ..Sample::default()
                    }),
                    Err(error) => tally.error(error),
                }
            }
            tally
        }));
    }
    let tally = join_all(tasks).await;
    print_summary("json", concurrency, started.elapsed(), &tally, json!({}));
    tally.errors > 0
}

async fn json_once(http: &reqwest::Client, url: &str, key: &str) -> Result<(), String> {
    let response = http
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}"));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    if value["status"] != "ok" {
        return Err(format!("status not ok: {value}"));
    }
    Ok(())
}

// ---- chat / upstream ----------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// astrbot-rs `POST /api/v1/chat` (AstrBot's SSE events).
    Gateway,
    /// OpenAI-compatible `POST /chat/completions` with `stream: true`.
    Upstream,
}

/// What one stream produced.
struct StreamResult {
    sample: Sample,
    text: String,
    session_id: Option<String>,
}

async fn run_streams(common: &Common, workload: &Workload, target: Target) -> bool {
    let http = client(common);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_index in 0..workload.concurrency.max(1) {
        let http = http.clone();
        let base = common.url.trim_end_matches('/').to_owned();
        let key = common.key.clone();
        let messages = workload.messages;
        let expected: Vec<String> = (0..messages)
            .map(|n| workload.expected(&message_for(client_index, n)))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut session: Option<String> = None;
            for (n, expected) in expected.iter().enumerate() {
                let message = message_for(client_index, n);
                let username = format!("bench-{client_index}");
                let result = match target {
                    Target::Gateway => {
                        gateway_stream(
                            &http,
                            &base,
                            &key,
                            &username,
                            &message,
                            session.as_deref(),
                            None,
                        )
                        .await
                    }
                    Target::Upstream => upstream_stream(&http, &base, &key, &message).await,
                };
                match result {
                    Ok(result) if result.text == *expected => {
                        if result.session_id.is_some() {
                            session = result.session_id;
                        }
                        tally.ok(result.sample);
                    }
                    Ok(result) => tally.error(format!(
                        "wrong text: got {:?}, expected {expected:?}",
                        result.text
                    )),
                    Err(error) => tally.error(error),
                }
            }
            tally
        }));
    }
    let tally = join_all(tasks).await;
    let mode = match target {
        Target::Gateway => "chat",
        Target::Upstream => "upstream",
    };
    print_summary(
        mode,
        workload.concurrency,
        started.elapsed(),
        &tally,
        json!({"messages": workload.messages}),
    );
    tally.errors > 0
}

/// One `POST /api/v1/chat` stream, read to `end`. `open` is bumped once
/// the first event arrived and dropped when the stream is over.
async fn gateway_stream(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    username: &str,
    message: &str,
    session: Option<&str>,
    open: Option<&OpenStreams>,
) -> Result<StreamResult, String> {
    let mut body = json!({"message": message, "username": username, "enable_streaming": true});
    if let Some(session) = session {
        body["session_id"] = json!(session);
    }
    let begun = Instant::now();
    let mut response = http
        .post(format!("{base}/api/v1/chat"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    let _guard = open.map(OpenStreams::enter);
    let mut sample = Sample::default();
    let mut text = String::new();
    let mut session_id = None;
    let mut buffer = SseBuffer::default();
    let mut events = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| format!("stream: {e}"))?
            .ok_or_else(|| "stream closed before `end`".to_owned())?;
        buffer.push(&chunk, &mut events);
        for data in events.drain(..) {
            let event: Value =
                serde_json::from_str(&data).map_err(|e| format!("event not JSON: {e}"))?;
            sample.first_event.get_or_insert_with(|| begun.elapsed());
            match event["type"].as_str() {
                Some("session_id") => {
                    session_id = event["session_id"].as_str().map(str::to_owned);
                }
                Some("plain") if event["chain_type"].is_null() => {
                    if let Some(delta) = event["data"].as_str().filter(|d| !d.is_empty()) {
                        sample.first_text.get_or_insert_with(|| begun.elapsed());
                        text.push_str(delta);
                    }
                }
                Some("end") => {
                    sample.total = begun.elapsed();
                    return Ok(StreamResult {
                        sample,
                        text,
                        session_id,
                    });
                }
                _ => {}
            }
        }
    }
}

/// One OpenAI-style streamed completion, read to `data: [DONE]`.
async fn upstream_stream(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    message: &str,
) -> Result<StreamResult, String> {
    let body = json!({
        "model": "fake-model",
        "stream": true,
        "messages": [{"role": "user", "content": message}],
    });
    let begun = Instant::now();
    let mut response = http
        .post(format!("{base}/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut sample = Sample::default();
    let mut text = String::new();
    let mut buffer = SseBuffer::default();
    let mut events = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| format!("stream: {e}"))?
            .ok_or_else(|| "stream closed before [DONE]".to_owned())?;
        buffer.push(&chunk, &mut events);
        for data in events.drain(..) {
            sample.first_event.get_or_insert_with(|| begun.elapsed());
            if data.trim() == "[DONE]" {
                sample.total = begun.elapsed();
                return Ok(StreamResult {
                    sample,
                    text,
                    session_id: None,
                });
            }
            let event: Value =
                serde_json::from_str(&data).map_err(|e| format!("chunk not JSON: {e}"))?;
            if let Some(delta) = event["choices"][0]["delta"]["content"]
                .as_str()
                .filter(|d| !d.is_empty())
            {
                sample.first_text.get_or_insert_with(|| begun.elapsed());
                text.push_str(delta);
            }
        }
    }
}

// ---- hold -----------------------------------------------------------------

/// Counts the streams currently open and the most seen at once.
#[derive(Default)]
struct OpenStreams {
    now: AtomicUsize,
    max: AtomicUsize,
}

struct OpenGuard<'a>(&'a OpenStreams);

impl OpenStreams {
    fn enter(&self) -> OpenGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        OpenGuard(self)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// VmRSS of a process in KiB, from /proc/PID/status.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

async fn run_hold(
    common: &Common,
    streams: usize,
    rss_pid: Option<u32>,
    expect_text: Option<String>,
    expect_prefix: String,
) -> bool {
    let http = client(common);
    let open = Arc::new(OpenStreams::default());
    let rss_before = rss_pid.and_then(rss_kib);
    let started = Instant::now();

    // The sampler stops when every stream task is done (the flag below).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let open = open.clone();
        let done = done.clone();
        tokio::spawn(async move {
            // Peak RSS overall, and peak RSS while every stream was open.
            let (mut peak, mut all_open) = (None::<u64>, None::<u64>);
            let Some(pid) = rss_pid else {
                return (peak, all_open);
            };
            while !done.load(Ordering::SeqCst) {
                if let Some(rss) = rss_kib(pid) {
                    peak = peak.max(Some(rss));
                    if open.now.load(Ordering::SeqCst) >= streams {
                        all_open = all_open.max(Some(rss));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (peak, all_open)
        })
    };

    let mut tasks = Vec::new();
    for index in 0..streams {
        let http = http.clone();
        let base = common.url.trim_end_matches('/').to_owned();
        let key = common.key.clone();
        let open = open.clone();
        let message = message_for(index, 0);
        let expected = expected(&expect_text, &expect_prefix, &message);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let username = format!("hold-{index}");
            match gateway_stream(&http, &base, &key, &username, &message, None, Some(&*open)).await
            {
                Ok(result) if result.text == expected => tally.ok(result.sample),
                Ok(result) => tally.error(format!("wrong text: got {:?}", result.text)),
                Err(error) => tally.error(error),
            }
            tally
        }));
    }
    let tally = join_all(tasks).await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (peak, all_open) = sampler.await.unwrap_or((None, None));
    let rss_after = rss_pid.and_then(rss_kib);
    print_summary(
        "hold",
        streams,
        elapsed,
        &tally,
        json!({
            "max_open": open.max.load(Ordering::SeqCst),
            "rss_before_kib": rss_before,
            "rss_peak_kib": peak,
            "rss_all_open_kib": all_open,
            "rss_after_kib": rss_after,
        }),
    );
    if let (Some(before), Some(peak)) = (rss_before, peak) {
        eprintln!(
            "  RSS {before} KiB before, {peak} KiB peak ({:.1} KiB per stream)",
            (peak.saturating_sub(before)) as f64 / streams.max(1) as f64
        );
    }
    tally.errors > 0
}

// ---- wait -------------------------------------------------------------------

async fn run_wait(common: &Common, since_epoch: Option<f64>) -> bool {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("the HTTP client builds");
    let deadline = Instant::now() + Duration::from_secs(common.timeout_secs);
    let mut attempts = 0u64;
    while Instant::now() < deadline {
        attempts += 1;
        if json_once(&http, &common.url, &common.key).await.is_ok() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            let ready_ms = since_epoch.map(|since| round3((now - since) * 1000.0));
            eprintln!("ready after {attempts} attempts ({ready_ms:?} ms since start)");
            println!(
                "{}",
                json!({"mode": "wait", "ready_ms": ready_ms, "attempts": attempts})
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("not ready after {} s", common.timeout_secs);
    println!(
        "{}",
        json!({"mode": "wait", "ready_ms": null, "attempts": attempts})
    );
    true
}

// ---- ceiling ------------------------------------------------------------------

/// The body astrbot-rs answers `GET /api/v1/im/bots` with when no bot runs.
const CEILING_BODY: &str = r#"{"status":"ok","message":null,"data":{"bot_ids":[]}}"#;

/// A minimal axum server with one JSON route and no auth; runs until killed.
/// Returns true (failure) only when it cannot bind or serve.
async fn run_ceiling(port: u16) -> bool {
    let app = axum::Router::new().route(
        "/api/v1/im/bots",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                CEILING_BODY,
            )
        }),
    );
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot bind 127.0.0.1:{port}: {error}");
            return true;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("http://{addr}"),
        Err(error) => eprintln!("no local address: {error}"),
    }
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("ceiling server failed: {error}");
        return true;
    }
    false
}

// ---- helpers --------------------------------------------------------------

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok(part) => tally.merge(part),
            Err(error) => tally.error(format!("client task failed: {error}")),
        }
    }
    tally
}
