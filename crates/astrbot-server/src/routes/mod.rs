//! The router: every route in one place, the authentication layer in front
//! of them, and envelope answers for unknown paths and wrong methods.

mod account;
mod api_keys;
mod chat;
mod config_files;
mod dashboard;
mod login;
mod open_api;
mod openapi_doc;
mod provider_check;
mod providers;
pub(crate) mod python;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode, Uri};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::authenticate;
use crate::auth::middleware::{ATTACHMENT_PATH, OPENAPI_PATH};
use crate::json::Envelope;
use crate::state::AppState;

/// JSON bodies larger than this are refused (uploads have their own limit).
pub(crate) const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let open_api = Router::new()
        .route("/api/v1/im/bots", get(open_api::list_bots))
        .route("/api/v1/im/bots/status", get(open_api::bot_status))
        .route("/api/v1/im/message", post(open_api::send_message))
        .route("/api/v1/configs", get(open_api::list_configs))
        .route("/api/v1/chat", post(open_api::chat))
        .route("/api/v1/chat/sessions", get(open_api::list_sessions))
        .route(OPENAPI_PATH, get(openapi_doc::openapi_json))
        .route(
            "/api/v1/file",
            post(open_api::upload_file).layer(DefaultBodyLimit::disable()),
        );

    let admin = Router::new()
        .route("/api/auth/login", post(login::login))
        .route("/api/auth/account/edit", post(account::edit_account))
        .route("/api/platform/status", get(open_api::bot_status))
        .route("/api/apikey/list", get(api_keys::list_keys))
        .route("/api/apikey/create", post(api_keys::create_key))
        .route("/api/apikey/revoke", post(api_keys::revoke_key))
        .route("/api/apikey/delete", post(api_keys::delete_key))
        .route("/api/chat/send", post(chat::send))
        .route("/api/chat/sessions", get(chat::list_sessions))
        .route("/api/chat/history", get(chat::history))
        .route(
            "/api/chat/post_file",
            post(open_api::upload_file).layer(DefaultBodyLimit::disable()),
        )
        .route(ATTACHMENT_PATH, get(chat::get_attachment))
        .route("/api/config/providers", get(providers::list_providers))
        .route("/api/config/abconfs", get(config_files::list_configs))
        .route("/api/config/abconf", get(config_files::get_config))
        .route(
            "/api/config/provider/check_one",
            get(provider_check::check_one),
        )
        .route("/api/config/abconf/new", post(config_files::create_config))
        .route(
            "/api/config/abconf/update",
            post(config_files::rename_config),
        )
        .route(
            "/api/config/abconf/delete",
            post(config_files::delete_config),
        )
        .route(
            "/api/config/astrbot/update",
            post(config_files::save_config),
        );

    let dashboard = Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard/{file}", get(dashboard::asset));

    Router::new()
        .merge(dashboard)
        .merge(open_api)
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .layer(middleware::map_response(envelope_rejections))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// Bytes of a request's path that go into its log line: a client may send
/// paths of tens of KiB, which would otherwise be copied into every line.
const LOGGED_PATH_BYTES: usize = 512;

/// One line per request: method, path (never the query, which can carry
/// user names; a long path cut to [`LOGGED_PATH_BYTES`]), status and how
/// long the answer took to start.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = loggable_path(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        // Microseconds are enough, and `0.571` reads better than `0.5705779999999999`.
        duration_ms = %format_args!("{:.3}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    response
}

/// `path`, or its first [`LOGGED_PATH_BYTES`] bytes (to a character
/// boundary) followed by `…`.
fn loggable_path(path: &str) -> String {
    if path.len() <= LOGGED_PATH_BYTES {
        return path.to_owned();
    }
    let mut end = LOGGED_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

async fn not_found(uri: Uri) -> Envelope {
    Envelope::error_with_status(StatusCode::NOT_FOUND, format!("Not found: {}", uri.path()))
}

/// Extractor rejections (a body over the size limit, an unreadable query)
/// come from axum as plain text; clients get them in the envelope instead.
async fn envelope_rejections(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_error || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_owned()
    } else {
        text
    };
    Envelope::error_with_status(status, message).into_response()
}

async fn method_not_allowed() -> Envelope {
    Envelope::error_with_status(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_for_the_log_on_a_character_boundary() {
        assert_eq!(loggable_path("/api/v1/im/bots"), "/api/v1/im/bots");
        let exact = "a".repeat(LOGGED_PATH_BYTES);
        assert_eq!(loggable_path(&exact), exact);

        let long = format!("/{}", "b".repeat(60_000));
        let logged = loggable_path(&long);
        assert_eq!(logged, format!("{}…", &long[..LOGGED_PATH_BYTES]));

        // A two-byte character straddling the limit is left out whole.
        let straddling = format!("{}é{}", "c".repeat(LOGGED_PATH_BYTES - 1), "d".repeat(10));
        assert_eq!(
            loggable_path(&straddling),
            format!("{}…", "c".repeat(LOGGED_PATH_BYTES - 1))
        );
    }
}
