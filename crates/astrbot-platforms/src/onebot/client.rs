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
    // NapCat also takes the token as `?access_token=`, and a URL may hold
    // a user and password: it is shown without either in logs, errors and
    // the bot's status.
    let shown = without_secrets(&url);
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
                    let message = closed_early(&url, &ended, adapter.config.token.as_deref());
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

/// `url` as it may be shown: without its query and its user and password,
/// which may hold a token.
fn without_secrets(url: &str) -> String {
    let shown = match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    };
    match user_part(&shown) {
        Some(user) => shown.replacen(&format!("{user}@"), "***@", 1),
        None => shown,
    }
}

/// The `user:password` before the host, if the URL has one.
fn user_part(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    authority.rsplit_once('@').map(|(user, _)| user)
}

/// What in `url` may be a secret: its query's values and its user and
/// password (short values are left, as cutting them would mangle text).
fn secrets_in(url: &str) -> Vec<String> {
    let query = url
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default();
    let values = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').map(|(_, value)| value));
    let user = user_part(url).into_iter().flat_map(|user| user.split(':'));
    values
        .chain(user)
        .filter(|secret| secret.len() >= 4)
        .map(str::to_owned)
        .collect()
}

/// The error for a connection the OneBot implementation closed before
/// sending anything, with its close code and reason. The reason may quote
/// the token we presented, from the config or from the URL, so every
/// secret is cut out.
fn closed_early(url: &str, ended: &Ended, token: Option<&str>) -> String {
    let how = match &ended.close {
        Some(close) => format!(
            "close code {}, reason {:?}",
            u16::from(close.code),
            close.reason.as_str()
        ),
        None => "without a close frame".to_owned(),
    };
    let shown = without_secrets(url);
    let mut message = format!(
        "the OneBot implementation at {shown} closed the connection before sending anything: {how}"
    );
    let token = token.filter(|token| !token.is_empty()).map(str::to_owned);
    let mut secrets: Vec<String> = token.into_iter().chain(secrets_in(url)).collect();
    // The longest first, so that no part of one is left behind.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    for secret in secrets {
        message = message.replace(&secret, "***");
    }
    message
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    use super::*;

    #[test]
    fn a_url_is_shown_without_its_query_or_password() {
        assert_eq!(
            without_secrets("ws://127.0.0.1:3001/?access_token=s3cret"),
            "ws://127.0.0.1:3001/?…"
        );
        assert_eq!(
            without_secrets("ws://admin:PWSECRET456@127.0.0.1:3001/x"),
            "ws://***@127.0.0.1:3001/x"
        );
        assert_eq!(
            without_secrets("ws://127.0.0.1:3001/"),
            "ws://127.0.0.1:3001/"
        );
    }

    #[test]
    fn a_close_reason_quoting_the_urls_token_is_cut_too() {
        let url = "ws://admin:PWSECRET456@127.0.0.1:3001/?access_token=QSECRET123";
        let refused = Ended {
            delivered: false,
            close: Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "invalid access_token QSECRET123 for admin:PWSECRET456".into(),
            }),
        };
        let message = closed_early(url, &refused, None);
        assert!(!message.contains("QSECRET123"), "{message}");
        assert!(!message.contains("PWSECRET456"), "{message}");
        assert!(
            message.contains("reason \"invalid access_token *** for ***:***\""),
            "{message}"
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
            "the OneBot implementation at ws://127.0.0.1:3001/?… closed the \
             connection before sending anything: close code 1008, reason \"bad token ***\""
        );
        let dropped = Ended {
            delivered: false,
            close: None,
        };
        assert!(closed_early(url, &dropped, None).ends_with(": without a close frame"));
    }
}
