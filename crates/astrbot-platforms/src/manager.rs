//! Runs the configured adapters: one supervisor task per enabled entry
//! that restarts a failed `run` with exponential backoff, so one broken
//! platform (bad token, port taken) is logged and retried without touching
//! the others or the API. A new `platform` list is applied while running:
//! only the bots whose entries changed are stopped or started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::adapter::{wait_for_shutdown, PlatformAdapter};
use crate::config::PlatformConfig;
use crate::message::InboundMessage;
use crate::registry::PlatformRegistry;

/// How long a shutdown or reload waits for adapters to close their
/// connections, by default.
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only plain values are written under these locks; poison is harmless.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

struct Bot {
    config: PlatformConfig,
    /// `None` when disabled or when building it failed.
    adapter: Option<Arc<dyn PlatformAdapter>>,
    supervision: SharedSupervision,
    /// Stops this bot alone (a reload that drops or changes it) or with
    /// the others (shutdown).
    stop: watch::Sender<bool>,
    /// Its supervisor, once started.
    task: Option<JoinHandle<()>>,
}

/// The configured platform adapters. The list can be replaced while the
/// server runs ([`PlatformManager::reload`]).
pub struct PlatformManager {
    registry: PlatformRegistry,
    bots: Mutex<Vec<Bot>>,
    backoff: Backoff,
    /// How long stopped adapters get to close before they are aborted.
    stop_grace: Duration,
    /// Where the adapters' messages go, once started.
    inbound: Mutex<Option<mpsc::Sender<InboundMessage>>>,
    /// One reload (or shutdown) at a time, so that a bot is never stopped
    /// and started by two of them at once.
    changing: tokio::sync::Mutex<()>,
    shut_down: AtomicBool,
}

impl PlatformManager {
    /// Builds every enabled entry of AstrBot's `platform` list. Entries
    /// without an id are skipped (logged); an unknown type or bad config
    /// stays listed with its error so the status endpoint can show it.
    pub fn from_config(registry: &PlatformRegistry, platforms: &Value) -> Self {
        let bots = parse_entries(platforms)
            .into_iter()
            .map(|config| build_bot(registry, config))
            .collect();
        PlatformManager {
            registry: registry.clone(),
            bots: Mutex::new(bots),
            backoff: Backoff::default(),
            stop_grace: SHUTDOWN_GRACE,
            inbound: Mutex::new(None),
            changing: tokio::sync::Mutex::new(()),
            shut_down: AtomicBool::new(false),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Starts a supervisor per built adapter; inbound messages of all of
    /// them (and of bots added by a later reload) go to `inbound`.
    pub fn start(&self, inbound: mpsc::Sender<InboundMessage>) {
        *lock(&self.inbound) = Some(inbound.clone());
        for bot in lock(&self.bots).iter_mut() {
            self.supervise_bot(bot, &inbound);
        }
    }

    /// Replaces the running bots with those of `platforms` (the default
    /// config's new `platform` list): a bot whose entry is unchanged runs
    /// on untouched, one that was removed or changed is stopped (and, if
    /// changed, started again with its new entry), and a new one is
    /// started. Returns once the stopped bots have closed (within the
    /// stop grace, 5 s unless set, for all of them together; a bot still
    /// running then is aborted) and the new ones are started.
    pub async fn reload(&self, platforms: &Value) {
        let _one_at_a_time = self.changing.lock().await;
        if self.shut_down.load(Ordering::Acquire) {
            return;
        }
        // Adapters are built before the list is locked, so that status
        // and replies never wait for that.
        let running: HashMap<String, PlatformConfig> = lock(&self.bots)
            .iter()
            .map(|bot| (bot.config.id.clone(), bot.config.clone()))
            .collect();
        let entries: Vec<Entry> = parse_entries(platforms)
            .into_iter()
            .map(|config| match running.get(&config.id) {
                Some(current) if *current == config => Entry::Kept(config.id),
                _ => Entry::New(build_bot(&self.registry, config)),
            })
            .collect();

        let starting = entries
            .iter()
            .filter(|entry| matches!(entry, Entry::New(bot) if bot.adapter.is_some()))
            .count();
        let stopped: Vec<Bot> = {
            let mut bots = lock(&self.bots);
            let mut old: HashMap<String, Bot> = std::mem::take(&mut *bots)
                .into_iter()
                .map(|bot| (bot.config.id.clone(), bot))
                .collect();
            *bots = entries
                .into_iter()
                .filter_map(|entry| match entry {
                    Entry::Kept(id) => old.remove(&id),
                    Entry::New(bot) => Some(bot),
                })
                .collect();
            old.into_values().collect()
        };
        if !stopped.is_empty() || starting > 0 {
            tracing::info!(stopped = stopped.len(), starting, "platform list reloaded");
        }
        // The old bots close first: a changed bot may listen on the port
        // its new entry listens on.
        stop_all(stopped, self.stop_grace).await;

        let Some(inbound) = lock(&self.inbound).clone() else {
            return;
        };
        for bot in lock(&self.bots).iter_mut().filter(|bot| bot.task.is_none()) {
            self.supervise_bot(bot, &inbound);
        }
    }

    /// A running adapter by id, for proactive sends.
    pub fn get(&self, id: &str) -> Option<Arc<dyn PlatformAdapter>> {
        let bots = lock(&self.bots);
        let bot = bots.iter().find(|bot| bot.config.id == id)?;
        let adapter = bot.adapter.as_ref()?;
        (lock(&bot.supervision).in_run && adapter.status().running).then(|| adapter.clone())
    }

    /// Every configured bot, in config order.
    pub fn status(&self) -> Vec<BotStatus> {
        lock(&self.bots).iter().map(Bot::status).collect()
    }

    /// Asks every adapter to stop and waits (bounded) for them to close.
    /// No reload starts a bot afterwards.
    pub async fn shutdown(&self) {
        let _one_at_a_time = self.changing.lock().await;
        self.shut_down.store(true, Ordering::Release);
        let tasks = lock(&self.bots)
            .iter_mut()
            .filter_map(Bot::ask_to_stop)
            .collect();
        join_bounded(tasks, self.stop_grace).await;
    }

    /// Starts `bot`'s supervisor, if it has an adapter.
    fn supervise_bot(&self, bot: &mut Bot, inbound: &mpsc::Sender<InboundMessage>) {
        let Some(adapter) = bot.adapter.clone() else {
            return;
        };
        bot.task = Some(tokio::spawn(supervise(
            adapter,
            bot.supervision.clone(),
            inbound.clone(),
            bot.stop.subscribe(),
            self.backoff,
        )));
    }
}

/// A bot of a new `platform` list: one running unchanged (by id), or one
/// built for a new or changed entry.
enum Entry {
    Kept(String),
    New(Bot),
}

/// The valid entries of a `platform` list, first of each id.
fn parse_entries(platforms: &Value) -> Vec<PlatformConfig> {
    let mut configs: Vec<PlatformConfig> = Vec::new();
    for entry in platforms.as_array().map(Vec::as_slice).unwrap_or_default() {
        let config = match PlatformConfig::from_json(entry) {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(%error, "skipping platform entry");
                continue;
            }
        };
        if configs.iter().any(|seen| seen.id == config.id) {
            tracing::warn!(platform.id = %config.id, "duplicate platform id; keeping the first");
            continue;
        }
        configs.push(config);
    }
    configs
}

/// A bot for `config`, its adapter built if the entry is enabled.
fn build_bot(registry: &PlatformRegistry, config: PlatformConfig) -> Bot {
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
    Bot {
        config,
        adapter,
        supervision,
        stop: watch::channel(false).0,
        task: None,
    }
}

/// Stops `bots` and waits (`grace` at most) for them to close.
async fn stop_all(mut bots: Vec<Bot>, grace: Duration) {
    let tasks = bots.iter_mut().filter_map(Bot::ask_to_stop).collect();
    join_bounded(tasks, grace).await;
}

/// Waits for the tasks, `grace` in all, aborting those that take longer.
async fn join_bounded(tasks: Vec<JoinHandle<()>>, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!("a platform adapter did not stop in time; aborting it");
            task.abort();
        }
    }
}

impl Bot {
    /// Signals the bot to stop; its supervisor, if it was started, to be
    /// waited for.
    fn ask_to_stop(&mut self) -> Option<JoinHandle<()>> {
        self.stop.send_replace(true);
        self.task.take()
    }

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
        // failure instead of killing the supervisor; aborting the
        // supervisor (an adapter that would not stop) aborts it too.
        let mut run = AbortOnDrop(tokio::spawn(
            adapter.clone().run(inbound.clone(), shutdown.clone()),
        ));
        let outcome = (&mut run.0).await;
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

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
