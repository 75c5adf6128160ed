//! Measurements and their summary: per-request samples, error counts,
//! percentiles over a sorted `Vec<Duration>`, the run's wall and CPU time,
//! and the one-line JSON result that the bench scripts read. Also the small
//! SSE framing helper.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// One finished request or stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Time to the first SSE event (none for plain JSON requests).
    pub first_event: Option<Duration>,
    /// Time to the first non-empty text delta.
    pub first_text: Option<Duration>,
    /// Time to the end of the response.
    pub total: Duration,
}

/// Everything one client (or the whole run, after merging) saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub samples: Vec<Sample>,
    pub errors: u64,
    /// The first few error descriptions, for the human summary.
    pub error_examples: Vec<String>,
}

impl Tally {
    pub fn ok(&mut self, sample: Sample) {
        self.samples.push(sample);
    }

    pub fn error(&mut self, what: impl Into<String>) {
        self.errors += 1;
        if self.error_examples.len() < 5 {
            self.error_examples.push(what.into());
        }
    }

    /// A request that has only a total latency: timed from `begun`.
    pub fn timed(&mut self, begun: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.ok(Sample {
                total: begun.elapsed(),
                ..Sample::default()
            }),
            Err(error) => self.error(error),
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        for example in other.error_examples {
            if self.error_examples.len() < 5 {
                self.error_examples.push(example);
            }
        }
    }
}

/// Wall clock and the load generator's own CPU time from the start of a run.
pub struct RunClock {
    started: Instant,
    cpu_before: Option<f64>,
}

/// What a [`RunClock`] measured when the run was over.
pub struct Measured {
    pub elapsed: Duration,
    /// CPU seconds (user + system) the load generator used during the run.
    pub cpu_s: Option<f64>,
}

impl RunClock {
    pub fn start() -> RunClock {
        RunClock {
            started: Instant::now(),
            cpu_before: crate::cpu::process_cpu_seconds(),
        }
    }

    pub fn stop(&self) -> Measured {
        let elapsed = self.started.elapsed();
        let cpu_s = match (self.cpu_before, crate::cpu::process_cpu_seconds()) {
            (Some(before), Some(after)) => Some((after - before).max(0.0)),
            _ => None,
        };
        Measured { elapsed, cpu_s }
    }
}

/// Nearest-rank percentile of a sorted slice, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some((sorted[index].as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0)
}

fn percentiles(name: &str, mut values: Vec<Duration>, out: &mut Map<String, Value>) {
    values.sort_unstable();
    for (label, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)] {
        out.insert(
            format!("{name}_{label}_ms"),
            json!(percentile_ms(&values, p)),
        );
    }
}

/// Prints the human summary and then the single JSON result line.
/// `extra` is merged into the JSON (mode-specific figures).
pub fn print_summary(
    mode: &str,
    concurrency: usize,
    measured: &Measured,
    tally: &Tally,
    extra: Value,
) {
    let elapsed = measured.elapsed;
    let count = tally.samples.len() as u64;
    let per_sec = count as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut out = Map::new();
    out.insert("mode".into(), json!(mode));
    out.insert("concurrency".into(), json!(concurrency));
    out.insert("ok".into(), json!(count));
    out.insert("errors".into(), json!(tally.errors));
    out.insert("elapsed_s".into(), json!(round3(elapsed.as_secs_f64())));
    out.insert("per_sec".into(), json!(round3(per_sec)));
    // The load generator's CPU: seconds, and percent of one core over the
    // run, so a reader can tell whether the client side was the bottleneck.
    let cpu_pct = measured
        .cpu_s
        .map(|cpu| round3(cpu / elapsed.as_secs_f64().max(1e-9) * 100.0));
    out.insert("cpu_s".into(), json!(measured.cpu_s.map(round3)));
    out.insert("cpu_pct".into(), json!(cpu_pct));
    let first_event: Vec<Duration> = tally.samples.iter().filter_map(|s| s.first_event).collect();
    let first_text: Vec<Duration> = tally.samples.iter().filter_map(|s| s.first_text).collect();
    let total: Vec<Duration> = tally.samples.iter().map(|s| s.total).collect();
    if !first_event.is_empty() {
        percentiles("first_event", first_event, &mut out);
    }
    if !first_text.is_empty() {
        percentiles("first_text", first_text, &mut out);
    }
    percentiles("total", total, &mut out);
    if let Value::Object(extra) = extra {
        out.extend(extra);
    }

    eprintln!(
        "{mode}: concurrency {concurrency}, {count} ok, {} errors in {:.2} s ({per_sec:.1}/s), \
         loadgen CPU {:.2} s",
        tally.errors,
        elapsed.as_secs_f64(),
        measured.cpu_s.unwrap_or_default()
    );
    for key in ["first_event", "first_text", "total"] {
        if let Some(p50) = out.get(&format!("{key}_p50_ms")).and_then(Value::as_f64) {
            let p90 = out[&format!("{key}_p90_ms")].as_f64().unwrap_or_default();
            let p99 = out[&format!("{key}_p99_ms")].as_f64().unwrap_or_default();
            eprintln!("  {key:<12} p50 {p50:>9.3} ms  p90 {p90:>9.3} ms  p99 {p99:>9.3} ms");
        }
    }
    for example in &tally.error_examples {
        eprintln!("  error: {example}");
    }
    println!("{}", Value::Object(out));
}

/// "WHAT: error: cause: cause ...": reqwest's own message ("error sending
/// request") hides why, which sits in the source chain.
pub fn failure(what: &str, error: &dyn std::error::Error) -> String {
    let mut text = format!("{what}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Accumulates response bytes and hands out the `data:` payloads of
/// complete SSE events (`data: ...\n\n`).
#[derive(Debug, Default)]
pub struct SseBuffer {
    pending: Vec<u8>,
}

impl SseBuffer {
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    out.push(data.strip_prefix(' ').unwrap_or(data).to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&values, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&values, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }

    #[test]
    fn failures_carry_their_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            failure("request", &error),
            "request: error sending request: connection refused"
        );
    }

    #[test]
    fn sse_events_split_across_chunks() {
        let mut buffer = SseBuffer::default();
        let mut out = Vec::new();
        buffer.push(b"data: {\"a\":1}\n\ndata: {\"b\"", &mut out);
        assert_eq!(out, vec!["{\"a\":1}"]);
        buffer.push(b":2}\n\n", &mut out);
        assert_eq!(out, vec!["{\"a\":1}", "{\"b\":2}"]);
    }
}
