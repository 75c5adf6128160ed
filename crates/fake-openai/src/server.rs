//! The server's lifecycle: binding 127.0.0.1, sharing the behaviour and the
//! recorded requests with the handlers, and shutting down on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::behaviour::Behaviour;
use crate::handlers;

/// One chat-completions request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The JSON body; a body that is not JSON is kept as a string value.
    pub body: Value,
    /// The `Authorization` header value (`"Bearer <key>"`), if any.
    pub authorization: Option<String>,
    /// All request headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The key of a `Bearer` authorization, if any.
    pub fn bearer_key(&self) -> Option<&str> {
        self.authorization.as_deref()?.strip_prefix("Bearer ")
    }

    /// The value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// State the handlers share with the `FakeOpenAi` handle.
#[derive(Clone)]
pub(crate) struct Shared {
    pub behaviour: Arc<RwLock<Behaviour>>,
    pub requests: Arc<Mutex<Vec<RecordedRequest>>>,
    /// Turns `true` at shutdown; hanging answers wait for it so that no
    /// task outlives the server.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn record(&self, request: RecordedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(request);
    }
}

/// Waits until the server shuts down (or forever while it runs).
pub(crate) async fn until_shutdown(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone, which is a shutdown too.
    let _ = shutdown.wait_for(|down| *down).await;
}

/// A running fake OpenAI-compatible server on 127.0.0.1.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Shared,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl FakeOpenAi {
    /// Starts a server on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// If no port can be bound, which in a test is fatal anyway.
    pub async fn start(behaviour: Behaviour) -> FakeOpenAi {
        Self::start_on(0, behaviour)
            .await
            .expect("fake-openai: cannot bind 127.0.0.1")
    }

    /// Starts a server on the given port of 127.0.0.1 (0 picks a free one).
    pub async fn start_on(port: u16, behaviour: Behaviour) -> std::io::Result<FakeOpenAi> {
        // A deep accept queue, as a real provider has: tokio's default of
        // 1,024 overflows when a server opens thousands of streams at once.
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind((Ipv4Addr::LOCALHOST, port).into())?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Shared {
            behaviour: Arc::new(RwLock::new(behaviour)),
            requests: Arc::new(Mutex::new(Vec::new())),
            shutdown: shutdown_rx.clone(),
        };
        let app = handlers::router(shared.clone());
        let task = tokio::spawn(async move {
            // Deltas are small writes; without TCP_NODELAY each one after
            // the first waits for the client's delayed ACK (~40 ms).
            let listener = listener.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(until_shutdown(shutdown_rx))
                .await;
            if let Err(error) = served {
                eprintln!("fake-openai: server error: {error}");
            }
        });
        Ok(FakeOpenAi {
            addr,
            shared,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base, e.g. `http://127.0.0.1:41234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every chat-completions request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour()
    }

    /// Changes how later requests are answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self
            .shared
            .behaviour
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = behaviour;
    }

    /// Stops the server and waits for it to finish; hanging answers end.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        // Without waiting: the accept loop and open answers end on their own.
        self.shutdown.send_replace(true);
    }
}
