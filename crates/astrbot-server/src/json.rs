//! JSON on AstrBot's wire: the `{status, message, data}` envelope, written
//! compact with non-ASCII `\u`-escaped as AstrBot's server does, and the
//! SSE payload format with Python's `", "` / `": "` separators and raw UTF-8.

use std::io;

use astrbot_core::json_text::find_escape;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::{json, Value};

/// An envelope response. Business errors are HTTP 200 like AstrBot's; only
/// authentication (401/403) and transport limits use other codes.
#[derive(Debug, Clone)]
pub struct Envelope {
    status: StatusCode,
    body: Value,
}

impl Envelope {
    /// `{"status":"ok","message":null,"data":data}`.
    pub fn ok(data: Value) -> Self {
        Envelope::ok_with_message(data, None)
    }

    /// Success with a message, as AstrBot's config endpoints answer.
    pub fn ok_with_message(data: Value, message: Option<&str>) -> Self {
        let data = if data.is_null() { json!({}) } else { data };
        Envelope {
            status: StatusCode::OK,
            body: json!({"status": "ok", "message": message, "data": data}),
        }
    }

    /// `{"status":"error","message":message,"data":null}` with HTTP 200.
    pub fn error(message: impl Into<String>) -> Self {
        Envelope::error_with_status(StatusCode::OK, message)
    }

    pub fn error_with_status(status: StatusCode, message: impl Into<String>) -> Self {
        Envelope {
            status,
            body: json!({"status": "error", "message": message.into(), "data": null}),
        }
    }

    /// The response to a request whose body was refused before it was read
    /// whole: the rest of the body is still on the connection, so the
    /// connection cannot carry another request, and the client is told so.
    pub fn closing_connection(self) -> Response {
        let mut response = self.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// A successful answer with one more field in its `data` object.
    pub fn with_data_field(mut self, key: &str, value: Value) -> Self {
        if let Some(data) = self.body.get_mut("data").and_then(Value::as_object_mut) {
            data.insert(key.to_owned(), value);
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> &Value {
        &self.body
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let mut response = (self.status, to_ascii_json(&self.body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Compact JSON with every non-ASCII character `\u`-escaped (surrogate pairs
/// for characters outside the BMP), byte for byte what Python's
/// `json.dumps(ensure_ascii=True, separators=(",", ":"))` prints.
pub fn to_ascii_json(value: &impl Serialize) -> String {
    write_with(value, AsciiCompact)
}

/// JSON as Python's `json.dumps(ensure_ascii=False)` prints it: `", "` and
/// `": "` separators, raw UTF-8. AstrBot's SSE events look like this.
pub fn to_python_json(value: &impl Serialize) -> String {
    write_with(value, PythonSpaced)
}

/// [`to_python_json`] appended to `out`, without a string of its own.
pub fn write_python_json(out: &mut Vec<u8>, value: &impl Serialize) {
    append_with(out, value, PythonSpaced);
}

/// `text` as a JSON string literal appended to `out`, escaped as both
/// serde_json and Python's `json.dumps(ensure_ascii=False)` escape it:
/// `\"`, `\\`, `\b \f \n \r \t`, any other control character as `\u00xx`,
/// everything else raw. For writers that build an event's JSON by hand.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut rest = text.as_bytes();
    while let Some(at) = find_escape(rest) {
        out.extend_from_slice(&rest[..at]);
        push_escape(out, rest[at]);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            let (high, low) = (HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0x0f)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

fn write_with(value: &impl Serialize, formatter: impl Formatter) -> String {
    let mut out = Vec::with_capacity(128);
    append_with(&mut out, value, formatter);
    // The formatters write whole UTF-8 strings and ASCII escapes.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `value`'s JSON to `out`, or `null` if it cannot be serialised
/// (serialising a `Value` or a plain struct into memory cannot fail).
fn append_with(out: &mut Vec<u8>, value: &impl Serialize, formatter: impl Formatter) {
    let start = out.len();
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    if value.serialize(&mut serializer).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

struct AsciiCompact;

impl Formatter for AsciiCompact {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for ch in fragment.chars() {
            if ch.is_ascii() {
                writer.write_all(&[ch as u8])?;
            } else {
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

struct PythonSpaced;

impl Formatter for PythonSpaced {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keeps_astrbot_key_order_and_escapes_non_ascii() {
        let body = Envelope::error("用户名或密码错误").body().clone();
        assert_eq!(
            to_ascii_json(&body),
            r#"{"status":"error","message":"\u7528\u6237\u540d\u6216\u5bc6\u7801\u9519\u8bef","data":null}"#
        );
        assert_eq!(
            to_ascii_json(&json!({"e": "😀"})),
            r#"{"e":"\ud83d\ude00"}"#
        );
    }

    #[test]
    fn strings_written_by_hand_are_escaped_as_serde_escapes_them() {
        let mut texts: Vec<String> = (0..=0x7f_u8)
            .map(|byte| char::from(byte).to_string())
            .collect();
        texts.extend(
            [
                "",
                "plain token ",
                "你好 😀 \u{7f}\u{80}\u{2028}",
                "a\"quoted\" \\path\\ line\nbreak\ttab\r\u{8}\u{c}\u{0}\u{1f}end",
                "\"\"\"\"\"\"\"\"\"",
                "0123456789abcdef0123456789\n",
            ]
            .map(str::to_owned),
        );
        for text in texts {
            let mut out = Vec::new();
            write_json_str(&mut out, &text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn sse_payloads_use_python_separators_and_raw_utf8() {
        let event = json!({"type": "plain", "data": "你好", "list": [1, 2]});
        assert_eq!(
            to_python_json(&event),
            r#"{"type": "plain", "data": "你好", "list": [1, 2]}"#
        );
    }
}
