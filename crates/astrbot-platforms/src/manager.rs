//! Runs the configured adapters: one supervisor task per enabled entry
//! that restarts a failed `run` with exponential backoff, so one broken
//! platform (bad token, port taken) is logged and retried without touching
//! the others or the API.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::adapter::{wait_for_shutdown, PlatformAdapter};
use crate::config::PlatformConfig;
use crate::message::InboundMessage;
use crate::registry::PlatformRegistry;

/// How long a shutdown waits for adapters to close their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Restart delays: `initial`, doubled after each failure up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// One configured bot as `/api/v1/im/bots/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotStatus {
    pub id: String,
    /// AstrBot's platform `type`.
    pub kind: String,
    pub enabled: bool,
    pub running: bool,
    pub last_error: Option<String>,
    /// How many times `run` failed and was restarted.
    pub restarts: u32,
}

/// What the supervisor knows beyond the adapter's own status.
#[derive(Debug, Default)]
struct Supervision {
    in_run: bool,
    last_error: Option<String>,
    restarts: u32,
}

type SharedSupervision = Arc<Mutex<Supervision>>;

fn lock(state: &SharedSupervision) -> std::sync::MutexGuard<'_, Supervision> {
    // Only plain fields are written under this lock; poison is harmless.
    state.lock().unwrap_or_else(|poison| poison.into_inner())
}

struct Bot {
    config: PlatformConfig,
    /// `None` when disabled or when building it failed.
    adapter: Option<Arc<dyn PlatformAdapter>>,
    supervision: SharedSupervision,
}

/// The configured platform adapters.
pub struct PlatformManager {
    bots: Vec<Bot>,
    backoff: Backoff,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl PlatformManager {
    /// Builds every enabled entry of AstrBot's `platform` list. Entries
    /// without an id are skipped (logged); an unknown type or bad config
    /// stays listed with its error so the status endpoint can show it.
    pub fn from_config(registry: &PlatformRegistry, platforms: &Value) -> Self {
        let mut bots: Vec<Bot> = Vec::new();
        for entry in platforms.as_array().map(Vec::as_slice).unwrap_or_default() {
            let config = match PlatformConfig::from_json(entry) {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(%error, "skipping platform entry");
                    continue;
                }
            };
            if bots.iter().any(|bot| bot.config.id == config.id) {
                tracing::warn!(platform.id = %config.id, "duplicate platform id; keeping the first");
                continue;
            }
            let supervision = SharedSupervision::default();
            let adapter = if config.enable {
                match registry.build(&config) {
                    Ok(adapter) => Some(adapter),
                    Err(error) => {
                        tracing::warn!(platform.id = %config.id, %error, "platform not started");
                        lock(&supervision).last_error = Some(error.to_string());
                        None
                    }
                }
            } else {
                None
            };
            bots.push(Bot {
                config,
                adapter,
                supervision,
            });
        }
        PlatformManager {
            bots,
            backoff: Backoff::default(),
            shutdown: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Starts a supervisor per built adapter; inbound messages of all of
    /// them go to `inbound`.
    pub fn start(&self, inbound: mpsc::Sender<InboundMessage>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for bot in &self.bots {
            let Some(adapter) = bot.adapter.clone() else {
                continue;
            };
            tasks.push(tokio::spawn(supervise(
                adapter,
                bot.supervision.clone(),
                inbound.clone(),
                self.shutdown.subscribe(),
                self.backoff,
            )));
        }
    }

    /// A running adapter by id, for proactive sends.
    pub fn get(&self, id: &str) -> Option<Arc<dyn PlatformAdapter>> {
        let bot = self.bots.iter().find(|bot| bot.config.id == id)?;
        let adapter = bot.adapter.as_ref()?;
        (lock(&bot.supervision).in_run && adapter.status().running).then(|| adapter.clone())
    }

    /// Every configured bot, in config order.
    pub fn status(&self) -> Vec<BotStatus> {
        self.bots.iter().map(Bot::status).collect()
    }

    /// Asks every adapter to stop and waits (bounded) for them to close.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for mut task in tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                tracing::warn!("a platform adapter did not stop in time; aborting it");
                task.abort();
            }
        }
    }
}

impl Bot {
    fn status(&self) -> BotStatus {
        let supervision = lock(&self.supervision);
        let adapter = self.adapter.as_ref().map(|adapter| adapter.status());
        let running = supervision.in_run && adapter.as_ref().is_some_and(|s| s.running);
        // The adapter's own error (e.g. a refused connection) is more
        // specific than the supervisor's; fall back to why `run` failed.
        let last_error = adapter
            .and_then(|status| status.last_error)
            .or_else(|| supervision.last_error.clone());
        BotStatus {
            id: self.config.id.clone(),
            kind: self.config.kind.clone(),
            enabled: self.config.enable,
            running,
            last_error,
            restarts: supervision.restarts,
        }
    }
}

/// Runs one adapter until shutdown, restarting it when `run` fails,
/// returns early or panics.
async fn supervise(
    adapter: Arc<dyn PlatformAdapter>,
    supervision: SharedSupervision,
    inbound: mpsc::Sender<InboundMessage>,
    mut shutdown: watch::Receiver<bool>,
    backoff: Backoff,
) {
    let mut delay = backoff.initial;
    loop {
        if *shutdown.borrow() {
            return;
        }
        lock(&supervision).in_run = true;
        let started = Instant::now();
        // Its own task, so a panic in the adapter is caught here as a
        // failure instead of killing the supervisor.
        let run = tokio::spawn(adapter.clone().run(inbound.clone(), shutdown.clone()));
        let outcome = run.await;
        lock(&supervision).in_run = false;
        if *shutdown.borrow() {
            return;
        }
        let reason = match outcome {
            Ok(Ok(())) => "adapter stopped unexpectedly".to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(join) => format!("adapter panicked: {join}"),
        };
        // A run that stayed up longer than the longest delay was healthy;
        // start the backoff over instead of punishing a rare failure.
        if started.elapsed() > backoff.max {
            delay = backoff.initial;
        }
        tracing::warn!(platform.id = adapter.id(), platform.kind = adapter.kind(), error = %reason, retry_in = ?delay, "platform adapter failed; restarting");
        {
            let mut state = lock(&supervision);
            state.last_error = Some(reason);
            state.restarts += 1;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wait_for_shutdown(&mut shutdown) => return,
        }
        delay = (delay * 2).min(backoff.max);
    }
}
