//! `json` (a GET loop against a JSON endpoint for a fixed time) and `wait`
//! (poll that endpoint until it answers, for cold start).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::report::{failure, print_summary, round3, RunClock, Tally};
use crate::{client, join_all, Common};

pub async fn run_json(common: &Common, concurrency: usize, duration: Duration) -> bool {
    let http = client(common);
    let clock = RunClock::start();
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let http = http.clone();
        let url = common.url.clone();
        let key = common.key.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let begun = Instant::now();
                let outcome = json_once(&http, &url, &key).await;
                tally.timed(begun, outcome);
            }
            tally
        }));
    }
    let tally = join_all(tasks).await;
    print_summary("json", concurrency, &clock.stop(), &tally, json!({}));
    tally.errors > 0
}

/// One GET; success is HTTP 200 with a JSON body whose `status` is "ok".
pub async fn json_once(http: &reqwest::Client, url: &str, key: &str) -> Result<(), String> {
    ok_envelope(http.get(url).bearer_auth(key)).await.map(drop)
}

/// Sends `request`; success is HTTP 200 with a JSON envelope whose
/// `status` is "ok", which is returned.
pub async fn ok_envelope(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| failure("request", &e))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| failure("body", &e))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}"));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    if value["status"] != "ok" {
        return Err(format!("status not ok: {value}"));
    }
    Ok(value)
}

pub async fn run_wait(common: &Common, since_epoch: Option<f64>) -> bool {
    // Short per-attempt timeout: a server that is still starting may
    // accept and then stall, and the next attempt should come soon.
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
            match ready_ms {
                Some(ms) => eprintln!("ready after {attempts} attempts ({ms} ms since start)"),
                None => eprintln!("ready after {attempts} attempts"),
            }
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
