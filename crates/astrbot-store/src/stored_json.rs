//! Reading JSON columns as Python writes them.
//!
//! AstrBot stores JSON with Python's `json` module, which accepts and
//! writes a lone UTF-16 surrogate escape: `"\ud83d"`, half of an emoji that
//! a client or a platform cut in two. serde_json, like Unicode, refuses
//! it, which would make a whole stored conversation or history turn
//! unreadable for one broken character. Such a value is read with each lone
//! surrogate taken as U+FFFD, the replacement character.

use astrbot_core::json_text;
use serde_json::Value;

/// The JSON value in `text`, with lone surrogate escapes read as U+FFFD.
/// Any other error is the strict parser's.
pub(crate) fn parse(text: &str) -> serde_json::Result<Value> {
    let error = match serde_json::from_str(text) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    match json_text::without_lone_surrogates(text) {
        Some(mended) => serde_json::from_str(&mended).map_err(|_| error),
        None => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lone_surrogate_reads_as_the_replacement_character() {
        let cases = [
            (r#""cut \ud83d""#, json!("cut \u{fffd}")),
            (r#""\ude00 low first""#, json!("\u{fffd} low first")),
            (r#""\uD83D\uD83D""#, json!("\u{fffd}\u{fffd}")),
            (
                r#""pair \ud83d\ude00 then \ud83d""#,
                json!("pair 😀 then \u{fffd}"),
            ),
            (
                r#"[{"role": "user", "content": "x\ud83d"}, {"k\udfff": 1}]"#,
                json!([{"role": "user", "content": "x\u{fffd}"}, {"k\u{fffd}": 1}]),
            ),
        ];
        for (text, expected) in cases {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert_eq!(parse(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn everything_else_reads_as_serde_json_reads_it() {
        let valid = [
            r#""plain, é, 😀, \ud83d\ude00""#,
            r#""an escaped backslash before u: \\ud83d""#,
            r#"{"a": "\"\\ud800\"", "b": [1, 2.5, null, true]}"#,
            r#""\u00e9\n\t""#,
        ];
        for text in valid {
            let strict: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse(text).unwrap(), strict, "{text}");
        }
        let broken = [r#""\ud83"#, r#"{"a": \ud83d}"#, r#""\uzzzz""#, "[1,", ""];
        for text in broken {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
