//! Where log lines go: stderr, written by a thread of its own.
//!
//! Lines are formatted where they are logged and queued for the writer
//! thread, which writes every line waiting in one go. Writing them in
//! place made the server stop answering whenever stderr stopped taking
//! bytes: a pipe whose reader pauses (`serve | less`, a terminal held with
//! Ctrl-S, a stuck log shipper) fills after 64 KiB, and then every
//! request's access line blocked the runtime thread that logged it.
//!
//! The queue holds [`QUEUED_LINES`] lines and [`QUEUED_BYTES`] bytes. When
//! it is full, new lines are dropped and counted, and once the output moves
//! again a warning says how many were lost. A server that keeps answering
//! with gaps in its log is what an operator would choose over one that
//! hangs until someone reads. The short commands (`apikey`) still write
//! each line in place, so that their lines keep their order among what
//! they print.

use std::cell::RefCell;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait for the writer thread before new ones are dropped.
const QUEUED_LINES: usize = 4096;

/// Bytes that may wait, whatever the number of lines: a line can carry
/// what a client sent (a path, a provider name), and 4,096 long ones would
/// otherwise hold hundreds of MiB while stderr is blocked.
const QUEUED_BYTES: usize = 1024 * 1024;

/// How long the writer thread rests after writing, so that lines logged
/// meanwhile are written together. Without the rest, a busy server woke
/// the thread for nearly every line, which cost more CPU than the writes.
const REST_AFTER_WRITING: Duration = Duration::from_millis(10);

/// Bytes gathered before a write (a rest's worth of lines under load).
const WRITE_BUFFER: usize = 64 * 1024;

/// How long the last lines may take to be written when the process ends,
/// so that a blocked stderr cannot hold up the exit; lines still queued
/// then are lost.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

enum Message {
    Line(Vec<u8>),
    /// Write what came before, then answer.
    Flush(SyncSender<()>),
}

thread_local! {
    /// On the writer thread while it logs its own warning: the formatted
    /// line, to be written in place instead of queued behind a backlog
    /// (where it could be dropped itself).
    static OWN_LINE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The log's writer, for `tracing_subscriber::fmt().with_writer(...)`:
/// straight to stderr, or through the writer thread.
pub struct LogOutput {
    queue: Option<Queue>,
}

struct Queue {
    sender: SyncSender<Message>,
    /// Bytes of the lines waiting, for [`QUEUED_BYTES`].
    bytes: Arc<AtomicUsize>,
    /// Lines dropped since the last report.
    dropped: Arc<AtomicU64>,
}

/// Writes out the lines still queued when dropped (at the end of `main`).
pub struct FlushOnExit {
    queue: SyncSender<Message>,
}

/// Each line written to stderr as it is logged, for the short commands,
/// whose few lines should keep their place among what they print.
pub fn direct() -> LogOutput {
    LogOutput { queue: None }
}

/// Lines queued for a writer thread on stderr, for the server.
pub fn queued() -> io::Result<(LogOutput, FlushOnExit)> {
    start(io::stderr())
}

fn start(output: impl Write + Send + 'static) -> io::Result<(LogOutput, FlushOnExit)> {
    let (sender, lines) = mpsc::sync_channel(QUEUED_LINES);
    let queue = Queue {
        sender: sender.clone(),
        bytes: Arc::new(AtomicUsize::new(0)),
        dropped: Arc::new(AtomicU64::new(0)),
    };
    let (bytes, dropped) = (queue.bytes.clone(), queue.dropped.clone());
    std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || {
            let output = BufWriter::with_capacity(WRITE_BUFFER, output);
            write_lines(&lines, output, &bytes, &dropped)
        })?;
    let flush = FlushOnExit { queue: sender };
    Ok((LogOutput { queue: Some(queue) }, flush))
}

/// The writer thread: waits for a line, writes it and every line queued
/// behind it with as few writes as the buffer allows, then rests.
fn write_lines(
    lines: &Receiver<Message>,
    mut output: impl Write,
    bytes: &AtomicUsize,
    dropped: &AtomicU64,
) {
    while let Ok(first) = lines.recv() {
        let mut answers = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                // A line that cannot be written (stderr closed) is lost;
                // there is nowhere left to report it.
                Message::Line(line) => {
                    bytes.fetch_sub(line.len(), Ordering::Relaxed);
                    drop(output.write_all(&line));
                }
                Message::Flush(answer) => answers.push(answer),
            }
            next = lines.try_recv().ok();
        }
        let flushed = output.flush().is_ok();
        for answer in answers {
            let _ = answer.send(());
        }
        // Reported once the output takes bytes again, in place; lines
        // dropped from now on go into the next report.
        if flushed {
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                report_dropped(lost, &mut output);
            }
        }
        std::thread::sleep(REST_AFTER_WRITING);
    }
}

/// Logs that `lost` lines were dropped, written straight to `output`.
fn report_dropped(lost: u64, output: &mut impl Write) {
    OWN_LINE.with(|own| *own.borrow_mut() = Some(Vec::new()));
    tracing::warn!(
        lines = lost,
        "log lines were dropped while the log output was blocked"
    );
    let line = OWN_LINE
        .with(|own| own.borrow_mut().take())
        .unwrap_or_default();
    let _ = output.write_all(&line).and_then(|()| output.flush());
}

impl Queue {
    /// Queues one formatted line, or counts it as dropped when the queue
    /// is full.
    fn push(&self, line: &[u8]) {
        let size = line.len();
        let waiting = self.bytes.fetch_add(size, Ordering::Relaxed);
        // A failed send means a full queue, or a writer thread that is gone
        // (it never ends while the process runs): either way, dropped.
        let queued = waiting + size <= QUEUED_BYTES
            && self.sender.try_send(Message::Line(line.to_vec())).is_ok();
        if !queued {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Keeps `bytes` as the writer thread's own line if it is logging one (see
/// [`OWN_LINE`]); false everywhere else.
fn took_as_own_line(bytes: &[u8]) -> bool {
    OWN_LINE.with(|own| match own.borrow_mut().as_mut() {
        Some(line) => {
            line.extend_from_slice(bytes);
            true
        }
        None => false,
    })
}

/// What `tracing_subscriber` writes one event into: the event arrives as
/// one `write_all` of the whole formatted line.
pub struct LineWriter<'a> {
    output: &'a LogOutput,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !took_as_own_line(bytes) {
            match &self.output.queue {
                Some(queue) => queue.push(bytes),
                None => io::stderr().write_all(bytes)?,
            }
        }
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

    fn dropped(output: &LogOutput) -> u64 {
        output
            .queue
            .as_ref()
            .unwrap()
            .dropped
            .load(Ordering::Relaxed)
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

    /// Waits until the writer thread has taken every queued line.
    fn wait_for_empty_queue(output: &LogOutput) {
        let bytes = &output.queue.as_ref().unwrap().bytes;
        let deadline = Instant::now() + Duration::from_secs(30);
        while bytes.load(Ordering::Relaxed) > 0 {
            assert!(Instant::now() < deadline, "the backlog is written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_blocked_output_drops_lines_instead_of_blocking() {
        let held = Held::default();
        let (output, flush) = start(held.clone()).unwrap();
        let blocked = held.blocked.lock().unwrap();

        // Far more lines than the queue and the write buffer hold (the
        // thread takes lines into its buffer until that is full): none of
        // these calls waits.
        let started = Instant::now();
        let lines = QUEUED_LINES * 3;
        for i in 0..lines {
            log(&output, &format!("line {i:<94}\n"));
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        let lost = dropped(&output);
        assert!(lost >= QUEUED_LINES as u64, "{lost}");

        drop(blocked);
        wait_for_empty_queue(&output);
        log(&output, "after\n");
        drop(flush);
        let written = String::from_utf8(held.written.lock().unwrap().clone()).unwrap();
        assert!(
            written.starts_with("line 0 "),
            "the first lines got through"
        );
        assert!(written.ends_with("after\n"), "logging goes on afterwards");
        let kept = written
            .lines()
            .filter(|line| line.starts_with("line "))
            .count();
        assert_eq!(
            kept as u64 + lost,
            lines as u64,
            "every line is written or counted"
        );
    }

    #[test]
    fn long_lines_are_bounded_by_bytes_not_only_by_count() {
        let held = Held::default();
        let (output, flush) = start(held.clone()).unwrap();
        let blocked = held.blocked.lock().unwrap();

        let long = "x".repeat(100 * 1024) + "\n";
        for _ in 0..100 {
            log(&output, &long);
        }
        let queue = output.queue.as_ref().unwrap();
        assert!(queue.bytes.load(Ordering::Relaxed) <= QUEUED_BYTES);
        assert!(dropped(&output) >= 100 - 11, "about ten fit in a MiB");

        drop(blocked);
        drop(flush);
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
