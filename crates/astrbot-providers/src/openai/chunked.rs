//! The chunked transfer coding of HTTP/1.1 bodies, decoded in place.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size line accepted (the size and any extensions).
const MAX_SIZE_LINE: usize = 1024;

/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is in the body.
#[derive(Debug, Default)]
pub(super) struct Chunked {
    state: State,
    trailer_bytes: usize,
}

#[derive(Debug, Default)]
enum State {
    /// Before a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, with this much left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last (empty) chunk: trailer lines up to a blank one.
    Trailers,
    Finished,
}

/// What one call to [`Chunked::decode`] found.
pub(super) struct Decoded {
    /// The data of every chunk that has arrived, joined.
    pub data: Bytes,
    /// The body's end was seen.
    pub finished: bool,
}

impl Chunked {
    /// Decodes as much of `buffer` as has arrived, removing what it used.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> io::Result<Decoded> {
        let mut data = BytesMut::new();
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(buffer, MAX_SIZE_LINE, "a chunk size")? else {
                        break;
                    };
                    let size = parse_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buffer.is_empty() {
                        break;
                    }
                    let take = buffer
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    if data.is_empty() {
                        // One chunk per read is the usual case: no copy.
                        data = buffer.split_to(take);
                    } else {
                        data.extend_from_slice(&buffer[..take]);
                        buffer.advance(take);
                    }
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    if buffer.len() < 2 {
                        break;
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(invalid("a chunk is longer than its size"));
                    }
                    buffer.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(line) = take_line(buffer, MAX_TRAILERS, "the trailers")? else {
                        break;
                    };
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(invalid("the trailers are too long"));
                    }
                    if line.is_empty() {
                        self.state = State::Finished;
                    }
                }
                State::Finished => break,
            }
        }
        Ok(Decoded {
            data: data.freeze(),
            finished: matches!(self.state, State::Finished),
        })
    }
}

/// Takes one CRLF-terminated line off the front of `buffer`, without its
/// CRLF; `None` while it has not all arrived.
fn take_line(buffer: &mut BytesMut, limit: usize, what: &str) -> io::Result<Option<BytesMut>> {
    match buffer.iter().position(|&byte| byte == b'\n') {
        Some(end) => {
            let mut line = buffer.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            Ok(Some(line))
        }
        None if buffer.len() > limit => Err(invalid(&format!("{what} line is too long"))),
        None => Ok(None),
    }
}

/// A chunk-size line: hexadecimal digits, then optional `;extensions`.
fn parse_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&byte| byte == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).unwrap_or_default().trim();
    if digits.is_empty() {
        return Err(invalid("an empty chunk size"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| invalid("an invalid chunk size"))
}

/// An error for an answer that breaks HTTP's framing.
pub(super) fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to a decoder in pieces of `step` bytes.
    fn decode_in_pieces(wire: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut decoder = Chunked::default();
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        let mut finished = false;
        for piece in wire.chunks(step) {
            buffer.extend_from_slice(piece);
            let decoded = decoder.decode(&mut buffer).unwrap();
            body.extend_from_slice(&decoded.data);
            finished = decoded.finished;
        }
        (body, finished)
    }

    #[test]
    fn a_body_decodes_alike_whatever_pieces_it_arrives_in() {
        let wire = b"5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..wire.len() {
            let (body, finished) = decode_in_pieces(wire, step);
            assert_eq!(body, b"hello, world", "in pieces of {step}");
            assert!(finished, "in pieces of {step}");
        }
    }

    #[test]
    fn a_body_without_its_last_chunk_is_not_finished() {
        let (body, finished) = decode_in_pieces(b"3\r\nabc\r\n", 4);
        assert_eq!(body, b"abc");
        assert!(!finished);
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for wire in [
            &b"zz\r\n"[..],
            b"3\r\nabcd\r\n",
            b"\r\n",
            b"ffffffffffffffffff\r\n",
        ] {
            let mut buffer = BytesMut::from(wire);
            assert!(
                Chunked::default().decode(&mut buffer).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn an_endless_size_line_is_refused() {
        let mut buffer = BytesMut::from(&[b'1'; MAX_SIZE_LINE + 1][..]);
        assert!(Chunked::default().decode(&mut buffer).is_err());
    }
}
