//! Integration tests: each real adapter against a local fake of its
//! service over 127.0.0.1, and the manager's supervision.

mod discord;
mod fake_discord;
mod fake_onebot;
mod fake_telegram;
mod manager;
mod onebot;
mod running;
mod slack;
mod telegram;

/// Waits (bounded) for a condition that another task makes true.
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + fake_onebot::WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
