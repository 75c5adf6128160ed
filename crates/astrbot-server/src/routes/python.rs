//! Python's conversions as AstrBot applies them to request values (`str()`,
//! `int()`, truthiness), so that edge cases answer the way they do there.

use std::collections::HashMap;
use std::convert::Infallible;

use astrbot_core::json_text::from_python_json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::MAX_JSON_BODY_BYTES;
use crate::json::Envelope;

/// What Python's `json.loads` skips at the start of a body given as bytes.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A request's query parameters as Werkzeug's `request.args.get` reads
/// them: percent-decoded (invalid UTF-8 replaced), `+` as a space, and the
/// first value of a parameter given twice.
pub struct PythonQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PythonQuery {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let mut parameters = HashMap::new();
        let query = parts.uri.query().unwrap_or_default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            parameters
                .entry(name.into_owned())
                .or_insert_with(|| value.into_owned());
        }
        Ok(PythonQuery(parameters))
    }
}

/// A request's JSON body, read as AstrBot's handlers read it
/// (`request.json or {}`); see [`object_body`].
pub struct PythonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for PythonBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        // Refused before a byte of it is read (or `100 Continue` invites
        // it): a client that said the body is too large is told at once.
        if declared_length(&request).is_some_and(|length| length > MAX_JSON_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(unread_body)?;
        object_body(&bytes)
            .map(PythonBody)
            .map_err(IntoResponse::into_response)
    }
}

/// A body that could not be read whole, in the API's envelope: one over
/// the size limit, or one the client stopped sending.
fn unread_body(rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large();
    }
    Envelope::error_with_status(rejection.status(), rejection.body_text()).closing_connection()
}

fn too_large() -> Response {
    let message = format!(
        "Request body is larger than {} MiB",
        MAX_JSON_BODY_BYTES >> 20
    );
    Envelope::error_with_status(StatusCode::PAYLOAD_TOO_LARGE, message).closing_connection()
}

/// The body's length as its `Content-Length` header gives it.
pub fn declared_length(request: &Request) -> Option<u64> {
    let length = request.headers().get(axum::http::header::CONTENT_LENGTH)?;
    length.to_str().ok()?.trim().parse().ok()
}

/// The request body as a JSON object. An empty body, and JSON that Python
/// counts as false (`null`, `0`, `""`, `[]`), read as `{}`, like AstrBot's
/// `request.json or {}`. A body that is not JSON is refused with HTTP 400,
/// as AstrBot's framework refuses it, and so is JSON that is no object
/// (AstrBot fails on it): read as `{}` it would take every default, and
/// for a new API key that means every scope and no expiry.
pub fn object_body(body: &[u8]) -> Result<Map<String, Value>, Envelope> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let not_json =
        || Envelope::error_with_status(StatusCode::BAD_REQUEST, "Request body is not valid JSON");
    let text = std::str::from_utf8(body).map_err(|_| not_json())?;
    match from_python_json::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(value) if !truthy(&value) => Ok(Map::new()),
        Ok(_) => Err(Envelope::error_with_status(
            StatusCode::BAD_REQUEST,
            "Request body must be a JSON object",
        )),
        Err(_) => Err(not_json()),
    }
}

/// Whether a body is absent or unusable: AstrBot's admin handlers answer
/// such bodies with "缺少配置数据".
pub fn is_empty_body(body: &Map<String, Value>) -> bool {
    body.is_empty()
}

/// Python's `str(value)` for JSON values.
pub fn to_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

/// Python's `int(value)`: integers, truncated floats, booleans, and strings
/// of an integer with surrounding whitespace, an optional sign and `_`
/// digit separators. Python's integers have no bounds; one past `i64`'s
/// reads as `i64::MAX` (or `MIN`), which every caller's range refuses or
/// clamps as it would the exact value.
pub fn to_int(value: &Value) -> Option<i64> {
    match value {
        Value::Bool(flag) => Some(i64::from(*flag)),
        Value::Number(number) => number.as_i64().or_else(|| {
            let float = number.as_f64()?;
            // `as` saturates at the bounds.
            float.is_finite().then_some(float.trunc() as i64)
        }),
        Value::String(text) => parse_int(text),
        _ => None,
    }
}

/// Python's `int(str)`.
pub fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !valid {
        return None;
    }
    let digits = digits.replace('_', "");
    let number = digits.parse::<i64>().unwrap_or(i64::MAX);
    Some(if sign < 0 {
        number.saturating_neg()
    } else {
        number
    })
}

/// Python truthiness.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_conversion_follows_python() {
        assert_eq!(to_int(&json!(7)), Some(7));
        assert_eq!(to_int(&json!(7.9)), Some(7));
        assert_eq!(to_int(&json!(true)), Some(1));
        assert_eq!(to_int(&json!(" 7 ")), Some(7));
        assert_eq!(to_int(&json!("-3")), Some(-3));
        assert_eq!(to_int(&json!("1_000")), Some(1000));
        assert_eq!(to_int(&json!("1.5")), None);
        assert_eq!(to_int(&json!("abc")), None);
        assert_eq!(to_int(&json!("")), None);
        assert_eq!(to_int(&json!([1])), None);
        // Past i64, as far as any caller can tell.
        assert_eq!(to_int(&json!(1e20)), Some(i64::MAX));
        assert_eq!(to_int(&json!(-1e20)), Some(i64::MIN));
        assert_eq!(to_int(&json!("99999999999999999999999")), Some(i64::MAX));
        assert_eq!(to_int(&json!("-99999999999999999999999")), Some(-i64::MAX));
    }

    #[test]
    fn str_and_truthiness_follow_python() {
        assert_eq!(to_str(&json!(null)), "None");
        assert_eq!(to_str(&json!(12)), "12");
        assert_eq!(to_str(&json!(false)), "False");
        assert!(!truthy(&json!("")));
        assert!(!truthy(&json!(0)));
        assert!(truthy(&json!("false")));
        assert!(truthy(&json!([0])));
    }

    #[test]
    fn bodies_read_as_astrbot_reads_them_and_refuse_what_is_not_json() {
        let read = |body: &[u8]| object_body(body).map_err(|refused| refused.body().clone());
        let name = |body: &[u8]| read(body).unwrap()["name"].clone();

        assert_eq!(name(br#"{"name": "a"}"#), "a");
        assert_eq!(name(b"\xEF\xBB\xBF{\"name\": \"bom\"}"), "bom");
        assert_eq!(name(br#"{"name": "\ud800"}"#), "\u{fffd}");
        for empty in [&b""[..], b"  \n", b"null", b"[]", b"0", b"\"\"", b"false"] {
            assert_eq!(read(empty), Ok(Map::new()), "{empty:?}");
        }

        let refused = |body: &[u8]| read(body).unwrap_err()["message"].clone();
        for broken in [
            &br#"{"name": "a",}"#[..],
            b"{",
            b"\xFF",
            b"name=a",
            b"1e400",
        ] {
            assert_eq!(
                refused(broken),
                "Request body is not valid JSON",
                "{broken:?}"
            );
        }
        for other in [&b"[1]"[..], b"5", b"\"text\"", b"true"] {
            assert_eq!(
                refused(other),
                "Request body must be a JSON object",
                "{other:?}"
            );
        }
        assert_eq!(
            object_body(b"{").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
