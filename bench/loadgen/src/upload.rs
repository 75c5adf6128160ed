//! `upload`: N clients each sending M files of `--size-mb` MB (10^6 bytes)
//! to `POST /api/v1/file` as multipart field `file`. Success is HTTP 200,
//! `"status": "ok"` and a non-empty `data.attachment_id`.

use std::time::Instant;

use bytes::Bytes;
use clap::Args;
use serde_json::json;

use crate::json::ok_envelope;
use crate::report::{print_summary, round3, RunClock, Tally};
use crate::{client, join_all, Common};

#[derive(Debug, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Uploads each client sends, one after another.
    #[arg(long, default_value_t = 3)]
    uploads: usize,
    /// File size in MB (10^6 bytes); fractions allowed for smoke runs.
    #[arg(long, default_value_t = 10.0)]
    size_mb: f64,
}

/// The file content: a repeating byte pattern rather than zeros, so that
/// nothing on the way can shortcut it (it is generated once and shared by
/// every upload without copying).
fn file_content(size: usize) -> Bytes {
    (0..size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

pub async fn run_upload(args: &UploadArgs) -> bool {
    let size = (args.size_mb * 1_000_000.0).round().max(1.0) as usize;
    let content = file_content(size);
    let http = client(&args.common);
    let url = format!("{}/api/v1/file", args.common.base());
    let clock = RunClock::start();
    let mut tasks = Vec::new();
    for client_index in 0..args.concurrency.max(1) {
        let http = http.clone();
        let url = url.clone();
        let key = args.common.key.clone();
        let content = content.clone();
        let uploads = args.uploads;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            for n in 0..uploads {
                // A distinct name per upload: AstrBot stores the file under
                // the name it was given, so equal names would overwrite.
                let name = format!("bench-{client_index}-{n}.bin");
                let begun = Instant::now();
                let outcome = upload_once(&http, &url, &key, &name, content.clone()).await;
                tally.timed(begun, outcome);
            }
            tally
        }));
    }
    let tally = join_all(tasks).await;
    let measured = clock.stop();
    let megabytes = tally.samples.len() as f64 * size as f64 / 1_000_000.0;
    let mb_per_sec = megabytes / measured.elapsed.as_secs_f64().max(1e-9);
    print_summary(
        "upload",
        args.concurrency,
        &measured,
        &tally,
        json!({
            "uploads": args.uploads,
            "size_bytes": size,
            "mb_per_sec": round3(mb_per_sec),
        }),
    );
    eprintln!("  {mb_per_sec:.1} MB/s");
    tally.errors > 0
}

async fn upload_once(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    name: &str,
    content: Bytes,
) -> Result<(), String> {
    let length = content.len() as u64;
    let part = reqwest::multipart::Part::stream_with_length(content, length)
        .file_name(name.to_owned())
        .mime_str("application/octet-stream")
        .map_err(|e| format!("multipart: {e}"))?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let value = ok_envelope(http.post(url).bearer_auth(key).multipart(form)).await?;
    match value["data"]["attachment_id"].as_str() {
        Some(id) if !id.is_empty() => Ok(()),
        _ => Err(format!("no attachment_id: {value}")),
    }
}
