//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the developer
//! API, built into the binary. It is documentation, so the auth layer lets
//! it through without a key; it is the only raw-JSON (non-envelope) answer
//! because OpenAPI tools expect the document itself.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const DOCUMENT: &str = include_str!("../../assets/openapi.json");

/// The document only changes with the binary; an hour keeps the docs page
/// fast without pinning a stale copy after an upgrade for long.
const CACHE_CONTROL: &str = "public, max-age=3600";

pub async fn openapi_json() -> Response {
    let mut response = DOCUMENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::middleware::OPENAPI_PATH;

    #[test]
    fn document_is_openapi_json_listing_itself() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert!(document["paths"][OPENAPI_PATH]["get"].is_object());
    }
}
