//! Forward WebSocket: we connect to the OneBot implementation's own
//! WebSocket server (`ws_forward_url`), for setups where NapCat or Lagrange
//! listen and cannot reach us. A dropped connection is reopened with
//! backoff until shutdown. A connection closed before it delivered
//! anything counts as a failed attempt (that is how implementations refuse
//! a wrong token after the handshake), so its close reason becomes the
//! last error and the backoff keeps growing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::server::{pump, Ended};
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
    // NapCat also takes the token as `?access_token=`: the URL is shown
    // without its query in logs, errors and the bot's status.
    let shown = without_query(&url);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|error| PlatformError::Config(format!("ws_forward_url {shown:?}: {error}")))?;
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
                let ended = pump(&adapter, socket, &shown, None, &inbound, &mut shutdown).await;
                if ended.delivered {
                    retry = FIRST_RETRY;
                } else if !*shutdown.borrow() {
                    let message = closed_early(&shown, &ended, adapter.config.token.as_deref());
                    tracing::warn!(platform.id = %adapter.id, "{message}");
                    adapter.status.set_error(message);
                }
            }
            Err(error) => {
                // The URL is shown, never the token (it is a header).
                let message =
                    format!("cannot connect to the OneBot implementation at {shown}: {error}");
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

/// `url` as it may be shown: without its query, which may hold a token.
fn without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

/// The error for a connection the OneBot implementation closed before
/// sending anything, with its close code and reason. The reason may quote
/// the token we presented (and the URL may hold it in its query), so the
/// token is cut out.
fn closed_early(url: &str, ended: &Ended, token: Option<&str>) -> String {
    let how = match &ended.close {
        Some(close) => format!(
            "close code {}, reason {:?}",
            u16::from(close.code),
            close.reason.as_str()
        ),
        None => "without a close frame".to_owned(),
    };
    let message = format!(
        "the OneBot implementation at {url} closed the connection before sending anything: {how}"
    );
    match token.filter(|token| !token.is_empty()) {
        Some(token) => message.replace(token, "***"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    use super::*;

    #[test]
    fn a_url_is_shown_without_its_query() {
        assert_eq!(
            without_query("ws://127.0.0.1:3001/?access_token=s3cret"),
            "ws://127.0.0.1:3001/?…"
        );
        assert_eq!(
            without_query("ws://127.0.0.1:3001/"),
            "ws://127.0.0.1:3001/"
        );
    }

    #[test]
    fn an_early_close_names_code_and_reason_but_not_the_token() {
        let url = "ws://127.0.0.1:3001/?access_token=s3cret";
        let refused = Ended {
            delivered: false,
            close: Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "bad token s3cret".into(),
            }),
        };
        assert_eq!(
            closed_early(url, &refused, Some("s3cret")),
            "the OneBot implementation at ws://127.0.0.1:3001/?access_token=*** closed the \
             connection before sending anything: close code 1008, reason \"bad token ***\""
        );
        let dropped = Ended {
            delivered: false,
            close: None,
        };
        assert!(closed_early(url, &dropped, None).ends_with(": without a close frame"));
    }
}
