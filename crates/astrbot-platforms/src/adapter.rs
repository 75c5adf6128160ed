//! The adapter trait every platform implements, its error type, and the
//! status it reports to the manager and `/api/v1/im/bots/status`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::message::{InboundMessage, OutboundChain, SessionTarget};

/// The longest rate-limit wait an adapter sits out before trying a call
/// once more; a longer one fails the send instead of stalling the
/// pipeline, and the error says how long the platform asked to wait.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long to wait before the one retry of a call the platform
/// rate-limited for `seconds`; `None` when that is too long (or nonsense).
pub(crate) fn retry_wait(seconds: f64) -> Option<Duration> {
    let wait = Duration::try_from_secs_f64(seconds).ok()?;
    (wait <= MAX_RETRY_AFTER).then_some(wait)
}

/// A failed platform call, and how long to wait before trying it once more
/// when the platform rate-limited it briefly (see [`retry_wait`]).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub error: PlatformError,
    pub retry_after: Option<Duration>,
}

impl From<PlatformError> for Refusal {
    fn from(error: PlatformError) -> Refusal {
        Refusal {
            error,
            retry_after: None,
        }
    }
}

/// Makes one `attempt`; when it is refused with a wait, waits and makes
/// one more.
pub(crate) async fn with_one_retry<T, F, Fut>(
    platform: &str,
    action: &str,
    mut attempt: F,
) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Refusal>>,
{
    match attempt().await {
        Err(Refusal {
            retry_after: Some(wait),
            ..
        }) => {
            tracing::debug!(platform, action, ?wait, "rate limited; retrying once");
            tokio::time::sleep(wait).await;
            attempt().await.map_err(|refusal| refusal.error)
        }
        answer => answer.map_err(|refusal| refusal.error),
    }
}

/// Why an adapter could not start, run or send. The `Display` text is what
/// `/api/v1/im/message` shows, so it names the platform's own reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform entry is unusable (missing or bad key).
    #[error("invalid platform config: {0}")]
    Config(String),
    /// No factory is registered for the entry's `type`.
    #[error("unsupported platform type: {0}")]
    UnknownType(String),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    /// Nothing to send through (no OneBot implementation connected, …).
    #[error("not connected: {0}")]
    NotConnected(String),
    /// The platform answered the send with an error.
    #[error("{action} failed: retcode {retcode}: {message}")]
    Action {
        action: String,
        retcode: i64,
        message: String,
    },
    #[error("{action} timed out after {after:?} without an answer")]
    Timeout { action: String, after: Duration },
    /// The chain cannot be expressed on this platform.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else, with the reason.
    #[error("{0}")]
    Other(String),
}

/// What an adapter reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlatformStatus {
    /// Serving or connected: able to receive (and, for server-style
    /// adapters, waiting for the platform to connect).
    pub running: bool,
    /// The last thing that went wrong (refused connection, lost link …).
    pub last_error: Option<String>,
}

/// A status shared between an adapter's tasks; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatusCell(Arc<Mutex<PlatformStatus>>);

impl StatusCell {
    pub fn get(&self) -> PlatformStatus {
        self.lock().clone()
    }

    pub fn set_running(&self, running: bool) {
        self.lock().running = running;
    }

    pub fn set_error(&self, error: impl Into<String>) {
        self.lock().last_error = Some(error.into());
    }

    /// After a recovery (e.g. a connection with the right token).
    pub fn clear_error(&self) {
        self.lock().last_error = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlatformStatus> {
        // A panic while holding this lock cannot leave the status
        // half-written, so a poisoned lock is still safe to use.
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A chat platform connection.
///
/// `run` connects or serves until `shutdown` turns true, then returns
/// `Ok(())` after closing its connections; an `Err` (or returning early)
/// makes the manager restart it with backoff. `send` works whenever `run`
/// has a live link, for replies and proactive sends alike.
#[async_trait]
pub trait PlatformAdapter: Send + Sync + 'static {
    /// The configured (sanitised) id, first part of the UMO.
    fn id(&self) -> &str;

    /// The AstrBot `type` name, e.g. `aiocqhttp`.
    fn kind(&self) -> &str;

    async fn run(
        self: Arc<Self>,
        inbound: mpsc::Sender<InboundMessage>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), PlatformError>;

    async fn send(&self, target: &SessionTarget, chain: OutboundChain)
        -> Result<(), PlatformError>;

    /// Sends text that arrives in pieces (a streamed answer), ending when
    /// `deltas` closes. Platforms that can edit a sent message show it
    /// growing; by default the whole text is sent once at the end.
    async fn send_streaming(
        &self,
        target: &SessionTarget,
        mut deltas: mpsc::Receiver<String>,
    ) -> Result<(), PlatformError> {
        let mut text = String::new();
        while let Some(delta) = deltas.recv().await {
            text.push_str(&delta);
        }
        if text.trim().is_empty() {
            return Ok(());
        }
        self.send(target, OutboundChain::text(text)).await
    }

    fn status(&self) -> PlatformStatus;
}

/// Resolves once `shutdown` is true (or its sender is gone). Adapters put
/// this in their `select!` loops; unlike `wait_for` it holds no borrow of
/// the channel, so the future stays `Send`.
pub async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
