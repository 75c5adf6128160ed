//! The live reverse-WebSocket connections and the actions waiting for
//! their `echo`. A reply goes over the connection of the account that
//! received the message, other sends over the newest connection; a
//! reconnecting account (same `self_id`) replaces its older one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::PlatformError;

#[derive(Clone)]
struct Link {
    id: u64,
    outgoing: mpsc::Sender<Message>,
}

struct Pending {
    link: u64,
    answer: oneshot::Sender<Value>,
}

#[derive(Default)]
pub(super) struct Links {
    /// Keyed by `self_id`; a connection that has not told us yet is
    /// filed under a key of its own ([`unnamed`]), so that two of them do
    /// not replace each other.
    by_account: Mutex<HashMap<String, Link>>,
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
}

fn guard<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Maps only; a panic elsewhere cannot leave them inconsistent.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Links {
    /// Adds a connection and returns its id.
    pub fn register(&self, self_id: Option<&str>, outgoing: mpsc::Sender<Message>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let key = self_id.map_or_else(|| unnamed(id), str::to_owned);
        guard(&self.by_account).insert(key, Link { id, outgoing });
        id
    }

    /// Files a connection under the `self_id` its first event carried.
    pub fn learn_self_id(&self, link_id: u64, self_id: &str) {
        let mut links = guard(&self.by_account);
        if let Some(link) = links.remove(&unnamed(link_id)) {
            // Only replace a link that is older than this one.
            if links.get(self_id).is_none_or(|old| old.id < link.id) {
                links.insert(self_id.to_owned(), link);
            }
        }
    }

    /// Forgets a closed connection (unless a newer one replaced it) and
    /// fails the actions still waiting on it.
    pub fn unregister(&self, link_id: u64) {
        guard(&self.by_account).retain(|_, link| link.id != link_id);
        guard(&self.pending).retain(|_, pending| pending.link != link_id);
    }

    /// Delivers an action's answer to its caller.
    pub fn answer(&self, echo: &str, response: Value) {
        if let Some(pending) = guard(&self.pending).remove(echo) {
            let _ = pending.answer.send(response);
        }
    }

    pub fn connected(&self) -> usize {
        guard(&self.by_account).len()
    }

    /// Sends an action over `account`'s connection (over the newest when
    /// it is `None`) and waits for the answer with the same `echo`. A
    /// named account that is not connected is an error: another account
    /// would post as someone else.
    pub async fn call(
        &self,
        account: Option<&str>,
        action: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, PlatformError> {
        let link = {
            let links = guard(&self.by_account);
            let link = match account {
                Some(account) => links.get(account).ok_or_else(|| {
                    PlatformError::NotConnected(format!(
                        "the QQ account {account} is not connected"
                    ))
                })?,
                None => links.values().max_by_key(|link| link.id).ok_or_else(|| {
                    PlatformError::NotConnected("no OneBot implementation is connected".into())
                })?,
            };
            link.clone()
        };
        let echo = format!("astrbot-rs-{}", next_number(&self.next_id));
        let (answer, answered) = oneshot::channel();
        guard(&self.pending).insert(
            echo.clone(),
            Pending {
                link: link.id,
                answer,
            },
        );
        let frame = json!({"action": action, "params": params, "echo": echo});
        // The time limit covers the wait for room in the connection's
        // queue too: a OneBot side that stops reading fills it, and every
        // send behind would otherwise wait without end.
        let sent_and_answered = async {
            let frame = Message::Text(frame.to_string().into());
            if link.outgoing.send(frame).await.is_err() {
                return Err(PlatformError::NotConnected(
                    "the OneBot connection closed".into(),
                ));
            }
            answered.await.map_err(|_| {
                PlatformError::NotConnected(format!(
                    "the OneBot connection closed before {action} was answered"
                ))
            })
        };
        let outcome = tokio::time::timeout(timeout, sent_and_answered).await;
        if !matches!(outcome, Ok(Ok(_))) {
            guard(&self.pending).remove(&echo);
        }
        match outcome {
            Ok(Ok(response)) => check_response(action, response),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(PlatformError::Timeout {
                action: action.to_owned(),
                after: timeout,
            }),
        }
    }
}

/// The key of a connection whose account is not known yet.
fn unnamed(link_id: u64) -> String {
    format!("#{link_id}")
}

/// Unique within the process: the same counter as link ids, so no two
/// actions ever share an echo.
fn next_number(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

/// OneBot answers `{"status": "ok"|"async"|"failed", "retcode", "data",
/// "wording"/"message"}`; retcode 0 (done) and 1 (queued) are success.
fn check_response(action: &str, response: Value) -> Result<Value, PlatformError> {
    let retcode = response.get("retcode").and_then(Value::as_i64).unwrap_or(0);
    let failed = response.get("status").and_then(Value::as_str) == Some("failed");
    if (retcode == 0 || retcode == 1) && !failed {
        return Ok(response.get("data").cloned().unwrap_or(Value::Null));
    }
    let message = ["wording", "message", "msg", "status"]
        .iter()
        .filter_map(|key| response.get(*key).and_then(Value::as_str))
        .find(|text| !text.is_empty())
        .unwrap_or("no reason given")
        .to_owned();
    Err(PlatformError::Action {
        action: action.to_owned(),
        retcode,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_checked() {
        let ok = json!({"status": "ok", "retcode": 0, "data": {"message_id": 5}, "echo": "e"});
        assert_eq!(check_response("a", ok).unwrap(), json!({"message_id": 5}));
        let failed =
            json!({"status": "failed", "retcode": 1200, "wording": "not in group", "message": "x"});
        assert_eq!(
            check_response("send_group_msg", failed)
                .unwrap_err()
                .to_string(),
            "send_group_msg failed: retcode 1200: not in group"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_to_a_connection_nobody_reads_times_out() {
        let links = Links::default();
        let (tx, _unread) = mpsc::channel(1);
        links.register(Some("10"), tx);
        let timeout = Duration::from_secs(10);

        // The first frame fills the queue and waits for its answer; the
        // second waits for room. Both give up in time.
        let (first, second) = tokio::join!(
            links.call(None, "send_group_msg", json!({}), timeout),
            links.call(None, "send_group_msg", json!({}), timeout),
        );

        for outcome in [first, second] {
            assert!(
                matches!(outcome, Err(PlatformError::Timeout { .. })),
                "{outcome:?}"
            );
        }
        assert!(guard(&links.pending).is_empty(), "nothing is left waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_goes_from_the_account_that_received_the_message() {
        let links = Links::default();
        let (first_tx, mut first) = mpsc::channel(4);
        let (second_tx, mut second) = mpsc::channel(4);
        links.register(Some("10001"), first_tx);
        links.register(Some("10002"), second_tx);
        let timeout = Duration::from_secs(1);

        // Nobody answers here; where each frame went is what counts.
        for account in [Some("10001"), None] {
            let _ = links
                .call(account, "send_group_msg", json!({}), timeout)
                .await;
        }

        let frames = |queue: &mut mpsc::Receiver<Message>| {
            std::iter::from_fn(|| queue.try_recv().ok()).count()
        };
        assert_eq!(frames(&mut first), 1, "the named account's own connection");
        assert_eq!(frames(&mut second), 1, "otherwise the newest");
        let gone = links
            .call(Some("10003"), "send_group_msg", json!({}), timeout)
            .await;
        assert!(
            matches!(gone, Err(PlatformError::NotConnected(_))),
            "{gone:?}"
        );
    }

    #[test]
    fn two_connections_not_yet_named_both_stay() {
        let links = Links::default();
        let (tx, _rx) = mpsc::channel(1);
        let first = links.register(None, tx.clone());
        let second = links.register(None, tx);
        assert_eq!(links.connected(), 2);
        links.learn_self_id(first, "10");
        links.learn_self_id(second, "20");
        assert_eq!(links.connected(), 2);
    }

    #[test]
    fn newer_link_for_an_account_wins_and_close_keeps_it() {
        let links = Links::default();
        let (tx, _rx) = mpsc::channel(1);
        let old = links.register(Some("10"), tx.clone());
        let new = links.register(None, tx);
        links.learn_self_id(new, "10");
        assert_eq!(links.connected(), 1);
        links.unregister(old);
        assert_eq!(links.connected(), 1);
        links.unregister(new);
        assert_eq!(links.connected(), 0);
    }
}
