//! An incremental parser for `text/event-stream` bodies: bytes in, the
//! `data` payloads of complete events out.
//!
//! Network chunks split lines anywhere (even inside a UTF-8 character), so
//! bytes are buffered until a full line is available. Lines end in LF or
//! CRLF; a lone CR is not treated as a line end, since no chat API sends it.

/// Collects lines into events and hands out each event's data.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    /// `data` lines of the event being read, joined by `\n` as the SSE spec
    /// says.
    data: String,
    has_data: bool,
    /// `data` lines read so far: see [`SseParser::data_lines`].
    data_lines: u64,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and hands the data of every event they completed to
    /// `on_event`, in order. The data is lent, not returned: a fast stream
    /// carries one event per token, and this way none of them allocates.
    pub fn push(&mut self, bytes: &[u8], on_event: &mut impl FnMut(&str)) {
        let mut rest = bytes;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (line, after) = rest.split_at(end);
            rest = &after[1..];
            if self.partial.is_empty() {
                self.line(line, on_event);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, on_event);
                // Keep the buffer's memory for the next split line.
                whole.clear();
                self.partial = whole;
            }
        }
        self.partial.extend_from_slice(rest);
    }

    /// How many `data` lines have been read: it grows only with the
    /// answer itself, not with comments, blank lines or other fields,
    /// however a provider cuts them into pieces.
    pub fn data_lines(&self) -> u64 {
        self.data_lines
    }

    /// Bytes held for an event that has not ended yet.
    pub fn pending_bytes(&self) -> usize {
        self.partial.len() + self.data.len()
    }

    /// Ends the body: an unterminated last line and an event without its
    /// closing blank line still count, to be lenient with servers that
    /// close the connection right after the last `data:` line.
    pub fn finish(&mut self, on_event: &mut impl FnMut(&str)) {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last, on_event);
        }
        self.dispatch(on_event);
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(&str)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            // A comment, e.g. OpenRouter's `: OPENROUTER PROCESSING` keep-alive.
            return;
        }
        // The field name is found on the bytes (`:` never sits inside a
        // UTF-8 sequence), and only a `data` value is checked as UTF-8:
        // the other fields carry nothing a chat completion needs.
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field != b"data" {
            return;
        }
        self.data_lines += 1;
        if self.has_data {
            self.data.push('\n');
        }
        // Valid UTF-8 (nearly always) is checked by the fast validator;
        // only a broken value pays for the replacement characters.
        match std::str::from_utf8(value) {
            Ok(value) => self.data.push_str(value),
            Err(_) => self.data.push_str(&String::from_utf8_lossy(value)),
        }
        self.has_data = true;
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(&str)) {
        if self.has_data {
            on_event(&self.data);
            self.data.clear();
            self.has_data = false;
        }
    }
}

/// Whether an event's data is OpenAI's end-of-stream marker.
pub fn is_done(data: &str) -> bool {
    // Every other event is a JSON object: its first character already
    // tells, without trimming its end too.
    data.trim_start().starts_with("[DONE]") && data.trim() == "[DONE]"
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SseParser {
        fn push_all(&mut self, bytes: &[u8]) -> Vec<String> {
            let mut events = Vec::new();
            self.push(bytes, &mut |data| events.push(data.to_owned()));
            events
        }

        fn finish_all(&mut self) -> Option<String> {
            let mut events = Vec::new();
            self.finish(&mut |data| events.push(data.to_owned()));
            assert!(events.len() <= 1, "finish ends at most one event");
            events.pop()
        }
    }

    #[test]
    fn whole_events_in_one_chunk() {
        let mut parser = SseParser::new();
        let events = parser.push_all(b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(events, vec!["{\"a\":1}", "[DONE]"]);
        assert!(is_done(&events[1]));
        assert_eq!(parser.finish_all(), None);
    }

    #[test]
    fn lines_split_across_chunks() {
        let body = "data: {\"content\":\"héllo\"}\n\ndata: {\"b\":2}\n\n";
        // Every split point, including inside the two-byte `é`.
        for split in 0..body.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push_all(&body.as_bytes()[..split]);
            events.extend(parser.push_all(&body.as_bytes()[split..]));
            assert_eq!(
                events,
                vec!["{\"content\":\"héllo\"}", "{\"b\":2}"],
                "split at {split}"
            );
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut parser = SseParser::new();
        let events = parser.push_all(b"data: caf\xc3 ok\n\ndata: \xff\n\n");
        assert_eq!(events, vec!["caf\u{fffd} ok", "\u{fffd}"]);
    }

    #[test]
    fn only_the_first_colon_ends_the_field_name() {
        let mut parser = SseParser::new();
        let events =
            parser.push_all(b"dat\xff: no\n\n\xc3data: no\ndata\ndata:a: b\ndata:  two spaces\n\n");
        // A field name with broken bytes is not `data`; `data` alone is an
        // empty data line; the value keeps its later colons and all but
        // one leading space.
        assert_eq!(events, vec!["\na: b\n two spaces"]);
    }

    #[test]
    fn byte_by_byte() {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for byte in b"data: x\r\n\r\ndata: y\n\n" {
            events.extend(parser.push_all(&[*byte]));
        }
        assert_eq!(events, vec!["x", "y"]);
    }

    #[test]
    fn crlf_line_ends() {
        let mut parser = SseParser::new();
        let events = parser.push_all(b"data: one\r\n\r\ndata: [DONE]\r\n\r\n");
        assert_eq!(events, vec!["one", "[DONE]"]);
    }

    #[test]
    fn comments_and_other_fields_are_ignored() {
        let mut parser = SseParser::new();
        let events =
            parser.push_all(b": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: z\n\n:\n\n");
        assert_eq!(events, vec!["z"]);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut parser = SseParser::new();
        let events = parser.push_all(b"data: a\ndata:b\n\n");
        assert_eq!(events, vec!["a\nb"]);
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        let mut parser = SseParser::new();
        assert!(parser.push_all(b"\n\n\r\n").is_empty());
    }

    #[test]
    fn unterminated_last_event_is_kept_at_finish() {
        let mut parser = SseParser::new();
        assert!(parser.push_all(b"data: [DONE]").is_empty());
        assert_eq!(parser.finish_all().as_deref(), Some("[DONE]"));
    }

    #[test]
    fn done_marker_tolerates_whitespace() {
        assert!(is_done(" [DONE] "));
        assert!(!is_done("{\"done\":true}"));
    }
}
