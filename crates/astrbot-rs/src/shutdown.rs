//! Shutdown signals. The first Ctrl-C or SIGTERM starts a graceful stop;
//! a second one asks to hurry: chats still answering are stopped and saved
//! at once instead of at the end of the grace period.

use tokio::sync::watch;

/// What the signals asked for so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Asked {
    Nothing,
    Stop,
    Hurry,
}

/// Listens for Ctrl-C and SIGTERM for the life of the process and reports
/// the first two through the returned receiver.
pub fn watch_signals() -> anyhow::Result<watch::Receiver<Asked>> {
    let mut signals = Signals::listen()?;
    let (asked, receiver) = watch::channel(Asked::Nothing);
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("shutting down");
        let _ = asked.send(Asked::Stop);
        signals.next().await;
        tracing::warn!("a second signal: stopping the chats still answering now");
        let _ = asked.send(Asked::Hurry);
    });
    Ok(receiver)
}

/// Both signals, registered once, so that none that arrives between two
/// waits is missed.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn listen() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn listen() -> anyhow::Result<Signals> {
        Ok(Signals {})
    }

    #[cfg(unix)]
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
