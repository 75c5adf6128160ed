//! SIGHUP applies an edited default config file without a restart, as
//! long-running Unix services do: settings and providers for the next
//! turns, and the platform bots whose entries changed.

use astrbot_server::state::AppState;

/// Reloads the default config file on every SIGHUP for the life of the
/// process. A file that is invalid is logged and the running config kept.
pub fn reload_on_hangup(state: AppState) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match state.reload_default_config().await {
                    Ok(()) => tracing::info!("config file reloaded"),
                    Err(error) => tracing::error!(
                        %error,
                        "the config file was not reloaded; the running config stays"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = state;
    Ok(())
}
