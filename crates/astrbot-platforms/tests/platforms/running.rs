//! A real adapter running as the manager would run it: its `run` task, the
//! inbound channel it feeds, and the shutdown switch.

use std::sync::Arc;

use astrbot_platforms::{InboundMessage, PlatformAdapter, PlatformError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fake_onebot::WAIT;

pub struct Running<A> {
    pub adapter: Arc<A>,
    pub inbound: mpsc::Receiver<InboundMessage>,
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<Result<(), PlatformError>>,
}

/// Starts `adapter.run` in a task.
pub fn run<A: PlatformAdapter>(adapter: A) -> Running<A> {
    let adapter = Arc::new(adapter);
    let (sender, inbound) = mpsc::channel(16);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(adapter.clone().run(sender, shutdown));
    Running {
        adapter,
        inbound,
        stop,
        task,
    }
}

impl<A: PlatformAdapter> Running<A> {
    pub async fn next_inbound(&mut self) -> InboundMessage {
        tokio::time::timeout(WAIT, self.inbound.recv())
            .await
            .expect("no inbound message within the wait")
            .expect("inbound channel closed")
    }

    /// What `run` returned, waiting for it to end by itself.
    pub async fn result(self) -> Result<(), PlatformError> {
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("run did not end in time")
            .unwrap()
    }

    /// Shuts the adapter down and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let adapter = self.adapter.clone();
        assert_eq!(self.result().await, Ok(()));
        assert!(!adapter.status().running);
    }
}
