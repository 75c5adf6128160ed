//! CQ codes: OneBot v11's string message format, e.g.
//! `hi [CQ:at,qq=123] [CQ:image,file=a.jpg]`, turned into the same
//! `{"type", "data"}` segments as the array format so one parser serves
//! both.

use serde_json::{json, Map, Value};

/// Splits a CQ-code string into segments. A `[CQ:` without its closing
/// `]` is kept as text, like the implementations do.
pub fn parse(message: &str) -> Vec<Value> {
    let mut segments = Vec::new();
    let mut rest = message;
    while let Some(start) = rest.find("[CQ:") {
        let Some(length) = rest[start..].find(']') else {
            break;
        };
        push_text(&mut segments, &rest[..start]);
        let inner = &rest[start + 4..start + length];
        let mut fields = inner.split(',');
        let kind = fields.next().unwrap_or_default().trim();
        let mut data = Map::new();
        for field in fields {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            if !key.is_empty() {
                data.insert(key.to_owned(), Value::String(unescape(value)));
            }
        }
        segments.push(json!({"type": kind, "data": data}));
        rest = &rest[start + length + 1..];
    }
    push_text(&mut segments, rest);
    segments
}

fn push_text(segments: &mut Vec<Value>, raw: &str) {
    if !raw.is_empty() {
        segments.push(json!({"type": "text", "data": {"text": unescape(raw)}}));
    }
}

/// Undoes CQ escaping. `&amp;` goes last so an escaped `&#91;` (written
/// `&amp;#91;`) comes back as the literal text `&#91;`.
pub fn unescape(text: &str) -> String {
    text.replace("&#44;", ",")
        .replace("&#91;", "[")
        .replace("&#93;", "]")
        .replace("&amp;", "&")
}

/// Escapes text for a CQ string; `in_param` also escapes `,`.
pub fn escape(text: &str, in_param: bool) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('[', "&#91;")
        .replace(']', "&#93;");
    if in_param {
        escaped.replace(',', "&#44;")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_codes_interleave() {
        let segments =
            parse("hi [CQ:at,qq=123] look[CQ:image,file=a.jpg,url=http://x/a.jpg?a=1&amp;b=2]");
        assert_eq!(
            segments,
            vec![
                json!({"type": "text", "data": {"text": "hi "}}),
                json!({"type": "at", "data": {"qq": "123"}}),
                json!({"type": "text", "data": {"text": " look"}}),
                json!({"type": "image", "data": {"file": "a.jpg", "url": "http://x/a.jpg?a=1&b=2"}}),
            ]
        );
    }

    #[test]
    fn escapes_are_undone() {
        let segments = parse("&#91;not code&#93; &amp;#91; [CQ:text,text=a&#44;b&#93;]");
        assert_eq!(
            segments,
            vec![
                json!({"type": "text", "data": {"text": "[not code] &#91; "}}),
                json!({"type": "text", "data": {"text": "a,b]"}}),
            ]
        );
    }

    #[test]
    fn unclosed_code_is_text_and_empty_is_nothing() {
        assert_eq!(
            parse("a [CQ:at,qq=1"),
            vec![json!({"type": "text", "data": {"text": "a [CQ:at,qq=1"}})]
        );
        assert!(parse("").is_empty());
        assert_eq!(
            parse("[CQ:face,id=1][CQ:at,qq=all]"),
            vec![
                json!({"type": "face", "data": {"id": "1"}}),
                json!({"type": "at", "data": {"qq": "all"}}),
            ]
        );
    }

    #[test]
    fn escape_round_trips() {
        let text = "a,[b]&c";
        assert_eq!(unescape(&escape(text, true)), text);
        assert_eq!(escape(text, false), "a,&#91;b&#93;&amp;c");
    }
}
