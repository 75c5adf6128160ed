//! SIGHUP applies an edited default config file without a restart, as
//! long-running Unix services do: settings and providers for the next
//! turns, and the platform bots whose entries changed.

use astrbot_server::state::AppState;
use tokio::sync::watch;

use crate::shutdown::Asked;

/// SIGHUP, caught from here on: registered before the server starts, so
/// that one sent during start-up does not end the process (its default).
pub struct Hangups {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangups {
    pub fn listen() -> anyhow::Result<Hangups> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Hangups {
                signal: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Hangups {})
    }

    /// Reloads the default config file on every SIGHUP until a shutdown
    /// is asked for. A file that is invalid is logged and the running
    /// config kept.
    pub fn reload_config(self, state: AppState, asked: watch::Receiver<Asked>) {
        #[cfg(unix)]
        {
            let mut signal = self.signal;
            tokio::spawn(async move {
                while signal.recv().await.is_some() {
                    if *asked.borrow() != Asked::Nothing {
                        tracing::info!("SIGHUP ignored: the server is shutting down");
                        continue;
                    }
                    reload(&state).await;
                }
            });
        }
        #[cfg(not(unix))]
        let _ = (state, asked);
    }
}

async fn reload(state: &AppState) {
    match state.reload_default_config().await {
        Ok(providers) if providers.is_empty() => tracing::warn!(
            "config file reloaded, but it has no chat provider that works: chats get no answer"
        ),
        Ok(providers) => tracing::info!(?providers, "config file reloaded"),
        Err(error) => tracing::error!(
            %error,
            "the config file was not reloaded; the running config stays"
        ),
    }
}
