//! The whitelist and the per-session rate limit of
//! `platform_settings`, as AstrBot applies them to platform messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use astrbot_core::{MessageType, Umo};
use astrbot_platforms::InboundMessage;
use serde_json::Value;

use crate::config::LoadedConfig;
use crate::routes::python::to_str;

/// `platform_settings.id_whitelist`: when not empty (and
/// `enable_id_white_list` is not false), only the listed UMOs and group
/// ids are answered. Admins pass unless `wl_ignore_admin_on_group`
/// / `wl_ignore_admin_on_friend` are false.
pub struct Whitelist {
    ids: Vec<String>,
    admins_pass_in_groups: bool,
    admins_pass_in_private: bool,
}

impl Whitelist {
    pub fn new(config: &LoadedConfig) -> Self {
        let settings = config.document.get("platform_settings");
        let flag = |key: &str| {
            settings
                .and_then(|s| s.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(true)
        };
        let ids = if flag("enable_id_white_list") {
            listed_ids(settings.and_then(|s| s.get("id_whitelist")))
        } else {
            Vec::new()
        };
        Whitelist {
            ids,
            admins_pass_in_groups: flag("wl_ignore_admin_on_group"),
            admins_pass_in_private: flag("wl_ignore_admin_on_friend"),
        }
    }

    pub fn allows(&self, message: &InboundMessage, umo: &Umo, is_admin: bool) -> bool {
        if self.ids.is_empty() {
            return true;
        }
        let admin_passes = match message.message_type {
            MessageType::Group => self.admins_pass_in_groups,
            _ => self.admins_pass_in_private,
        };
        if is_admin && admin_passes {
            return true;
        }
        // As in AstrBot: a chat's UMO, or a group's id. Not a sender's id:
        // QQ users and groups share one space of numbers, so a group's
        // entry would let in the user with that number everywhere.
        let (umo, chat) = (umo.to_string(), message.umo().to_string());
        let group = (message.message_type == MessageType::Group).then_some(&message.session_id);
        self.ids
            .iter()
            .any(|id| *id == umo || *id == chat || Some(id) == group)
    }
}

/// The whitelist's ids as AstrBot reads them, `str(id).strip()` with the
/// blank ones left out: a QQ group written as a number (`[555]`) is the id
/// `555`, not an entry to skip, which would empty the list and let every
/// chat in.
fn listed_ids(list: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(ids)) = list else {
        return Vec::new();
    };
    ids.iter()
        .map(|id| to_str(id).trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

/// `platform_settings.rate_limit`: at most `count` messages per session in
/// each window of `time` seconds; past that, `stall` waits for the next
/// window and `discard` drops the message.
#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, Window>>,
    /// One queue per session, held across a stall, so that its messages
    /// go on in the order they came (tokio's mutex serves in order), as
    /// AstrBot holds a per-session lock while it waits.
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct Window {
    started: Instant,
    used: u64,
}

/// Sessions tracked before idle windows are dropped.
const TRACKED_SESSIONS: usize = 4096;

impl RateLimiter {
    /// Whether the message may go on (after waiting, with `stall`).
    pub async fn admit(&self, umo: &Umo, config: &LoadedConfig) -> bool {
        let limit = config.document.pointer("/platform_settings/rate_limit");
        let number = |key: &str, default: u64| {
            limit
                .and_then(|l| l.get(key))
                .and_then(Value::as_u64)
                .unwrap_or(default)
        };
        let period = Duration::from_secs(number("time", 60));
        let count = number("count", 30);
        let stall = limit
            .and_then(|l| l.get("strategy"))
            .and_then(Value::as_str)
            .is_none_or(|strategy| strategy != "discard");
        if count == 0 || period.is_zero() {
            return true;
        }

        let key = umo.to_string();
        let queue = self.queue(&key);
        let _in_order = queue.lock().await;
        loop {
            let wait = match self.take(&key, period, count) {
                None => return true,
                Some(wait) => wait,
            };
            if !stall {
                return false;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The session's queue. Queues nobody holds or waits on are dropped
    /// when many sessions are tracked.
    fn queue(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if queues.len() >= TRACKED_SESSIONS {
            queues.retain(|_, queue| Arc::strong_count(queue) > 1);
        }
        Arc::clone(queues.entry(key.to_owned()).or_default())
    }

    /// Counts the message if its window has room; otherwise how long until
    /// the window ends.
    fn take(&self, key: &str, period: Duration, count: u64) -> Option<Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= TRACKED_SESSIONS {
            windows.retain(|_, window| now.duration_since(window.started) < period);
        }
        let window = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            used: 0,
        });
        if now.duration_since(window.started) >= period {
            *window = Window {
                started: now,
                used: 0,
            };
        }
        if window.used < count {
            window.used += 1;
            return None;
        }
        Some(period.saturating_sub(now.duration_since(window.started)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(rate_limit: Value) -> LoadedConfig {
        LoadedConfig::new(
            "default",
            "default",
            json!({"platform_settings": {"rate_limit": rate_limit}}),
        )
    }

    #[test]
    fn whitelist_ids_are_read_as_python_strings_and_blank_ones_skipped() {
        let listed = json!([555, " 777 ", "qq:GroupMessage:1", "", "  ", 1.5, true]);
        assert_eq!(
            listed_ids(Some(&listed)),
            ["555", "777", "qq:GroupMessage:1", "1.5", "True"]
        );
        assert!(listed_ids(Some(&json!("555"))).is_empty());
        assert!(listed_ids(None).is_empty());
    }

    #[tokio::test]
    async fn discard_drops_what_exceeds_the_window() {
        let limiter = RateLimiter::default();
        let config = config(json!({"time": 60, "count": 2, "strategy": "discard"}));
        let umo = Umo::new("qq", MessageType::Group, "1");
        let other = Umo::new("qq", MessageType::Group, "2");

        assert!(limiter.admit(&umo, &config).await);
        assert!(limiter.admit(&umo, &config).await);
        assert!(!limiter.admit(&umo, &config).await);
        assert!(limiter.admit(&other, &config).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_messages_of_a_session_go_on_in_the_order_they_came() {
        let limiter = Arc::new(RateLimiter::default());
        let config = Arc::new(config(json!({"time": 1, "count": 2, "strategy": "stall"})));
        let umo = Umo::new("qq", MessageType::Friend, "7");
        let admitted = Arc::new(Mutex::new(Vec::new()));

        let mut messages = Vec::new();
        for number in 0..6 {
            let (limiter, config, umo, admitted) = (
                limiter.clone(),
                config.clone(),
                umo.clone(),
                admitted.clone(),
            );
            messages.push(tokio::spawn(async move {
                assert!(limiter.admit(&umo, &config).await);
                admitted.lock().unwrap().push(number);
            }));
            // Each message arrives after the one before it is queued.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for message in messages {
            message.await.unwrap();
        }

        assert_eq!(*admitted.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn stall_waits_for_the_next_window() {
        let limiter = RateLimiter::default();
        let config = config(json!({"time": 1, "count": 1, "strategy": "stall"}));
        let umo = Umo::new("qq", MessageType::Group, "1");
        assert!(limiter.admit(&umo, &config).await);

        let started = tokio::time::Instant::now();
        assert!(limiter.admit(&umo, &config).await);

        assert!(started.elapsed() >= Duration::from_millis(900));
    }
}
