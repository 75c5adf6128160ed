//! A lean HTTP/1.1 client for providers on this machine: a loopback
//! `http://` base, as Ollama, vLLM, LM Studio and llama.cpp serve.
//!
//! reqwest reads a connection in a task of its own and hands a streamed
//! body over one chunk at a time, so every token costs two task wake-ups.
//! Here the task that asked reads the socket itself, and one read takes
//! every event that has arrived. Only what such servers answer a JSON
//! `POST` with is handled: a `Content-Length`, chunked or close-delimited
//! body. A redirect is not followed here: the provider then hands the
//! request, and every later one, to reqwest, which follows it. TLS,
//! proxies, credentials in the URL and custom headers that clash with this
//! client's own stay with reqwest (see [`PlainHttp::for_url`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::{invalid, Chunked, Decoded};
use super::idle_pool::IdlePool;

/// A connection closed without an answer within this time after the
/// request was sent is taken as closed before the request arrived (see
/// [`never_read`]).
const PROMPT_CLOSE: Duration = Duration::from_millis(100);

/// The most response headers accepted, as many as reqwest accepts.
const MAX_HEADERS: usize = 100;

/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

const READ_SIZE: usize = 16 * 1024;

/// Bodies up to this size are sent in one write with the head; a longer
/// one (a long conversation) is written after it instead of copied.
const INLINE_BODY: usize = 64 * 1024;

/// The most a dropped body reads to finish itself (its framing: the last
/// chunk, trailers) rather than close its connection.
const MAX_DRAIN: usize = 4 * 1024;

/// The headers every request here carries, or that decide its framing.
const OWN_HEADERS: [&str; 7] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "accept",
    "authorization",
];

/// One provider's endpoint and its idle connections.
#[derive(Debug)]
pub(super) struct PlainHttp {
    /// `host:port`, to connect to.
    address: String,
    /// `host[:port]` as the URL gives it, for the `Host` header.
    authority: String,
    path_and_query: String,
    /// The custom headers, already written out as header lines.
    custom_headers: String,
    connect_timeout: Duration,
    idle: Arc<IdlePool>,
}

/// A response whose head has been read.
pub(super) struct Response {
    pub status: u16,
    /// Its `Content-Type` is JSON (see [`super::is_json_media_type`]).
    pub json: bool,
    pub body: BodyReader,
}

/// Reads a response body off its connection, and gives the connection back
/// for reuse once the body has been read to its end.
pub(super) struct BodyReader {
    stream: Option<TcpStream>,
    buffer: BytesMut,
    framing: Framing,
    reusable: bool,
    idle: Arc<IdlePool>,
}

enum Framing {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

impl PlainHttp {
    /// A client for `url` when it is plain HTTP to a loopback host without
    /// credentials in it; `None` for everything reqwest should handle.
    pub fn for_url(
        url: &reqwest::Url,
        custom_headers: &[(String, String)],
        connect_timeout: Duration,
    ) -> Option<PlainHttp> {
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        if !super::is_loopback(url) {
            return None;
        }
        // A custom header that this client writes itself is left to
        // reqwest, which knows which of the two wins.
        let own_header = |name: &str| {
            OWN_HEADERS
                .iter()
                .any(|own| own.eq_ignore_ascii_case(name.trim()))
        };
        if custom_headers.iter().any(|(name, _)| own_header(name)) {
            return None;
        }
        let host = url.host_str()?;
        let address = format!("{host}:{}", url.port().unwrap_or(80));
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut path_and_query = url.path().to_owned();
        if let Some(query) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        // The names and values were checked when the provider was built.
        let custom_headers = custom_headers
            .iter()
            .map(|(name, value)| format!("{}: {}\r\n", name.trim(), value.trim()))
            .collect();
        Some(PlainHttp {
            address,
            authority,
            path_and_query,
            custom_headers,
            connect_timeout,
            idle: Arc::default(),
        })
    }

    /// Posts a JSON `body` and reads the response head. A reused
    /// connection that the server had closed is replaced once.
    pub async fn post(&self, body: &[u8], key: Option<&str>) -> io::Result<Response> {
        if key.is_some_and(|key| key.bytes().any(|byte| byte.is_ascii_control())) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the API key holds a control character, which no HTTP header may carry",
            ));
        }
        let request = self.request(body, key);
        if let Some(stream) = self.idle.take() {
            match self.exchange(stream, &request).await {
                Ok(response) => return Ok(response),
                // The server closed it while it was idle, and the
                // request was never read.
                Err(Exchange::Unread(_)) => {}
                Err(Exchange::Failed(error)) => return Err(error),
            }
        }
        let stream = self.connect().await?;
        self.exchange(stream, &request)
            .await
            .map_err(Exchange::into_error)
    }

    fn request<'a>(&self, body: &'a [u8], key: Option<&str>) -> Request<'a> {
        let inline = body.len() <= INLINE_BODY;
        let mut request = Vec::with_capacity(256 + if inline { body.len() } else { 0 });
        request.extend_from_slice(
            format!(
                "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: */*\r\ncontent-length: {}\r\n",
                self.path_and_query,
                self.authority,
                body.len()
            )
            .as_bytes(),
        );
        if let Some(key) = key {
            request.extend_from_slice(b"authorization: Bearer ");
            request.extend_from_slice(key.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(self.custom_headers.as_bytes());
        request.extend_from_slice(b"\r\n");
        if !inline {
            return Request {
                head: request,
                body,
            };
        }
        request.extend_from_slice(body);
        Request {
            head: request,
            body: &[],
        }
    }

    async fn connect(&self) -> io::Result<TcpStream> {
        let connecting = async {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host(&self.address).await?.collect();
            let mut last_error = None;
            for address in addresses {
                match TcpStream::connect(address).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => last_error = Some(error),
                }
            }
            Err(last_error.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "the host has no address")
            }))
        };
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))?
            .map_err(|error| io::Error::new(error.kind(), format!("could not connect: {error}")))?;
        // Requests and their answers are small; none should wait for an ACK.
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn exchange(
        &self,
        mut stream: TcpStream,
        request: &Request<'_>,
    ) -> Result<Response, Exchange> {
        let mut buffer = BytesMut::with_capacity(READ_SIZE);
        let unsent = send(&mut stream, request, &mut buffer).await;
        let sent = Instant::now();
        // Anything at all, a `100 Continue` too, shows that the provider
        // got the request, which must then never be sent again.
        let mut heard_back = !buffer.is_empty();
        loop {
            // Informational answers (`100 Continue`) come before the real one.
            while let Some(head) = parse_head(&buffer).map_err(Exchange::Failed)? {
                buffer.advance(head.length);
                if (100..200).contains(&head.status) {
                    continue;
                }
                let mut body = BodyReader {
                    stream: Some(stream),
                    buffer,
                    framing: head.framing,
                    // Not after a request that was cut short.
                    reusable: head.keep_alive && unsent.is_none(),
                    idle: Arc::clone(&self.idle),
                };
                body.release_if_done();
                return Ok(Response {
                    status: head.status,
                    json: head.json,
                    body,
                });
            }
            if buffer.len() > MAX_HEAD {
                return Err(Exchange::Failed(invalid("the response head is too long")));
            }
            if buffer.capacity() - buffer.len() < 1024 {
                buffer.reserve(READ_SIZE);
            }
            let received = match stream.read_buf(&mut buffer).await {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the provider closed the connection before answering",
                )),
                Ok(_) => {
                    heard_back = true;
                    Ok(())
                }
                Err(error) => Err(error),
            };
            if let Err(error) = received {
                let nothing_came = !heard_back;
                return Err(match unsent {
                    // No answer to a request that did not go out whole.
                    Some(unsent) if nothing_came => Exchange::Unread(unsent),
                    _ if nothing_came && never_read(&error, sent.elapsed()) => {
                        Exchange::Unread(error)
                    }
                    _ => Exchange::Failed(error),
                });
            }
        }
    }
}

/// Writes `request`, reading into `buffer` what the server answers
/// meanwhile. A server may answer before it has read the whole request
/// (one with a body limit refuses a long conversation after its head), and
/// then either close, which fails the write, or stop reading, which would
/// leave the write waiting for good: writing stops once a final answer has
/// begun. Returns why the request did not go out whole, if it did not.
async fn send(
    stream: &mut TcpStream,
    request: &Request<'_>,
    buffer: &mut BytesMut,
) -> Option<io::Error> {
    let (mut reader, mut writer) = stream.split();
    let writing = request.write_to(&mut writer);
    tokio::pin!(writing);
    loop {
        if buffer.capacity() - buffer.len() < 1024 {
            buffer.reserve(READ_SIZE);
        }
        tokio::select! {
            biased;
            written = &mut writing => return written.err(),
            read = reader.read_buf(buffer) => match read {
                Ok(received) if received > 0 => {
                    if final_answer_began(buffer) {
                        return Some(io::Error::other("answered before the request was sent whole"));
                    }
                }
                // Closed or reset: the write ends too, as it may.
                _ => return writing.await.err(),
            },
        }
    }
}

/// Whether `buffer` holds the start of a final answer: past any whole
/// informational answers (`100 Continue`) and the blank lines HTTP allows
/// before a status line, a status whose first digit is not `1`. Something
/// that is no answer at all counts too: writing more would not help.
fn final_answer_began(buffer: &[u8]) -> bool {
    let mut rest = buffer;
    loop {
        match parse_head(rest) {
            Ok(Some(head)) if (100..200).contains(&head.status) => rest = &rest[head.length..],
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) => {
                let status_line = rest.trim_ascii_start();
                // `HTTP/1.1 413`: the status's first digit is the tenth byte.
                return status_line.get(9).is_some_and(|digit| *digit != b'1');
            }
        }
    }
}

/// A request's bytes: its head, with the body behind it when that is
/// short, else the body to write after it.
struct Request<'a> {
    head: Vec<u8>,
    body: &'a [u8],
}

impl Request<'_> {
    async fn write_to(&self, stream: &mut (impl AsyncWrite + Unpin)) -> io::Result<()> {
        stream.write_all(&self.head).await?;
        if !self.body.is_empty() {
            stream.write_all(self.body).await?;
        }
        Ok(())
    }
}

enum Exchange {
    /// The request cannot have been read: sending it failed, or the
    /// connection was refused or closed at once, with no answer.
    Unread(io::Error),
    Failed(io::Error),
}

impl Exchange {
    fn into_error(self) -> io::Error {
        match self {
            Exchange::Unread(error) | Exchange::Failed(error) => error,
        }
    }
}

/// Whether a connection that failed before any answer shows that the
/// server never read the request, so that sending it again on a new
/// connection cannot make the provider do the work twice: it was reset or
/// closed at once. One that failed later may have been read and worked on
/// (a model that crashed on the prompt, a server that read the head and
/// gave up), and must not be sent twice.
fn never_read(error: &io::Error, after: Duration) -> bool {
    let closed = matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    );
    closed && after < PROMPT_CLOSE
}

struct Head {
    length: usize,
    status: u16,
    framing: Framing,
    keep_alive: bool,
    json: bool,
}

/// The response head at the start of `buffer`, if it is all there.
fn parse_head(buffer: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(invalid(&format!("an invalid response head: {error}"))),
    };
    let status = response.code.unwrap_or_default();
    let mut close = response.version != Some(1);
    let mut chunked = false;
    let mut other_coding = false;
    let mut content_length = None;
    let mut json = false;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or_default();
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides the framing.
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            chunked = last.eq_ignore_ascii_case("chunked");
            other_coding = !chunked;
        } else if header.name.eq_ignore_ascii_case("content-length") {
            // Repeated (`17, 17`, or twice) is fine while the values agree.
            for item in value.split(',') {
                let parsed = item
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| invalid("an invalid Content-Length"))?;
                if content_length.is_some_and(|known| known != parsed) {
                    return Err(invalid("two different Content-Lengths"));
                }
                content_length = Some(parsed);
            }
        } else if header.name.eq_ignore_ascii_case("content-type") {
            json = super::is_json_media_type(value);
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && response.version == Some(0) {
                    close = false;
                }
            }
        }
    }
    let framing = if matches!(status, 204 | 304) || (100..200).contains(&status) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked(Chunked::default())
    } else if other_coding {
        Framing::UntilClose
    } else {
        content_length.map_or(Framing::UntilClose, Framing::Length)
    };
    let keep_alive = !close && !matches!(framing, Framing::UntilClose);
    Ok(Some(Head {
        length,
        status,
        framing,
        keep_alive,
        json,
    }))
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        if self.stream.is_some() && self.reusable {
            self.finish_without_waiting();
        }
    }
}

impl BodyReader {
    /// The next piece of the body: everything that has arrived, without
    /// its framing; `None` at the end.
    pub async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            match self.take_decoded() {
                Ok(Some(bytes)) => return Some(Ok(bytes)),
                Ok(None) => {}
                Err(error) => return Some(Err(self.fail(error))),
            }
            if matches!(self.framing, Framing::Done) {
                self.release_if_done();
                return None;
            }
            let stream = self.stream.as_mut()?;
            self.buffer.reserve(READ_SIZE);
            match stream.read_buf(&mut self.buffer).await {
                Ok(0) if matches!(self.framing, Framing::UntilClose) => {
                    self.framing = Framing::Done;
                    self.stream = None;
                }
                Ok(0) => {
                    return Some(Err(self.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the provider closed the connection before the answer ended",
                    ))))
                }
                Ok(_) => {}
                Err(error) => return Some(Err(self.fail(error))),
            }
        }
    }

    /// Decodes what the buffer holds; `None` when that is no body data.
    fn take_decoded(&mut self) -> io::Result<Option<Bytes>> {
        match &mut self.framing {
            Framing::Length(0) => {
                self.framing = Framing::Done;
                Ok(None)
            }
            Framing::Length(remaining) => {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                let take = self
                    .buffer
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= take as u64;
                Ok(Some(self.buffer.split_to(take).freeze()))
            }
            Framing::Chunked(chunked) => {
                let Decoded { data, finished } = chunked.decode(&mut self.buffer)?;
                if finished {
                    self.framing = Framing::Done;
                }
                Ok((!data.is_empty()).then_some(data))
            }
            Framing::UntilClose => {
                Ok((!self.buffer.is_empty()).then(|| self.buffer.split().freeze()))
            }
            Framing::Done => Ok(None),
        }
    }

    /// Finishes the body from what has already arrived, without waiting,
    /// so that its connection can be reused. A streamed answer is read
    /// up to its `[DONE]` event, and the body's last chunk is usually
    /// right behind it.
    fn finish_without_waiting(&mut self) {
        let mut drained = 0;
        while !matches!(self.framing, Framing::Done) {
            if !matches!(self.take_decoded(), Ok(None)) {
                // Body data nobody will read, or broken framing: the
                // connection is not worth keeping.
                return;
            }
            if matches!(self.framing, Framing::Done) {
                break;
            }
            let Some(stream) = &self.stream else { return };
            self.buffer.reserve(1024);
            match stream.try_read_buf(&mut self.buffer) {
                Ok(read) if read > 0 && drained + read <= MAX_DRAIN => drained += read,
                _ => return,
            }
        }
        self.release_if_done();
    }

    fn fail(&mut self, error: io::Error) -> io::Error {
        self.framing = Framing::Done;
        self.stream = None;
        error
    }

    /// Gives the connection back once the body is read, when the server
    /// keeps it open and sent nothing past the body.
    fn release_if_done(&mut self) {
        if !matches!(self.framing, Framing::Done) || !self.reusable || !self.buffer.is_empty() {
            return;
        }
        if let Some(stream) = self.stream.take() {
            self.idle.give_back(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> io::Result<Head> {
        Ok(parse_head(text.as_bytes())?.expect("a whole head"))
    }

    #[test]
    fn the_framing_and_reuse_follow_the_head() {
        let chunked =
            head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nTransfer-Encoding: CHUNKED\r\n\r\n")
                .unwrap();
        assert!(matches!(chunked.framing, Framing::Chunked(_)) && chunked.keep_alive);

        let listed = head("HTTP/1.1 200 OK\r\nContent-Length: 17, 17\r\n\r\n").unwrap();
        assert!(matches!(listed.framing, Framing::Length(17)));

        let closing =
            head("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n").unwrap();
        assert!(!closing.keep_alive);

        let old = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").unwrap();
        assert!(!old.keep_alive);
        let old_kept =
            head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n").unwrap();
        assert!(old_kept.keep_alive);

        let unframed = head("HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert!(matches!(unframed.framing, Framing::UntilClose) && !unframed.keep_alive);

        let empty = head("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n").unwrap();
        assert!(matches!(empty.framing, Framing::Length(0)));
    }

    #[test]
    fn a_head_with_many_headers_is_read() {
        let many: String = (0..90).map(|n| format!("x-h{n}: v\r\n")).collect();
        let parsed = head(&format!(
            "HTTP/1.1 200 OK\r\n{many}content-length: 2\r\n\r\n"
        ))
        .unwrap();
        assert_eq!(parsed.status, 200);
    }

    #[test]
    fn contradicting_or_broken_heads_are_errors() {
        for text in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert!(head(text).is_err(), "{text:?}");
        }
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-")
            .unwrap()
            .is_none());
    }
}
