//! The bytes that end a run of plain text inside a JSON string: `"`, `\`
//! and the control characters, which JSON requires escaped.
//!
//! Reading a provider's chunks and writing SSE events both walk strings
//! that are nearly always plain, one per token. Eight bytes are checked at
//! a time here instead of one.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
