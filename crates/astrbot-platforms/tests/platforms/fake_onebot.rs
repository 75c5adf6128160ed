//! A fake OneBot v11 implementation (what NapCat or Lagrange do): it
//! connects to the adapter's reverse WebSocket, pushes events and answers
//! actions by `echo`.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

/// A port nobody listens on right now, for a listener the test configures
/// (an adapter's port cannot be 0).
///
/// Taken below Linux's ephemeral range (32768 and up), where the ports of
/// every bind to port 0 and of every outgoing connection come from: a
/// port found free that way could be handed to another test in between,
/// and the fake would then reach that test's server. Within the process
/// the ports are taken in turn, so no two tests get the same one.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Different test binaries start at different places.
    let start = (std::process::id() % u32::from(COUNT)) as u16;
    loop {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT;
        let port = FIRST + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct FakeOneBot {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Query(&'a str),
}

impl FakeOneBot {
    /// Connects as account `self_id`, retrying while the adapter is not yet
    /// listening; any other failure (e.g. HTTP 401) is returned.
    pub async fn connect(port: u16, auth: Auth<'_>, self_id: &str) -> Result<Self, Error> {
        let query = match auth {
            Auth::Query(token) => format!("?access_token={token}"),
            _ => String::new(),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut request = format!("ws://127.0.0.1:{port}/onebot/v11/ws{query}")
                .into_client_request()
                .unwrap();
            let headers = request.headers_mut();
            headers.insert("X-Self-ID", self_id.parse().unwrap());
            headers.insert("X-Client-Role", "Universal".parse().unwrap());
            if let Auth::Bearer(token) = auth {
                headers.insert("Authorization", format!("Bearer {token}").parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok((socket, _)) => return Ok(FakeOneBot { socket }),
                Err(Error::Io(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub async fn send_event(&mut self, event: Value) {
        self.socket
            .send(Message::Text(event.to_string().into()))
            .await
            .unwrap();
    }

    /// The lifecycle meta event real implementations send first.
    pub async fn send_lifecycle(&mut self, self_id: i64) {
        self.send_event(json!({
            "post_type": "meta_event", "meta_event_type": "lifecycle",
            "sub_type": "connect", "self_id": self_id, "time": 1,
        }))
        .await;
    }

    /// The next action frame the adapter sent.
    pub async fn next_action(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("no action within the wait")
                .expect("connection ended")
                .unwrap();
            if let Message::Text(text) = frame {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    pub async fn answer(&mut self, action: &Value, retcode: i64, wording: &str) {
        let status = if retcode == 0 { "ok" } else { "failed" };
        self.send_event(json!({
            "status": status, "retcode": retcode, "data": {"message_id": 777},
            "message": wording, "wording": wording, "echo": action["echo"],
        }))
        .await;
    }

    /// The next frame, which after a shutdown should be a close.
    pub async fn next_frame(&mut self) -> Option<Result<Message, Error>> {
        tokio::time::timeout(WAIT, self.socket.next())
            .await
            .expect("nothing within the wait")
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        // Drain until the server's close answer so the close is clean.
        while let Some(Ok(_)) = self.socket.next().await {}
    }
}

/// A group message event; each gets a message id of its own, as from a
/// real OneBot implementation (one delivered twice is answered once).
pub fn group_event(self_id: i64, group: i64, user: i64, text: &str) -> Value {
    static NEXT_MESSAGE_ID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(4242);
    let message_id = NEXT_MESSAGE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "time": 1700000000, "self_id": self_id, "post_type": "message",
        "message_type": "group", "sub_type": "normal", "message_id": message_id,
        "group_id": group, "user_id": user,
        "sender": {"user_id": user, "nickname": "Alice", "card": "", "role": "member"},
        "message": [
            {"type": "at", "data": {"qq": self_id.to_string()}},
            {"type": "text", "data": {"text": text}},
        ],
        "raw_message": "", "font": 0,
    })
}
