//! Where log lines go: stderr, written by a thread of its own.
//!
//! Lines are formatted where they are logged and queued for the writer
//! thread, which writes every line waiting in one go. Writing them in
//! place made the server stop answering whenever stderr stopped taking
//! bytes: a pipe whose reader pauses (`serve | less`, a terminal held with
//! Ctrl-S, a stuck log shipper) fills after 64 KiB, and then every
//! request's access line blocked the runtime thread that logged it.
//!
//! The queue holds [`QUEUED_LINES`] lines. When it is full, new lines are
//! dropped and counted, and once the output moves again a warning says how
//! many were lost. A server that keeps answering with gaps in its log is
//! what an operator would choose over one that hangs until someone reads.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait for the writer thread (a few hundred KiB of
/// ordinary lines) before new ones are dropped.
const QUEUED_LINES: usize = 4096;

/// How long the writer thread rests after writing, so that lines logged
/// meanwhile are written together. Without the rest, a busy server woke
/// the thread for nearly every line, which cost more CPU than the writes.
const REST_AFTER_WRITING: Duration = Duration::from_millis(10);

/// Bytes gathered before a write (a rest's worth of lines under load).
const WRITE_BUFFER: usize = 64 * 1024;

/// How long the last lines may take to be written when the process ends,
/// so that a blocked stderr cannot hold up the exit.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

enum Message {
    Line(Vec<u8>),
    /// Write what came before, then answer.
    Flush(SyncSender<()>),
}

/// The log's writer, for `tracing_subscriber::fmt().with_writer(...)`.
#[derive(Clone)]
pub struct LogOutput {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Writes out the lines still queued when dropped (at the end of `main`).
pub struct FlushOnExit {
    queue: SyncSender<Message>,
}

/// Starts the writer thread on stderr.
pub fn to_stderr() -> io::Result<(LogOutput, FlushOnExit)> {
    start(io::stderr())
}

fn start(output: impl Write + Send + 'static) -> io::Result<(LogOutput, FlushOnExit)> {
    let (queue, lines) = mpsc::sync_channel(QUEUED_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || {
            write_lines(
                &lines,
                BufWriter::with_capacity(WRITE_BUFFER, output),
                &counted,
            )
        })?;
    let flush = FlushOnExit {
        queue: queue.clone(),
    };
    Ok((LogOutput { queue, dropped }, flush))
}

/// The writer thread: waits for a line, writes it and every line queued
/// behind it with as few writes as the buffer allows, then rests.
fn write_lines(lines: &Receiver<Message>, mut output: impl Write, dropped: &AtomicU64) {
    while let Ok(first) = lines.recv() {
        let mut answers = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                // A line that cannot be written (stderr closed) is lost;
                // there is nowhere left to report it.
                Message::Line(line) => drop(output.write_all(&line)),
                Message::Flush(answer) => answers.push(answer),
            }
            next = lines.try_recv().ok();
        }
        let flushed = output.flush().is_ok();
        for answer in answers {
            let _ = answer.send(());
        }
        // Reported through the log itself, now that it moves again.
        let lost = if flushed {
            dropped.swap(0, Ordering::Relaxed)
        } else {
            0
        };
        if lost > 0 {
            tracing::warn!(
                lines = lost,
                "log lines were dropped while the log output was blocked"
            );
        }
        std::thread::sleep(REST_AFTER_WRITING);
    }
}

impl LogOutput {
    /// Queues one formatted line, or counts it as dropped when the queue
    /// is full.
    fn queue_line(&self, line: &[u8]) {
        match self.queue.try_send(Message::Line(line.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer thread is gone (it never ends while the process
            // runs); nothing can be written.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// What `tracing_subscriber` writes one event into: the event arrives as
/// one `write_all` of the whole formatted line.
pub struct LineWriter<'a> {
    output: &'a LogOutput,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.output.queue_line(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { output: self }
    }
}

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        let deadline = Instant::now() + FLUSH_AT_EXIT;
        let (answer, done) = mpsc::sync_channel(1);
        let mut flush = Message::Flush(answer);
        // The queue may be full behind a blocked stderr: try until the
        // deadline rather than wait on it for good.
        loop {
            match self.queue.try_send(flush) {
                Ok(()) => break,
                Err(TrySendError::Full(message)) if Instant::now() < deadline => {
                    flush = message;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An output that can be stopped, like a pipe nobody reads, and
    /// records what was written and in how many writes.
    #[derive(Clone, Default)]
    struct Held {
        blocked: Arc<Mutex<()>>,
        written: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicU64>,
    }

    impl Write for Held {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            drop(self.blocked.lock().unwrap());
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log(output: &LogOutput, line: &str) {
        output.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn lines_come_out_in_order_and_all_are_written_at_exit() {
        let held = Held::default();
        let (output, flush) = start(held.clone()).unwrap();
        // Held while logging, so that the lines wait in the queue and show
        // how the thread writes a backlog.
        let blocked = held.blocked.lock().unwrap();
        for i in 0..1000 {
            log(&output, &format!("line {i}\n"));
        }
        drop(blocked);
        drop(flush);

        let written = String::from_utf8(held.written.lock().unwrap().clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(written, expected);
        assert!(
            held.writes.load(Ordering::Relaxed) < 100,
            "a backlog is written a buffer at a time, not a line at a time"
        );
    }

    #[test]
    fn a_blocked_output_drops_lines_instead_of_blocking_and_says_so_later() {
        let held = Held::default();
        let (output, flush) = start(held.clone()).unwrap();
        let blocked = held.blocked.lock().unwrap();

        // Far more lines than the queue holds: none of these calls waits.
        let started = Instant::now();
        for i in 0..QUEUED_LINES * 3 {
            log(&output, &format!("line {i}\n"));
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(output.dropped.load(Ordering::Relaxed) >= QUEUED_LINES as u64);

        drop(blocked);
        // The count starts over once the backlog is out and the loss has
        // been reported.
        let deadline = Instant::now() + Duration::from_secs(30);
        while output.dropped.load(Ordering::Relaxed) > 0 {
            assert!(Instant::now() < deadline, "the backlog is written");
            std::thread::sleep(Duration::from_millis(5));
        }
        log(&output, "after\n");
        drop(flush);
        let written = String::from_utf8(held.written.lock().unwrap().clone()).unwrap();
        assert!(
            written.starts_with("line 0\n"),
            "the first lines got through"
        );
        assert!(written.contains("after\n"), "logging goes on afterwards");
    }

    #[test]
    fn exit_does_not_wait_long_for_an_output_that_never_moves() {
        let held = Held::default();
        let (output, flush) = start(held.clone()).unwrap();
        let _blocked = held.blocked.lock().unwrap();
        for i in 0..QUEUED_LINES * 2 {
            log(&output, &format!("line {i}\n"));
        }

        let started = Instant::now();
        drop(flush);
        assert!(started.elapsed() < FLUSH_AT_EXIT * 3);
    }
}
