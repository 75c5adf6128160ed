//! `hold`: opens many chat streams at once against a server whose provider
//! is slow, holds them to `end` (checking each text) and samples the
//! server's RSS meanwhile. Over HTTP/1.1 every stream is a client socket
//! (and an upstream socket in the server); with `--http2` the streams are
//! spread over a few h2c connections, so that 10,000 streams fit in this
//! machine's open-file limit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::report::{print_summary, RunClock, Tally};
use crate::streams::{gateway_stream, ChatRequest};
use crate::{join_all, message_for, Common, Expect};

#[derive(Debug, Args)]
pub struct HoldArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Sample this process's VmRSS every 100 ms while streams are open.
    #[arg(long)]
    rss_pid: Option<u32>,
    #[command(flatten)]
    expect: Expect,
    /// Sent as `selected_provider`; default: the server's default provider.
    #[arg(long)]
    provider: Option<String>,
    /// HTTP/2 with prior knowledge (h2c): the streams are spread round-robin
    /// over --connections connections instead of one socket each.
    #[arg(long)]
    http2: bool,
    /// HTTP/2 connections (one client each) with --http2.
    #[arg(long, default_value_t = 100)]
    connections: usize,
}

/// Counts the streams currently open and the most seen at once.
#[derive(Default)]
pub struct OpenStreams {
    now: AtomicUsize,
    max: AtomicUsize,
}

pub struct OpenGuard<'a>(&'a OpenStreams);

impl OpenStreams {
    pub fn enter(&self) -> OpenGuard<'_> {
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

/// The clients the streams go through. reqwest keeps one HTTP/2 connection
/// per client and host, so one client per wanted connection; HTTP/1.1 uses
/// one pooled client, which opens a socket per concurrent stream.
fn clients(args: &HoldArgs) -> Vec<reqwest::Client> {
    let timeout = Duration::from_secs(args.common.timeout_secs);
    let build = |http2: bool| {
        let builder = reqwest::Client::builder().timeout(timeout);
        let builder = if http2 {
            builder.http2_prior_knowledge()
        } else {
            builder
        };
        builder.build().expect("the HTTP client builds")
    };
    if args.http2 {
        (0..args.connections.max(1)).map(|_| build(true)).collect()
    } else {
        vec![build(false)]
    }
}

pub async fn run_hold(args: &HoldArgs) -> bool {
    let streams = args.streams;
    let rss_pid = args.rss_pid;
    let clients = clients(args);
    let open = Arc::new(OpenStreams::default());
    let rss_before = rss_pid.and_then(rss_kib);
    let clock = RunClock::start();

    // The sampler stops when every stream task is done (the flag below).
    let done = Arc::new(AtomicBool::new(false));
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
        let http = clients[index % clients.len()].clone();
        let base = args.common.base();
        let key = args.common.key.clone();
        let provider = args.provider.clone();
        let open = open.clone();
        let message = message_for(index, 0);
        let expected = args.expect.for_message(&message);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let username = format!("hold-{index}");
            let request = ChatRequest {
                base: &base,
                key: &key,
                username: &username,
                message: &message,
                session: None,
                provider: provider.as_deref(),
            };
            match gateway_stream(&http, &request, Some(&*open)).await {
                Ok(result) if result.text == expected => tally.ok(result.sample),
                Ok(result) => tally.error(format!("wrong text: got {:?}", result.text)),
                Err(error) => tally.error(error),
            }
            tally
        }));
    }
    let tally = join_all(tasks).await;
    let measured = clock.stop();
    done.store(true, Ordering::SeqCst);
    let (peak, all_open) = sampler.await.unwrap_or((None, None));
    let rss_after = rss_pid.and_then(rss_kib);
    print_summary(
        "hold",
        streams,
        &measured,
        &tally,
        json!({
            "max_open": open.max.load(Ordering::SeqCst),
            "http2": args.http2,
            "connections": if args.http2 { clients.len() } else { streams },
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
