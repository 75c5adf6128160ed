//! Forward WebSocket: we connect to the OneBot implementation's own
//! WebSocket server (`ws_forward_url`), for setups where NapCat or Lagrange
//! listen and cannot reach us. A dropped connection is reopened with
//! backoff until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::server::pump;
use super::AiocqhttpAdapter;
use crate::adapter::{wait_for_shutdown, PlatformError};
use crate::message::InboundMessage;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

pub(super) async fn connect(
    adapter: Arc<AiocqhttpAdapter>,
    url: String,
    inbound: mpsc::Sender<InboundMessage>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PlatformError> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|error| PlatformError::Config(format!("ws_forward_url {url:?}: {error}")))?;
    if let Some(token) = adapter.config.token.as_deref() {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| PlatformError::Config("the access token is not a valid header".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    adapter.status.set_running(true);

    let mut retry = FIRST_RETRY;
    loop {
        let attempt = tokio::select! {
            attempt = tokio_tungstenite::connect_async(request.clone()) => attempt,
            _ = wait_for_shutdown(&mut shutdown) => break,
        };
        match attempt {
            Ok((socket, _)) => {
                retry = FIRST_RETRY;
                pump(&adapter, socket, &url, None, &inbound, &mut shutdown).await;
            }
            Err(error) => {
                // The URL is shown, never the token (it is a header).
                let message =
                    format!("cannot connect to the OneBot implementation at {url}: {error}");
                tracing::warn!(platform.id = %adapter.id, "{message}");
                adapter.status.set_error(message);
            }
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = wait_for_shutdown(&mut shutdown) => break,
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
    adapter.status.set_running(false);
    Ok(())
}
