//! The authentication layer, one function in front of every route:
//! `/api/v1*` (a plain string prefix, as AstrBot checks it) needs an API key
//! with the path's scope, except the OpenAPI document; every other `/api*`
//! path except a few public ones needs the admin JWT.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api_key::{self, KeyIdentity};
use super::jwt::{self, TokenError};
use crate::json::Envelope;
use crate::state::AppState;

/// Admin routes AstrBot leaves open (prefix match).
const PUBLIC_ADMIN_PREFIXES: [&str; 5] = [
    "/api/auth/login",
    "/api/file",
    "/api/platform/webhook",
    "/api/stat/start-time",
    "/api/backup/download",
];

/// The one `/api/v1` path served without a key: the API's own
/// documentation. Every other `/api/v1` path stays deny-by-default.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The one admin path that also takes the JWT as `?token=…`: the chat
/// page previews attachments with `<img src>`, which cannot send headers.
pub const ATTACHMENT_PATH: &str = "/api/chat/get_attachment";

/// `last_used_at` is written at most this often per key, so that a busy
/// key does not turn every read into a database write.
const TOUCH_INTERVAL: Duration = Duration::from_secs(1);

/// The signed-in admin, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    pub username: String,
}

/// Applies API-key auth to `/api/v1*` paths and the JWT to other `/api*`
/// paths.
pub async fn authenticate(state: State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == OPENAPI_PATH {
        return next.run(request).await;
    }
    if path.starts_with("/api/v1") {
        authenticate_key(state, request, next).await
    } else {
        require_admin(state, request, next).await
    }
}

/// JWT check for the admin API; passes non-`/api` and public paths.
async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let protected = path.starts_with("/api")
        && !PUBLIC_ADMIN_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix));
    if !protected {
        return next.run(request).await;
    }
    let token = match request.headers().get("authorization") {
        Some(header) => {
            let token = header.to_str().unwrap_or_default();
            token.strip_prefix("Bearer ").unwrap_or(token).to_owned()
        }
        None => match query_token(&request) {
            Some(token) => token,
            None => {
                return Envelope::error_with_status(StatusCode::UNAUTHORIZED, "未授权")
                    .into_response()
            }
        },
    };
    let token = token.as_str();
    let secret = state.configs.default_config().dashboard().jwt_secret;
    match jwt::verify(&secret, token, chrono::Utc::now().timestamp()) {
        // Issued before the admin's password or name last changed (or in
        // that second: logins after it issue later, see `login`).
        Ok(verified) if verified.issued_at <= state.configs.admin_tokens_not_before() => {
            Envelope::error_with_status(StatusCode::UNAUTHORIZED, "Token 无效").into_response()
        }
        Ok(verified) => {
            let username = verified.username;
            request.extensions_mut().insert(AdminIdentity { username });
            next.run(request).await
        }
        Err(TokenError::Expired) => {
            Envelope::error_with_status(StatusCode::UNAUTHORIZED, "Token 过期").into_response()
        }
        Err(TokenError::Invalid) => {
            Envelope::error_with_status(StatusCode::UNAUTHORIZED, "Token 无效").into_response()
        }
    }
}

/// `?token=…`, on [`ATTACHMENT_PATH`] only.
fn query_token(request: &Request) -> Option<String> {
    if request.uri().path() != ATTACHMENT_PATH {
        return None;
    }
    let Query(query) = Query::<HashMap<String, String>>::try_from_uri(request.uri()).ok()?;
    query
        .get("token")
        .filter(|token| !token.is_empty())
        .cloned()
}

async fn authenticate_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(key) = key_from_headers(request.headers()) else {
        return Envelope::error_with_status(StatusCode::UNAUTHORIZED, "Missing API key")
            .into_response();
    };
    let record = match state.find_active_key(&key).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return Envelope::error_with_status(StatusCode::UNAUTHORIZED, "Invalid API key")
                .into_response()
        }
        Err(error) => {
            tracing::error!(%error, "API key lookup failed");
            return Envelope::error_with_status(
                StatusCode::SERVICE_UNAVAILABLE,
                "The key store is unavailable, try again",
            )
            .into_response();
        }
    };

    let path = request.uri().path();
    let Some(scope) = api_key::required_scope(path) else {
        return Envelope::error_with_status(StatusCode::NOT_FOUND, format!("Not found: {path}"))
            .into_response();
    };
    if !api_key::grants(record.scopes.as_deref(), scope) {
        return Envelope::error_with_status(StatusCode::FORBIDDEN, "Insufficient API key scope")
            .into_response();
    }

    let now = astrbot_core::time::now();
    let stale = record.last_used_at.is_none_or(|last| {
        now - last >= chrono::Duration::from_std(TOUCH_INTERVAL).unwrap_or_default()
    });
    if stale && state.touch_pause.allows(std::time::Instant::now()) {
        if let Err(error) = state.store.touch_api_key(&record.key_id, now).await {
            tracing::warn!(
                api_key.id = %record.key_id,
                %error,
                "could not record key use; not trying again for a while"
            );
            state.touch_pause.pause(std::time::Instant::now());
        }
    }

    request.extensions_mut().insert(KeyIdentity {
        key_id: record.key_id,
        scopes: record
            .scopes
            .unwrap_or_else(|| api_key::ALL_SCOPES.map(str::to_owned).to_vec()),
    });
    next.run(request).await
}

/// The key from `X-API-Key`, else `Authorization: Bearer …` or
/// `Authorization: ApiKey …`, trimmed; empty values count as absent.
/// Header bytes are read as Latin-1, as Werkzeug reads them, so a value
/// that is not ASCII is a key that matches none, not a missing one.
fn key_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(key) = header_text(headers, "x-api-key") {
        return Some(key.into_owned());
    }
    let authorization = header_text(headers, "authorization")?;
    let key = authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("ApiKey "))?
        .trim();
    (!key.is_empty()).then(|| key.to_owned())
}

/// A header's value, trimmed, as Werkzeug reads it (Latin-1); `None` when
/// absent or empty. Nearly every value is ASCII and is read in place.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    let value = headers.get(name)?;
    let text = match value.to_str() {
        Ok(ascii) => Cow::Borrowed(ascii.trim()),
        Err(_) => {
            let latin1: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
            Cow::Owned(latin1.trim().to_owned())
        }
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn key_carriers_in_astrbot_order() {
        assert_eq!(
            key_from_headers(&headers(&[("x-api-key", " k ")])),
            Some("k".into())
        );
        assert_eq!(
            key_from_headers(&headers(&[
                ("x-api-key", ""),
                ("authorization", "Bearer b")
            ])),
            Some("b".into())
        );
        assert_eq!(
            key_from_headers(&headers(&[("authorization", "ApiKey  a ")])),
            Some("a".into())
        );
        assert_eq!(
            key_from_headers(&headers(&[("authorization", "bearer b")])),
            None
        );
        assert_eq!(
            key_from_headers(&headers(&[("authorization", "Basic b")])),
            None
        );
        assert_eq!(
            key_from_headers(&headers(&[("authorization", "Bearer  ")])),
            None
        );
    }

    #[test]
    fn a_key_that_is_not_ascii_is_read_not_dropped() {
        let mut map = HeaderMap::new();
        let latin1 = axum::http::HeaderValue::from_bytes(b"abk_caf\xe9").unwrap();
        map.insert("x-api-key", latin1);

        assert_eq!(key_from_headers(&map), Some("abk_caf\u{e9}".into()));
    }
}
