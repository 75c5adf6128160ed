//! Hands a chat's messages on in the order they came, when some of them
//! first wait for a download (a Telegram photo, a Slack image): such a
//! message is prepared in a task of its own, so that other chats go on,
//! and a message of the same chat that came after it waits for its turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Every chat's line of messages not yet handed on.
#[derive(Default)]
pub struct InOrder {
    chats: Mutex<HashMap<String, Line>>,
}

struct Line {
    /// Places given out so far.
    taken: u64,
    /// Places done so far; place `n` may go once this is `n`.
    done: watch::Sender<u64>,
}

/// A message's place in its chat's line. Dropping it lets the next one
/// go, whether or not this one was handed on.
pub struct Place {
    order: Arc<InOrder>,
    chat: String,
    number: u64,
    done: watch::Receiver<u64>,
}

impl InOrder {
    /// The next place in `chat`'s line; take it as the message arrives.
    pub fn take(self: &Arc<Self>, chat: &str) -> Place {
        let mut chats = self.lock();
        let line = chats.entry(chat.to_owned()).or_insert_with(|| Line {
            taken: 0,
            done: watch::channel(0).0,
        });
        let number = line.taken;
        line.taken += 1;
        Place {
            order: Arc::clone(self),
            chat: chat.to_owned(),
            number,
            done: line.done.subscribe(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Line>> {
        // Counters only; a poisoned map is still consistent enough.
        self.chats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Place {
    /// Whether every earlier message of the chat is done.
    pub fn is_next(&self) -> bool {
        *self.done.borrow() >= self.number
    }

    /// Waits until every earlier message of the chat is done.
    pub async fn wait(&mut self) {
        let number = self.number;
        // The sender lives in the map while any place of the line does.
        let _ = self.done.wait_for(|done| *done >= number).await;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut chats = self.order.lock();
        let Some(line) = chats.get_mut(&self.chat) else {
            return;
        };
        line.done.send_modify(|done| *done += 1);
        if *line.done.borrow() == line.taken {
            chats.remove(&self.chat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_slow_message_holds_up_its_own_chat_only() {
        let order = Arc::new(InOrder::default());
        let handed_on = Arc::new(Mutex::new(Vec::new()));
        let slow = order.take("chat-a");
        let after_slow = order.take("chat-a");
        let other_chat = order.take("chat-b");

        assert!(slow.is_next() && other_chat.is_next());
        assert!(!after_slow.is_next());
        let mut tasks = Vec::new();
        for (name, mut place, delay) in [
            ("slow photo", slow, 5),
            ("text after it", after_slow, 0),
            ("other chat", other_chat, 0),
        ] {
            let handed_on = handed_on.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                place.wait().await;
                handed_on.lock().unwrap().push(name);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }

        assert_eq!(
            *handed_on.lock().unwrap(),
            ["other chat", "slow photo", "text after it"]
        );
        assert!(order.lock().is_empty(), "idle lines are forgotten");
    }
}
