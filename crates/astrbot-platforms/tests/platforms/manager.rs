//! The manager: config entries to adapters, supervision with backoff,
//! lookup for proactive sends, status, shutdown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astrbot_core::MessageType;
use astrbot_platforms::{
    wait_for_shutdown, Backoff, InboundMessage, OutboundChain, PlatformAdapter, PlatformError,
    PlatformManager, PlatformRegistry, PlatformStatus, SessionTarget,
};
use async_trait::async_trait;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::eventually;
use crate::fake_onebot::{free_port, group_event, Auth, FakeOneBot, WAIT};

/// An adapter whose `run` fails `failures` times, then serves until
/// shutdown; it records when each run started.
struct Scripted {
    id: String,
    failures: usize,
    /// Ignores the stop signal (a connection stuck writing).
    stubborn: bool,
    starts: Mutex<Vec<Instant>>,
    running: Mutex<bool>,
}

/// Marks its adapter as not running when the `run` holding it ends or is
/// dropped (aborted).
struct RunningWhileHeld<'a>(&'a Mutex<bool>);

impl Drop for RunningWhileHeld<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = false;
    }
}

#[async_trait]
impl PlatformAdapter for Scripted {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "scripted"
    }

    async fn run(
        self: Arc<Self>,
        _inbound: mpsc::Sender<InboundMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), PlatformError> {
        let attempt = {
            let mut starts = self.starts.lock().unwrap();
            starts.push(Instant::now());
            starts.len()
        };
        if attempt <= self.failures {
            return Err(PlatformError::Other(format!("boom {attempt}")));
        }
        *self.running.lock().unwrap() = true;
        let _running = RunningWhileHeld(&self.running);
        if self.stubborn {
            std::future::pending::<()>().await;
        }
        wait_for_shutdown(&mut shutdown).await;
        Ok(())
    }

    async fn send(&self, _: &SessionTarget, _: OutboundChain) -> Result<(), PlatformError> {
        Ok(())
    }

    fn status(&self) -> PlatformStatus {
        PlatformStatus {
            running: *self.running.lock().unwrap(),
            last_error: None,
        }
    }
}

/// A registry whose `scripted` type builds adapters failing `failures`
/// times when the entry says so, keeping them for inspection.
fn scripted_registry() -> (PlatformRegistry, Arc<Mutex<Vec<Arc<Scripted>>>>) {
    let built = Arc::new(Mutex::new(Vec::new()));
    let mut registry = PlatformRegistry::new();
    let keep = built.clone();
    registry.register("scripted", move |config| {
        let adapter = Arc::new(Scripted {
            id: config.id.clone(),
            failures: config
                .raw
                .get("failures")
                .and_then(|n| n.as_u64())
                .unwrap_or(0) as usize,
            stubborn: config.raw.get("stubborn").is_some(),
            starts: Mutex::default(),
            running: Mutex::default(),
        });
        keep.lock().unwrap().push(adapter.clone());
        Ok(adapter as Arc<dyn PlatformAdapter>)
    });
    (registry, built)
}

#[tokio::test]
async fn failing_adapter_is_restarted_with_backoff_and_others_run_on() {
    let (registry, built) = scripted_registry();
    let platforms = json!([
        {"id": "flaky", "type": "scripted", "enable": true, "failures": 4},
        {"id": "steady", "type": "scripted", "enable": true},
    ]);
    let initial = Duration::from_millis(40);
    let manager = PlatformManager::from_config(&registry, &platforms).with_backoff(Backoff {
        initial,
        max: Duration::from_secs(10),
    });
    let (inbound, _receiver) = mpsc::channel(1);
    manager.start(inbound);

    let flaky = built.lock().unwrap()[0].clone();
    eventually(|| manager.get("flaky").is_some()).await;
    let starts = flaky.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 5, "four failures, then a good run");
    // Each wait is at least double the previous: 40, 80, 160, 320 ms.
    for (i, pair) in starts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(gap >= initial * 2u32.pow(i as u32), "gap {i} was {gap:?}");
    }

    let status = manager.status();
    assert_eq!(status[0].id, "flaky");
    assert!(status[0].running);
    assert_eq!(status[0].restarts, 4);
    assert_eq!(status[0].last_error.as_deref(), Some("boom 4"));
    // The other adapter was never disturbed.
    assert!(status[1].running);
    assert_eq!(
        (status[1].restarts, status[1].last_error.as_deref()),
        (0, None)
    );
    assert_eq!(built.lock().unwrap()[1].starts.lock().unwrap().len(), 1);

    manager.shutdown().await;
    assert!(manager.status().iter().all(|bot| !bot.running));
    assert!(manager.get("steady").is_none());
}

#[tokio::test]
async fn a_new_platform_list_touches_only_the_bots_whose_entries_changed() {
    let (registry, built) = scripted_registry();
    let manager = PlatformManager::from_config(
        &registry,
        &json!([
            {"id": "kept", "type": "scripted", "enable": true},
            {"id": "changed", "type": "scripted", "enable": true},
            {"id": "removed", "type": "scripted", "enable": true},
        ]),
    );
    manager.start(mpsc::channel(1).0);
    eventually(|| manager.status().iter().all(|bot| bot.running)).await;
    let first = built.lock().unwrap().clone();

    manager
        .reload(&json!([
            {"id": "added", "type": "scripted", "enable": true},
            {"id": "changed", "type": "scripted", "enable": true, "note": "new token"},
            {"id": "kept", "type": "scripted", "enable": true},
        ]))
        .await;
    eventually(|| manager.status().iter().all(|bot| bot.running)).await;

    let ids: Vec<String> = manager.status().into_iter().map(|bot| bot.id).collect();
    assert_eq!(ids, ["added", "changed", "kept"], "the new list's order");
    let runs = |adapter: &Scripted| adapter.starts.lock().unwrap().len();
    let [kept, changed, removed] = [&first[0], &first[1], &first[2]];
    assert_eq!(runs(kept), 1, "an unchanged bot runs on untouched");
    assert!(Arc::ptr_eq(
        &manager.get("kept").unwrap(),
        &(kept.clone() as Arc<dyn PlatformAdapter>)
    ));
    assert!(!*changed.running.lock().unwrap(), "the old adapter stopped");
    assert!(!*removed.running.lock().unwrap());
    assert!(manager.get("removed").is_none());
    let rebuilt: Vec<String> = built.lock().unwrap()[3..]
        .iter()
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(rebuilt, ["added", "changed"]);

    manager.shutdown().await;
    manager
        .reload(&json!([{"id": "late", "type": "scripted", "enable": true}]))
        .await;
    assert_eq!(
        built.lock().unwrap().len(),
        5,
        "no bot starts after shutdown"
    );
    assert!(manager.status().iter().all(|bot| !bot.running));
}

#[tokio::test]
async fn an_adapter_that_will_not_stop_is_aborted_when_removed() {
    let (registry, built) = scripted_registry();
    let platforms = json!([{"id": "stuck", "type": "scripted", "enable": true, "stubborn": true}]);
    let manager = PlatformManager::from_config(&registry, &platforms)
        .with_stop_grace(Duration::from_millis(100));
    manager.start(mpsc::channel(1).0);
    eventually(|| manager.get("stuck").is_some()).await;
    let stuck = built.lock().unwrap()[0].clone();

    manager.reload(&json!([])).await;

    // Its `run` was dropped, not left running on its own.
    eventually(|| !*stuck.running.lock().unwrap()).await;
    assert!(manager.status().is_empty());
}

#[tokio::test]
async fn status_shows_failure_while_waiting_to_retry() {
    let (registry, _built) = scripted_registry();
    let platforms = json!([{"id": "down", "type": "scripted", "enable": true, "failures": 1000}]);
    let manager = PlatformManager::from_config(&registry, &platforms).with_backoff(Backoff {
        initial: Duration::from_secs(30),
        max: Duration::from_secs(60),
    });
    manager.start(mpsc::channel(1).0);
    eventually(|| manager.status()[0].restarts == 1).await;
    let status = &manager.status()[0];
    assert!(!status.running);
    assert_eq!(status.last_error.as_deref(), Some("boom 1"));
    assert!(manager.get("down").is_none());
    // Shutdown does not wait out the 30 s backoff.
    tokio::time::timeout(Duration::from_secs(2), manager.shutdown())
        .await
        .expect("shutdown waited for the backoff");
}

#[tokio::test]
async fn aiocqhttp_from_astrbot_config_end_to_end() {
    let port = free_port();
    let platforms = json!([
        {"id": "qq:main", "type": "aiocqhttp", "enable": true,
         "ws_reverse_host": "127.0.0.1", "ws_reverse_port": port, "ws_reverse_token": "tok"},
        // Same port: this one cannot bind and must not hurt the first.
        {"id": "qq2", "type": "aiocqhttp", "enable": true,
         "ws_reverse_host": "127.0.0.1", "ws_reverse_port": port},
        {"id": "off", "type": "aiocqhttp", "enable": false},
        {"id": "tg", "type": "no_such_platform", "enable": true},
        {"type": "aiocqhttp", "enable": true},
    ]);
    let manager = PlatformManager::from_config(&PlatformRegistry::builtin(), &platforms)
        .with_backoff(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
        });
    let (inbound, mut received) = mpsc::channel(8);
    manager.start(inbound);

    let mut fake = FakeOneBot::connect(port, Auth::Bearer("tok"), "10")
        .await
        .unwrap();
    eventually(|| manager.get("qq_main").is_some()).await;
    eventually(|| manager.status()[1].restarts >= 2).await;

    let status = manager.status();
    let ids: Vec<&str> = status.iter().map(|bot| bot.id.as_str()).collect();
    assert_eq!(ids, ["qq_main", "qq2", "off", "tg"]);
    assert!(status[0].running && status[0].enabled);
    assert_eq!(status[0].kind, "aiocqhttp");
    assert!(!status[1].running);
    let bind_error = status[1].last_error.clone().unwrap();
    assert!(
        bind_error.starts_with("cannot listen on 127.0.0.1:"),
        "{bind_error}"
    );
    assert!(!status[2].enabled && !status[2].running && status[2].last_error.is_none());
    assert_eq!(
        status[3].last_error.as_deref(),
        Some("unsupported platform type: no_such_platform")
    );
    assert!(manager.get("qq2").is_none() && manager.get("off").is_none());

    // Inbound reaches the manager's channel under the sanitised id.
    fake.send_event(group_event(10, 500, 7, "hi")).await;
    let message = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.umo().to_string(), "qq_main:GroupMessage:500");

    // Proactive send: look the adapter up by the UMO's platform id.
    let adapter = manager.get("qq_main").unwrap();
    let sending = tokio::spawn(async move {
        adapter
            .send(
                &SessionTarget::new(MessageType::Group, "500"),
                OutboundChain::text("news"),
            )
            .await
    });
    let action = fake.next_action().await;
    assert_eq!(
        (action["action"].as_str(), &action["params"]["group_id"]),
        (Some("send_group_msg"), &json!(500))
    );
    fake.answer(&action, 0, "").await;
    assert_eq!(sending.await.unwrap(), Ok(()));

    // The fake answers the shutdown's close frame, as NapCat would.
    let closing = tokio::spawn(async move {
        let frame = fake.next_frame().await;
        fake.close().await;
        frame
    });
    tokio::time::timeout(Duration::from_secs(10), manager.shutdown())
        .await
        .unwrap();
    let frame = closing.await.unwrap();
    assert!(matches!(frame, Some(Ok(Message::Close(_)))), "{frame:?}");
    assert!(manager.status().iter().all(|bot| !bot.running));
}
