//! The bytes that end a run of plain text inside a JSON string: `"`, `\`
//! and the control characters, which JSON requires escaped.
//!
//! Reading a provider's chunks and writing SSE events both walk strings
//! that are nearly always plain, one per token. Eight bytes are checked at
//! a time here instead of one.
//!
//! Also here: mending the half surrogate pairs (`"\ud83d"`) that Python's
//! `json` module writes and serde_json refuses, for JSON that AstrBot
//! stored or a Python server streamed.

use serde::de::DeserializeOwned;

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);

/// Whether `byte` must be escaped in a JSON string.
#[inline]
fn needs_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// The index of the first byte of `bytes` that must be escaped in a JSON
/// string (`"`, `\` or a control character), if any.
///
/// Inlined: most strings are a few bytes long, and a call costs as much as
/// scanning them.
#[inline]
pub fn find_escape(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let marks = escape_marks(u64::from_le_bytes(word.try_into().ok()?));
        if marks != 0 {
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = &bytes[at..];
    tail.iter()
        .position(|&byte| needs_escape(byte))
        .map(|offset| at + offset)
}

/// Sets the high bit of the lowest byte of `word` (little-endian) that
/// needs an escape. Bits above it may be set too, as subtraction borrows
/// carry upward from it; the ones below it never are, so the lowest set
/// bit is exact.
#[inline]
fn escape_marks(word: u64) -> u64 {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    // A byte below 0x20 borrows when 0x20 is taken from it; a byte with
    // its high bit set (UTF-8 beyond ASCII) is masked out by `!word`.
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote | backslash | control) & HIGH_BITS
}

/// The JSON in `text` as `T`, read as Python reads it: each lone surrogate
/// escape as U+FFFD, and a key given twice as its last value (serde's
/// derived readers refuse it; a `Value` keeps the last one). The strict
/// parse comes first, so text that needs neither costs nothing more; any
/// other error is the strict parser's.
pub fn from_python_json<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    let error = match serde_json::from_str(text) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let mended = without_lone_surrogates(text);
    if let Some(mended) = &mended {
        if let Ok(value) = serde_json::from_str(mended) {
            return Ok(value);
        }
    }
    let text = mended.as_deref().unwrap_or(text);
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(T::deserialize)
        .map_err(|_| error)
}

/// `text` with every lone surrogate escape inside a string replaced by
/// `\ufffd`, or `None` when it has none. A high surrogate followed by a low
/// one is a pair and stays; anything else malformed is left for the parser
/// to report.
fn without_lone_surrogates(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut mended = String::new();
    let mut copied_to = 0;
    let mut in_string = false;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                in_string = !in_string;
                at += 1;
            }
            b'\\' if in_string => {
                let Some(unit) = escaped_unit(bytes, at) else {
                    // `\n`, `\"` and the like, or a malformed escape.
                    at += 2;
                    continue;
                };
                let is_pair = is_high(unit) && escaped_unit(bytes, at + 6).is_some_and(is_low);
                if is_pair {
                    at += 12;
                } else if is_high(unit) || is_low(unit) {
                    mended.push_str(&text[copied_to..at]);
                    mended.push_str("\\ufffd");
                    at += 6;
                    copied_to = at;
                } else {
                    at += 6;
                }
            }
            _ => at += 1,
        }
    }
    if copied_to == 0 {
        return None;
    }
    mended.push_str(&text[copied_to..]);
    Some(mended)
}

/// The UTF-16 unit of a `\uXXXX` escape starting at `at`.
fn escaped_unit(bytes: &[u8], at: usize) -> Option<u16> {
    let escape = bytes.get(at..at + 6)?;
    if !escape.starts_with(b"\\u") {
        return None;
    }
    let digits = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

fn is_high(unit: u16) -> bool {
    (0xD800..0xDC00).contains(&unit)
}

fn is_low(unit: u16) -> bool {
    (0xDC00..0xE000).contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn one_at_a_time(bytes: &[u8]) -> Option<usize> {
        bytes.iter().position(|&byte| needs_escape(byte))
    }

    #[test]
    fn finds_the_first_byte_to_escape_wherever_it_sits() {
        // Every byte value, at every position of strings up to 20 bytes
        // long, after plain ASCII, after multi-byte UTF-8, and followed by
        // bytes that would borrow in the word arithmetic.
        for len in 0..20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    for filler in [b'a', 0xe4, b'!', b'#', b'[', 0x7f] {
                        let mut bytes = vec![filler; len];
                        bytes[at] = byte;
                        for after in at + 1..len {
                            bytes[after] = [0x00, b'"', b'\\', 0x1f, 0x20, 0xff][after % 6];
                        }
                        assert_eq!(find_escape(&bytes), one_at_a_time(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn plain_text_has_nothing_to_escape() {
        assert_eq!(find_escape(b""), None);
        assert_eq!(find_escape("你好, world! 😀 ~ \x7f".as_bytes()), None);
        assert_eq!(find_escape(&[b'x'; 1000]), None);
        assert_eq!(find_escape("0123456789abcdef\"".as_bytes()), Some(16));
    }

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
            assert_eq!(from_python_json::<Value>(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn a_key_given_twice_reads_as_its_last_value() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Message {
            role: String,
            content: String,
        }
        let text = r#"{"role": "user", "content": "first", "content": "last \ud83d"}"#;
        assert!(
            serde_json::from_str::<Message>(text).is_err(),
            "serde refuses it"
        );
        assert_eq!(
            from_python_json::<Message>(text).unwrap(),
            Message {
                role: "user".into(),
                content: "last \u{fffd}".into()
            }
        );
        // Still refused: a field of the wrong type.
        assert!(from_python_json::<Message>(r#"{"role": 1, "content": "x"}"#).is_err());
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
            assert_eq!(from_python_json::<Value>(text).unwrap(), strict, "{text}");
        }
        let broken = [r#""\ud83"#, r#"{"a": \ud83d}"#, r#""\uzzzz""#, "[1,", ""];
        for text in broken {
            assert!(from_python_json::<Value>(text).is_err(), "{text}");
        }
    }
}
