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
//!
//! The chunks of one answer are nearly always the same bytes around a
//! different token. So a [`ChunkReader`] keeps the last chunk it read in
//! full as a [`Template`], and reads a chunk that matches it by comparing
//! bytes and reading only the values it needs.

use std::borrow::Cow;
use std::ops::Range;

use astrbot_core::json_text::find_escape;
use astrbot_core::Delta;

use super::wire::Usage;

/// What a chunk carries for the answer.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ChunkFields {
    pub text: Delta,
    pub reasoning: Delta,
    pub usage: Option<Usage>,
    /// The provider's content filter stopped the answer here.
    pub content_filtered: bool,
}

/// Nesting deeper than this in a field we skip is left to serde, whose own
/// limit (128) is far above it.
const MAX_SKIPPED_DEPTH: u8 = 32;

/// Chunks longer than this are not kept as a template: a usual chunk is a
/// few hundred bytes, and a single event may reach megabytes.
const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// After this many chunks in a row that did not fit the template, a
/// stream's chunks are read in full without making templates: its
/// provider changes more than the holes allow (e.g. a growing `usage` on
/// every chunk), and trying would only add to every read.
const MISSES_BEFORE_GIVING_UP: u8 = 8;

/// Reads the chunks of one answer, in order.
#[derive(Default)]
pub(super) struct ChunkReader {
    /// Boxed: the stream's state, this reader included, is moved for
    /// every item the stream hands out.
    last: Option<Box<Template>>,
    /// Chunks in a row that did not fit `last`.
    misses: u8,
}

impl ChunkReader {
    /// Reads `data` if it is a chunk of the usual shape; `None` means
    /// "decode it with serde".
    pub fn read(&mut self, data: &str) -> Option<ChunkFields> {
        if let Some(last) = self.last.as_ref().filter(|_| self.using_templates()) {
            if let Some(fields) = last.read(data) {
                self.misses = 0;
                return Some(fields);
            }
            self.misses += 1;
        }
        let (fields, template) = read_in_full(data, self.using_templates())?;
        if template.is_some() {
            self.last = template;
        }
        Some(fields)
    }

    fn using_templates(&self) -> bool {
        self.misses < MISSES_BEFORE_GIVING_UP
    }
}

/// A chunk read in full whose answer came from one string value alone (a
/// token of the text or of the reasoning), with the places of the values
/// the reader did not need to understand.
///
/// The reader's path through a chunk depends only on the bytes outside
/// those values: a value it steps over (an `id`, a `created` time, a
/// provider's random `obfuscation` padding) leaves it in the same place
/// whatever the value is, as does a string whatever it holds. So another
/// chunk with the same bytes between the holes, and in each hole a value
/// of the kind the reader accepted there, reads exactly as this one did,
/// with the new answer string in place of the old one.
struct Template {
    data: String,
    /// In the order they come in `data`.
    holes: Vec<Hole>,
    /// Which of `holes` holds the answer's string.
    answer: usize,
    usage: Option<Usage>,
}

/// A value of the template that another chunk may have differently.
enum Hole {
    /// Stepped over, at this depth (any JSON value fits).
    Skipped { span: Range<usize>, depth: u8 },
    /// A string field of a `delta` or `message` (a string fits; it is
    /// decoded, as the reader decodes it).
    Text {
        span: Range<usize>,
        is_reasoning: bool,
    },
}

impl Hole {
    fn span(&self) -> &Range<usize> {
        match self {
            Hole::Skipped { span, .. } | Hole::Text { span, .. } => span,
        }
    }
}

impl Template {
    fn read(&self, data: &str) -> Option<ChunkFields> {
        let string = self
            .only_the_answer_differs(data)
            .or_else(|| self.read_hole_by_hole(data))?;
        let string = Delta::from(string);
        let is_reasoning = matches!(
            self.holes[self.answer],
            Hole::Text {
                is_reasoning: true,
                ..
            }
        );
        let (text, reasoning) = if is_reasoning {
            (Delta::default(), string)
        } else {
            (string, Delta::default())
        };
        Some(ChunkFields {
            text,
            reasoning,
            usage: self.usage.clone(),
            content_filtered: false,
        })
    }

    /// The answer's string, if `data` has the template's bytes before and
    /// after it: two comparisons, for the chunks of most providers.
    fn only_the_answer_differs<'a>(&self, data: &'a str) -> Option<Cow<'a, str>> {
        let span = self.holes[self.answer].span();
        let before = &self.data.as_bytes()[..span.start];
        let after = &self.data.as_bytes()[span.end..];
        let bytes = data.as_bytes();
        if bytes.len() < before.len() + after.len()
            || !bytes.starts_with(before)
            || !bytes.ends_with(after)
        {
            return None;
        }
        let mut reader = Reader::new(data);
        reader.at = before.len();
        let string = reader.string()?;
        (reader.at == bytes.len() - after.len()).then_some(string)
    }

    /// The answer's string, if `data` has the template's bytes between the
    /// holes and a fitting value in each: for chunks whose other values
    /// change too.
    fn read_hole_by_hole<'a>(&self, data: &'a str) -> Option<Cow<'a, str>> {
        let template = self.data.as_bytes();
        let mut reader = Reader::new(data);
        let mut matched_to = 0;
        let mut answer = None;
        for (index, hole) in self.holes.iter().enumerate() {
            let span = hole.span();
            // Most values are the template's own: the same bytes, and the
            // byte after them that ended the value (a number's end is where
            // its digits stop), are the same value, with nothing to read.
            let through = template.len().min(span.end + 1);
            if index != self.answer && reader.take_bytes(&template[matched_to..through]).is_some() {
                matched_to = through;
                continue;
            }
            reader.take_bytes(&template[matched_to..span.start])?;
            match hole {
                Hole::Skipped { depth, .. } => reader.skip_value(*depth)?,
                Hole::Text { .. } => {
                    let string = reader.string()?;
                    if index == self.answer {
                        answer = Some(string);
                    }
                }
            }
            matched_to = span.end;
        }
        reader.take_bytes(&template[matched_to..])?;
        reader.end()?;
        answer
    }
}

/// Reads `data` if it is a chunk of the usual shape; `None` means "decode
/// it with serde".
#[cfg(test)]
pub(super) fn read(data: &str) -> Option<ChunkFields> {
    read_in_full(data, false).map(|(fields, _)| fields)
}

/// Reads a whole chunk, and with `make_template` makes it a template if it
/// can be one.
fn read_in_full(data: &str, make_template: bool) -> Option<(ChunkFields, Option<Box<Template>>)> {
    let mut reader = Reader::new(data);
    if make_template {
        reader.holes = Some(Vec::with_capacity(16));
    }
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
        _ => reader.skip_field_value(1),
    })?;
    reader.end()?;

    let message: Message = message.unwrap_or_default();
    let template = match (message.answer_hole, reader.holes) {
        (Some(answer), Some(holes)) if data.len() <= MAX_TEMPLATE_BYTES => {
            Some(Box::new(Template {
                data: data.to_owned(),
                holes,
                answer,
                usage: usage.clone(),
            }))
        }
        _ => None,
    };
    let fields = ChunkFields {
        text: message.content.map(Delta::from).unwrap_or_default(),
        reasoning: message
            .reasoning_content
            .or(message.reasoning)
            .map(Delta::from)
            .unwrap_or_default(),
        usage,
        content_filtered: false,
    };
    Some((fields, template))
}

/// The string fields of a `delta` or `message`, still borrowed.
#[derive(Default)]
struct Message<'a> {
    content: Option<Cow<'a, str>>,
    reasoning_content: Option<Cow<'a, str>>,
    reasoning: Option<Cow<'a, str>>,
    /// The hole of the one field that is a string, if only one is.
    answer_hole: Option<usize>,
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
    /// Where a template's holes go, when reading a chunk in full.
    holes: Option<Vec<Hole>>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            at: 0,
            holes: None,
        }
    }

    /// Takes exactly `bytes`, which must come next.
    fn take_bytes(&mut self, bytes: &[u8]) -> Option<()> {
        let found = self.text.as_bytes()[self.at..].starts_with(bytes);
        if found {
            self.at += bytes.len();
        }
        found.then_some(())
    }

    /// Steps over the value of a field nobody needs, noting its hole.
    fn skip_field_value(&mut self, depth: u8) -> Option<()> {
        self.skip_whitespace();
        let start = self.at;
        self.skip_value(depth)?;
        self.note_hole(Hole::Skipped {
            span: start..self.at,
            depth,
        });
        Some(())
    }

    /// Notes a hole if this read makes a template; says which one it is.
    fn note_hole(&mut self, hole: Hole) -> Option<usize> {
        let holes = self.holes.as_mut()?;
        holes.push(hole);
        Some(holes.len() - 1)
    }

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
                "finish_reason" => return reader.finish_reason(),
                _ => return reader.skip_field_value(3),
            };
            first_time(seen)?;
            *field = reader.message()?;
            Some(())
        })?;
        Some(message.or(delta))
    }

    /// A choice's `finish_reason`, stepped over without a hole: a template
    /// then fits only chunks with the same one, so a template's chunk is
    /// never a content filter's stop. That stop, rare, is left to serde.
    fn finish_reason(&mut self) -> Option<()> {
        self.skip_whitespace();
        let start = self.at;
        self.skip_value(3)?;
        let value = &self.text[start..self.at];
        (value != "\"content_filter\"" && !value.contains('\\')).then_some(())
    }

    /// A `delta` or `message`: `null`, or an object whose text fields are
    /// strings or `null`.
    fn message(&mut self) -> Option<Option<Message<'a>>> {
        if self.take_null() {
            return Some(None);
        }
        let mut seen = [false; 3];
        let mut message = Message::default();
        let mut strings = 0;
        self.object(|reader, key| {
            let (seen, field) = match key {
                "content" => (&mut seen[0], &mut message.content),
                "reasoning_content" => (&mut seen[1], &mut message.reasoning_content),
                "reasoning" => (&mut seen[2], &mut message.reasoning),
                _ => return reader.skip_field_value(4),
            };
            first_time(seen)?;
            reader.skip_whitespace();
            let start = reader.at;
            *field = reader.string_or_null()?;
            if field.is_some() {
                strings += 1;
                message.answer_hole = reader.note_hole(Hole::Text {
                    span: start..reader.at,
                    is_reasoning: key != "content",
                });
            }
            Some(())
        })?;
        if strings != 1 {
            message.answer_hole = None;
        }
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
            r#"{"choices":[{"delta":{"content":"a"},"finish_reason":"content_filter"}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"content\u005ffilter"}]}"#,
            "data",
            "",
        ];
        for data in unusual {
            assert_eq!(read(data), None, "{data}");
        }
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(40), "]".repeat(40));
        assert_eq!(read(&deep), None);
    }

    #[test]
    fn a_content_filters_stop_never_reads_as_a_template_chunk() {
        // The stop comes in the place where the earlier chunks had `null`.
        let mut reader = ChunkReader::default();
        let usual = r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#;
        assert_eq!(reader.read(usual).unwrap().text, "a");
        assert_eq!(
            reader
                .read(&usual.replace(r#""a""#, r#""b""#))
                .unwrap()
                .text,
            "b"
        );

        let stopped = usual.replace("null", r#""content_filter""#);
        assert_eq!(reader.read(&stopped), None);
        let by_serde = fields_of(serde_json::from_str(&stopped).unwrap()).unwrap();
        assert!(by_serde.content_filtered);
        assert_eq!(by_serde.text, "a");
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
            let after = |intact: &[u8], damaged: &str| {
                let mut reader = ChunkReader::default();
                reader.read(std::str::from_utf8(intact).unwrap());
                reader.read(damaged)
            };
            for at in 0..data.len() {
                let mut damaged = vec![[&data[..at], &data[at + 1..]].concat()];
                damaged.push([&data[..=at], &data[at..]].concat());
                for byte in bytes {
                    let byte = std::slice::from_ref(byte);
                    damaged.push([&data[..at], byte, &data[at + 1..]].concat());
                    damaged.push([&data[..at], byte, &data[at..]].concat());
                }
                for damaged in damaged
                    .into_iter()
                    .filter_map(|bytes| String::from_utf8(bytes).ok())
                {
                    let fast = read(&damaged);
                    if let Some(fast) = &fast {
                        answered += 1;
                        assert_eq!(Some(fast), by_serde(&damaged).as_ref(), "{damaged}");
                    }
                    // Read after the intact chunk, the damaged one is read
                    // in full or like it, and either way as on its own.
                    assert_eq!(after(data, &damaged), fast, "{damaged}");
                }
            }
        }
        assert!(answered > 1_000, "only {answered} damaged chunks read");
    }

    /// The usual chunks with their token string replaced by `token`.
    fn with_token(token: &str) -> Vec<String> {
        USUAL
            .iter()
            .map(|data| {
                data.replacen(r#""Hello""#, token, 1)
                    .replacen(r#""think""#, token, 1)
                    .replacen(r#""whole""#, token, 1)
                    .replacen(r#""spaced""#, token, 1)
            })
            .collect()
    }

    #[test]
    fn a_chunk_like_the_last_reads_as_it_would_on_its_own() {
        let tokens = [
            r#""Hello""#,
            r#""""#,
            r#"" world""#,
            r#""caf\u00e9 \"q\" \n""#,
            r#""\ud83d\ude00""#,
            r#""\ud800 lone""#,
            r#""你好""#,
            r#""a\x""#,
            r#""a\u12""#,
            "\"a\u{1}b\"",
            r#""a"b""#,
            r#""a","content":"b""#,
            r#""unended"#,
            "null",
            "5",
            r#"{"a":1}"#,
            r#" "spaced" "#,
            "",
        ];
        let chunks: Vec<String> = tokens.iter().flat_map(|token| with_token(token)).collect();
        let mut like_the_last = 0;
        for first in &chunks {
            let mut primed = ChunkReader::default();
            primed.read(first);
            let template = primed.last.as_ref().map(|last| last.data.clone());
            for next in &chunks {
                let mut reader = ChunkReader {
                    last: template
                        .as_ref()
                        .and_then(|data| read_in_full(data, true)?.1),
                    misses: 0,
                };
                let alone = read(next);
                if reader
                    .last
                    .as_ref()
                    .and_then(|last| last.read(next))
                    .is_some()
                {
                    like_the_last += 1;
                }
                assert_eq!(reader.read(next), alone, "{next} after {first}");
                if let Some(alone) = alone {
                    assert_eq!(Some(alone), by_serde(next), "{next}");
                }
            }
        }
        assert!(
            like_the_last > 500,
            "only {like_the_last} read like the last"
        );
    }

    #[test]
    fn a_stream_of_tokens_is_read_like_the_first_of_them() {
        let chunk = |token: &str| {
            format!(
                r#"{{"id":"c-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":{token}}},"logprobs":null,"finish_reason":null}}]}}"#
            )
        };
        let mut reader = ChunkReader::default();
        let mut text = String::new();
        for token in [r#""Echo""#, r#"": ""#, r#""a\nb""#, r#""c""#] {
            text += &reader.read(&chunk(token)).unwrap().text;
        }
        assert_eq!(text, "Echo: a\nbc");
        // The template is the first token's chunk; the later ones matched it.
        assert_eq!(reader.last.as_ref().unwrap().data, chunk(r#""Echo""#));

        // OpenAI pads every chunk with random `obfuscation`; a provider
        // may also move its timestamp along.
        let padded = |token: &str, pad: &str, created: u32| {
            format!(
                r#"{{"id":"c-1","created":{created},"choices":[{{"index":0,"delta":{{"content":{token}}},"finish_reason":null}}],"obfuscation":"{pad}"}}"#
            )
        };
        let mut reader = ChunkReader::default();
        let mut text = String::new();
        for (token, pad, created) in [
            (r#""a""#, "Xy", 1),
            (r#""b""#, "q9z", 2),
            (r#""c""#, "", 10),
        ] {
            text += &reader.read(&padded(token, pad, created)).unwrap().text;
        }
        assert_eq!(text, "abc");
        assert_eq!(
            reader.last.as_ref().unwrap().data,
            padded(r#""a""#, "Xy", 1)
        );
        assert_eq!(reader.read(&padded(r#""d""#, r#"\u00"#, 3)), None);

        // Usage growing on every chunk never fits a template: after a few
        // tries the stream is read without them, and read right.
        let counted = |token: &str, count: usize| {
            format!(
                r#"{{"choices":[{{"delta":{{"content":{token}}}}}],"usage":{{"completion_tokens":{count}}}}}"#
            )
        };
        let mut reader = ChunkReader::default();
        for count in 1..=20 {
            let fields = reader.read(&counted(r#""t""#, count)).unwrap();
            assert_eq!(fields, read(&counted(r#""t""#, count)).unwrap());
            assert_eq!(fields.usage.unwrap().completion_tokens, Some(count as u64));
        }
        assert_eq!(reader.misses, MISSES_BEFORE_GIVING_UP);
        assert_eq!(
            reader.last.as_ref().unwrap().data,
            counted(r#""t""#, usize::from(MISSES_BEFORE_GIVING_UP))
        );

        let reasoning = |token: &str| {
            format!(r#"{{"choices":[{{"delta":{{"content":null,"reasoning_content":{token}}}}}]}}"#)
        };
        let mut reader = ChunkReader::default();
        assert_eq!(reader.read(&reasoning(r#""x""#)).unwrap().reasoning, "x");
        let next = reader.read(&reasoning(r#""y""#)).unwrap();
        assert_eq!((next.text.as_str(), next.reasoning.as_str()), ("", "y"));
    }

    /// Chunk shapes with `#` where the reader steps over a value and `§`
    /// where it reads the answer's string.
    const SHAPES_WITH_HOLES: &[&str] = &[
        r#"{"id":#,"object":#,"created":#,"model":#,"choices":[{"index":#,"delta":{"content":§},"logprobs":#,"finish_reason":#}],"obfuscation":#}"#,
        r#"{"id":#,"choices":[{"delta":{"role":#,"content":null,"reasoning_content":§},"x":#}],"usage":null,"pad":#}"#,
        r#"{"choices":[{"message":{"content":§,"extra":#},"delta":{"content":#}}],"created":#}"#,
        r#" { "id" : # , "choices" : [ { "delta" : { "reasoning" : § , "k" : # } } ] , "z" : # } "#,
    ];

    /// What fills a `#`: values of every kind, and broken ones.
    const HOLE_VALUES: &[&str] = &[
        r#""chatcmpl-1""#,
        r#""chatcmpl-2""#,
        r#""""#,
        r#""a\nb""#,
        r#""\ud800""#,
        r#""\x""#,
        r#""é😀""#,
        "1",
        "12",
        "1733400000",
        "1733400001",
        "-0",
        "01",
        "1.",
        "1.5e3",
        "-",
        "null",
        "nul",
        "true",
        "nullx",
        "{}",
        r#"{"a":[1,2,{"b":null}]}"#,
        "[]",
        "[1,",
        r#"{"a"}"#,
        " 5 ",
        r#""un"#,
        r#""a","content":"x""#,
        r#""a"}"#,
        "",
    ];

    /// What fills a `§`.
    const ANSWER_VALUES: &[&str] = &[
        r#""a""#,
        r#""hello world""#,
        r#""""#,
        r#""\u00e9\n""#,
        r#""\ud800""#,
        "null",
        "5",
        r#""a"#,
        r#" "b" "#,
    ];

    /// Fills a shape's holes, each from `like` (a previous filling) two
    /// times in three if given; returns the chunk and its hole values.
    fn fill(
        random: &mut impl FnMut(usize) -> usize,
        shape: &str,
        like: Option<&[&'static str]>,
    ) -> (String, Vec<&'static str>) {
        let mut chunk = String::new();
        let mut values = Vec::new();
        for char in shape.chars() {
            match char {
                '#' => {
                    let value = match like {
                        Some(like) if random(3) != 0 => like[values.len()],
                        _ => HOLE_VALUES[random(HOLE_VALUES.len())],
                    };
                    chunk += value;
                    values.push(value);
                }
                '§' => chunk += ANSWER_VALUES[random(ANSWER_VALUES.len())],
                char => chunk.push(char),
            }
        }
        (chunk, values)
    }

    #[test]
    fn values_read_over_may_change_from_the_template_without_changing_the_answer() {
        // xorshift: the same cases on every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let mut from_the_template = 0;
        for _ in 0..20_000 {
            let shape = SHAPES_WITH_HOLES[random(SHAPES_WITH_HOLES.len())];
            let (first, values) = fill(&mut random, shape, None);
            let mut reader = ChunkReader::default();
            reader.read(&first);
            let Some(template) = reader.last.take() else {
                continue;
            };
            for _ in 0..4 {
                let (next, _) = fill(&mut random, shape, Some(&values));
                let alone = read(&next);
                let read_from_template = template.read(&next);
                if read_from_template.is_some() {
                    from_the_template += 1;
                    assert_eq!(read_from_template, alone, "{next} after {first}");
                }
                if let Some(alone) = alone {
                    assert_eq!(Some(alone), by_serde(&next), "{next}");
                }
            }
        }
        assert!(
            from_the_template > 800,
            "only {from_the_template} read from the template"
        );
    }
}
