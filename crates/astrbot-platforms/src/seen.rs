//! Remembers the messages a bot received lately, so that one delivered
//! twice is answered once: Slack retries deliveries it thinks failed (and
//! sends a channel mention both as `message` and as `app_mention`),
//! Telegram retries a webhook update, and a OneBot implementation may send
//! an event again after reconnecting.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// How many keys are remembered; the oldest are forgotten first.
const CAPACITY: usize = 1024;

#[derive(Default)]
pub(crate) struct Seen(Mutex<(VecDeque<String>, HashSet<String>)>);

impl Seen {
    /// Whether `key` was offered lately.
    pub fn contains(&self, key: &str) -> bool {
        let guard = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        guard.1.contains(key)
    }

    /// True the first time a key is offered.
    pub fn first_time(&self, key: String) -> bool {
        let mut guard = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let (order, set) = &mut *guard;
        if !set.insert(key.clone()) {
            return false;
        }
        order.push_back(key);
        if order.len() > CAPACITY {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once_until_it_is_forgotten() {
        let seen = Seen::default();
        assert!(seen.first_time("a".into()));
        assert!(!seen.first_time("a".into()));
        for number in 0..CAPACITY {
            seen.first_time(number.to_string());
        }
        assert!(
            seen.first_time("a".into()),
            "forgotten after {CAPACITY} others"
        );
    }
}
