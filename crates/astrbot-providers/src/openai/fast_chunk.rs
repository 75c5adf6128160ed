//! A quick reader for the usual shape of one streamed chunk.
//!
//! A fast provider sends one chunk per token, and decoding each one with
//! serde into the general [`Completion`](super::wire::Completion) type took
//! about a tenth of the server's CPU under chat load: every key and string
//! goes through serde's visitors, and unknown fields are parsed to be
//! thrown away. Nearly every chunk has at most one choice whose delta holds
//! plain strings, so this reader walks the bytes once, checks that they are
//! JSON, lends out the few strings it needs and steps over the rest.
//!
//! It answers only when sure. Anything out of the ordinary (an `error`
//! object, several choices, content given as a list of parts, a duplicate
//! key, an escaped key, deep nesting, anything that is not JSON) makes it
//! give up, and the caller decodes the chunk with serde. So whenever it
//! answers, the answer is the one serde would give; the tests hold it to
//! that.

use std::borrow::Cow;

use astrbot_core::json_text::find_escape;

use super::wire::Usage;

/// What a chunk carries for the answer.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ChunkFields {
    pub text: String,
    pub reasoning: String,
    pub usage: Option<Usage>,
}

/// Nesting deeper than this in a field we skip is left to serde, whose own
/// limit (128) is far above it.
const MAX_SKIPPED_DEPTH: u8 = 32;

/// Reads `data` if it is a chunk of the usual shape; `None` means "decode
/// it with serde".
pub(super) fn read(data: &str) -> Option<ChunkFields> {
    let mut reader = Reader { text: data, at: 0 };
    let mut seen = [false; 3];
    let mut message = None;
    let mut usage = None;
    reader.object(|reader, key| match key {
        "choices" => {
            first_time(&mut seen[0])?;
            message = reader.only_choice()?;
            Some(())
        }
        "usage" => {
            first_time(&mut seen[1])?;
            usage = reader.usage()?;
            Some(())
        }
        // A chunk reporting an error is rare; serde reads it.
        "error" => {
            first_time(&mut seen[2])?;
            reader.null()
        }
        _ => reader.skip_value(1),
    })?;
    reader.end()?;

    let message: Message = message.unwrap_or_default();
    Some(ChunkFields {
        text: message.content.map(Cow::into_owned).unwrap_or_default(),
        reasoning: message
            .reasoning_content
            .or(message.reasoning)
            .map(Cow::into_owned)
            .unwrap_or_default(),
        usage,
    })
}

/// The string fields of a `delta` or `message`, still borrowed.
#[derive(Default)]
struct Message<'a> {
    content: Option<Cow<'a, str>>,
    reasoning_content: Option<Cow<'a, str>>,
    reasoning: Option<Cow<'a, str>>,
}

fn is_hex4(digits: &[u8]) -> bool {
    digits.iter().all(u8::is_ascii_hexdigit)
}

/// serde refuses a struct with a field given twice; so does this reader.
fn first_time(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

/// A position in the chunk's text. Every method returns `None` to give up.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Takes `byte` if it comes next, after any whitespace.
    fn take(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.take(byte).then_some(())
    }

    /// Nothing but whitespace may follow the chunk.
    fn end(&mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.text.len()).then_some(())
    }

    /// Reads an object, handing each key to `on_field`, which must read
    /// the value that follows.
    fn object(&mut self, mut on_field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.take(b'}') {
            return Some(());
        }
        loop {
            self.skip_whitespace();
            let key = self.plain_string()?;
            self.expect(b':')?;
            on_field(self, key)?;
            if self.take(b'}') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// `choices`: `null`, `[]` or one choice. Several choices are left to
    /// serde, which checks every one of them.
    fn only_choice(&mut self) -> Option<Option<Message<'a>>> {
        if self.take_null() {
            return Some(None);
        }
        self.expect(b'[')?;
        if self.take(b']') {
            return Some(None);
        }
        let choice = self.choice()?;
        self.expect(b']')?;
        Some(choice)
    }

    /// One choice: its `message` if it has one, else its `delta`, as
    /// `Completion::into_first` picks.
    fn choice(&mut self) -> Option<Option<Message<'a>>> {
        let mut seen = [false; 2];
        let mut message = None;
        let mut delta = None;
        self.object(|reader, key| {
            let (seen, field) = match key {
                "message" => (&mut seen[0], &mut message),
                "delta" => (&mut seen[1], &mut delta),
                _ => return reader.skip_value(3),
            };
            first_time(seen)?;
            *field = reader.message()?;
            Some(())
        })?;
        Some(message.or(delta))
    }

    /// A `delta` or `message`: `null`, or an object whose text fields are
    /// strings or `null`.
    fn message(&mut self) -> Option<Option<Message<'a>>> {
        if self.take_null() {
            return Some(None);
        }
        let mut seen = [false; 3];
        let mut message = Message::default();
        self.object(|reader, key| {
            let (seen, field) = match key {
                "content" => (&mut seen[0], &mut message.content),
                "reasoning_content" => (&mut seen[1], &mut message.reasoning_content),
                "reasoning" => (&mut seen[2], &mut message.reasoning),
                _ => return reader.skip_value(4),
            };
            first_time(seen)?;
            *field = reader.string_or_null()?;
            Some(())
        })?;
        Some(Some(message))
    }

    /// `usage`: `null`, or an object that serde reads. Most servers send
    /// it once per answer; those that repeat it on every chunk pay for
    /// serde on that object only.
    fn usage(&mut self) -> Option<Option<Usage>> {
        if self.take_null() {
            return Some(None);
        }
        self.skip_whitespace();
        if self.peek() != Some(b'{') {
            return None;
        }
        let start = self.at;
        self.skip_value(1)?;
        serde_json::from_str(&self.text[start..self.at])
            .ok()
            .map(Some)
    }

    fn null(&mut self) -> Option<()> {
        self.take_null().then_some(())
    }

    /// Like the literals in `skip_value`, this does not look at what
    /// follows: every caller then requires `,`, `}` or `]`, so `nullx`
    /// is still refused.
    fn take_null(&mut self) -> bool {
        self.skip_whitespace();
        let found = self.text[self.at..].starts_with("null");
        if found {
            self.at += 4;
        }
        found
    }

    fn string_or_null(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.take_null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A string value. Escapes are rare in a token (a newline, a quote),
    /// and when there are any, serde decodes that one string.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.skip_whitespace();
        let start = self.at;
        let escaped = self.step_over_string()?;
        let quoted = &self.text[start..self.at];
        if escaped {
            serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(&quoted[1..quoted.len() - 1]))
        }
    }

    /// A key. One with escapes is left to serde, which matches keys after
    /// decoding them.
    fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.at;
        let escaped = self.step_over_string()?;
        (!escaped).then(|| &self.text[start + 1..self.at - 1])
    }

    /// Moves past a string starting here; says whether it had escapes.
    /// As in JSON (and serde), control characters are refused and an
    /// escape is one of `\" \\ \/ \b \f \n \r \t` or `\u` with four hex
    /// digits; which code points those make is for whoever decodes it.
    fn step_over_string(&mut self) -> Option<bool> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let mut escaped = false;
        let mut at = self.at + 1;
        loop {
            // No quote left means the string never ends: give up.
            at += find_escape(bytes.get(at..)?)?;
            match bytes[at] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    at += match *bytes.get(at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' if is_hex4(bytes.get(at + 2..at + 6)?) => 6,
                        _ => return None,
                    };
                }
                // A raw control character: not JSON.
                _ => return None,
            }
        }
        self.at = at + 1;
        Some(escaped)
    }

    /// Moves past any JSON value, checking its grammar. `depth` is how
    /// deep the value sits.
    fn skip_value(&mut self, depth: u8) -> Option<()> {
        if depth > MAX_SKIPPED_DEPTH {
            return None;
        }
        self.skip_whitespace();
        match self.peek()? {
            b'"' => self.step_over_string().map(drop),
            b'{' => self.object(|reader, _| reader.skip_value(depth + 1)),
            b'[' => self.skip_array(depth),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => ["null", "true", "false"].into_iter().find_map(|word| {
                self.text[self.at..].starts_with(word).then(|| {
                    self.at += word.len();
                })
            }),
        }
    }

    fn skip_array(&mut self, depth: u8) -> Option<()> {
        self.expect(b'[')?;
        if self.take(b']') {
            return Some(());
        }
        loop {
            self.skip_value(depth + 1)?;
            if self.take(b']') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn skip_number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.skip_digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.skip_some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.skip_some_digits()?;
        }
        Some(())
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// At least one digit.
    fn skip_some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.skip_digits();
        (self.at > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::stream::fields_of;
    use crate::openai::wire::Completion;

    /// Chunks as OpenAI, DeepSeek, OpenRouter and Ollama send them.
    const USUAL: &[&str] = &[
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1733400000,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1733400000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"1","choices":[{"index":0,"delta":{"content":"line\none \"quoted\" caf\u00e9 \ud83d\ude00"},"finish_reason":null}]}"#,
        r#"{"id":"1","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"think"},"finish_reason":null}]}"#,
        r#"{"id":"1","choices":[{"index":0,"delta":{"reasoning":"r","content":"t"}}]}"#,
        r#"{"id":"1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
        r#"{"id":"1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":2,"audio_tokens":0}}}"#,
        r#"{"id":"1","choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"delta":{"content":"ignored"}}],"error":null}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"city\": \"Paris\u00e9\"}\n"}}]},"logprobs":{"content":[{"token":"a","logprob":-0.5,"bytes":[97],"top_logprobs":[]}]}}],"x":[1.5e3,-0,true,false]}"#,
        " { \"choices\" : [ { \"delta\" : { \"content\" : \"spaced\" } } ] , \"usage\" : null }\r\n",
        "{}",
    ];

    /// What serde makes of the same data: the fields, or `None` if it
    /// fails or the chunk reports an error.
    fn by_serde(data: &str) -> Option<ChunkFields> {
        let chunk = serde_json::from_str::<Completion>(data).ok()?;
        fields_of(chunk).ok()
    }

    #[test]
    fn reads_the_usual_chunks_as_serde_does() {
        for data in USUAL {
            let fast = read(data).unwrap_or_else(|| panic!("gave up on {data}"));
            assert_eq!(Some(&fast), by_serde(data).as_ref(), "{data}");
        }
        let read_text = |data: &str| read(data).unwrap().text;
        assert_eq!(read_text(USUAL[1]), "Hello");
        assert_eq!(read_text(USUAL[2]), "line\none \"quoted\" café 😀");
        assert_eq!(read(USUAL[3]).unwrap().reasoning, "think");
        assert_eq!(read_text(USUAL[7]), "whole");
        assert_eq!(
            read(USUAL[6]).unwrap().usage.unwrap().prompt_tokens,
            Some(9)
        );
    }

    #[test]
    fn long_strings_are_read_whole() {
        let long = "token ".repeat(50_000);
        let chunk =
            |content: &str| format!(r#"{{"choices":[{{"delta":{{"content":"{content}"}}}}]}}"#);
        assert_eq!(read(&chunk(&long)).unwrap().text, long);
        let escaped = format!("{long}\\n{long}");
        assert_eq!(read(&chunk(&escaped)), by_serde(&chunk(&escaped)));
        assert_eq!(
            read(&chunk(&escaped)).unwrap().text.len(),
            2 * long.len() + 1
        );
        assert_eq!(read(&chunk(&format!("{long}\u{1}"))), None);
        assert_eq!(read(&format!(r#"{{"choices":[],"id":"{long}"#)), None);
    }

    #[test]
    fn leaves_anything_unusual_to_serde() {
        let unusual = [
            r#"{"error":{"message":"overloaded"}}"#,
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"a"}]}}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[],"choices":[]}"#,
            r#"{"choi\u0063es":[]}"#,
            r#"{"choices":[],"id":"a\x"}"#,
            r#"{"choices":[],"id":"a\u00g0"}"#,
            r#"{"choices":[],"id":"a\u00"}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[]} {"choices":[]}"#,
            r#"{"choices":[],"created":01}"#,
            r#"{"choices":[],"created":nul}"#,
            r#"{"choices":[],}"#,
            "{\"choices\":[{\"delta\":{\"content\":\"a\tb\"}}]}",
            r#"[[{"delta":{"content":"a"}}]]"#,
            "data",
            "",
        ];
        for data in unusual {
            assert_eq!(read(data), None, "{data}");
        }
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(40), "]".repeat(40));
        assert_eq!(read(&deep), None);
    }

    /// Damages the usual chunks byte by byte (dropping, doubling, replacing
    /// a byte or inserting one) and checks that whenever the reader still
    /// answers, serde agrees with it.
    #[test]
    fn never_answers_differently_from_serde() {
        let bytes = b"\"\\{}[],:0-.eE+ \nnulltruefalsx\x01";
        let mut answered = 0;
        for data in USUAL {
            let data = data.as_bytes();
            for at in 0..data.len() {
                let mut damaged = vec![[&data[..at], &data[at + 1..]].concat()];
                damaged.push([&data[..=at], &data[at..]].concat());
                for byte in bytes {
                    let byte = std::slice::from_ref(byte);
                    damaged.push([&data[..at], byte, &data[at + 1..]].concat());
                    damaged.push([&data[..at], byte, &data[at..]].concat());
                }
                for data in damaged
                    .into_iter()
                    .filter_map(|bytes| String::from_utf8(bytes).ok())
                {
                    if let Some(fast) = read(&data) {
                        answered += 1;
                        assert_eq!(Some(fast), by_serde(&data), "{data}");
                    }
                }
            }
        }
        assert!(answered > 1_000, "only {answered} damaged chunks read");
    }
}
