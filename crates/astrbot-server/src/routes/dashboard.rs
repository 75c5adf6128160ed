//! The web dashboard: plain HTML, CSS and JavaScript files embedded in the
//! binary and served from the same port as the API. `GET /` answers the
//! page; `GET /dashboard/<file>` its assets. The page asks for the assets
//! with `?v=<crate version>`, so they can be cached for long while an
//! upgrade still loads fresh copies; the page itself is never cached.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::json::Envelope;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");

/// The assets: name, content type, body.
const ASSETS: [(&str, &str, &str); 7] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/app.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/i18n.js"),
    ),
    (
        "markdown.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/markdown.js"),
    ),
    (
        "docs.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/docs.js"),
    ),
    (
        "providers.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/providers.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/chat.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard/app.css"),
    ),
];

/// Assets are versioned by the query string the page adds.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The page loads nothing from elsewhere and runs no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The version in the assets' query strings.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    let page = INDEX.replace("{{VERSION}}", VERSION);
    let mut response = respond(page, "text/html; charset=utf-8", "no-cache");
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// `GET /dashboard/{file}`: one embedded asset.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => respond(*body, content_type, ASSET_CACHE_CONTROL),
        None => Envelope::error_with_status(
            StatusCode::NOT_FOUND,
            format!("Not found: /dashboard/{file}"),
        )
        .into_response(),
    }
}

fn respond(body: impl IntoResponse, content_type: &str, cache_control: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_links_every_asset_with_the_version() {
        let page = INDEX.replace("{{VERSION}}", VERSION);
        for (name, _, body) in ASSETS {
            assert!(!body.is_empty());
            assert!(
                page.contains(&format!("/dashboard/{name}?v={VERSION}")),
                "{name} is not linked"
            );
        }
    }
}
