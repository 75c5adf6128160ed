//! The test harness: a running server, its fake provider, and typed helpers
//! for the calls tests make.

use std::path::{Path, PathBuf};
use std::time::Duration;

use astrbot_server::{ConnectionLimits, DataRoot, Server, ServerOptions};
use fake_openai::{Behaviour, FakeOpenAi};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Upper bound for any single exchange; a hang fails the test instead of
/// blocking the run.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub base: String,
    pub root: PathBuf,
    pub client: reqwest::Client,
    pub fake: FakeOpenAi,
    shutdown: Option<oneshot::Sender<()>>,
}

/// A temporary folder removed when dropped.
pub fn temp_root() -> PathBuf {
    let root = std::env::temp_dir().join(format!("astrbot-rs-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(root.join("data")).unwrap();
    root
}

/// The default test config: one provider `fake` pointing at the fake server.
pub fn config_for(fake: &FakeOpenAi) -> Value {
    json!({
        "provider_sources": [{
            "id": "fake-source", "provider": "openai", "type": "openai_chat_completion",
            "provider_type": "chat_completion", "enable": true, "key": ["sk-test-1"],
            "api_base": fake.base_url(), "timeout": 3, "custom_headers": {}
        }],
        "provider": [{
            "id": "fake", "provider_source_id": "fake-source", "model": "fake-model",
            "enable": true
        }],
        "provider_settings": {"default_provider_id": "fake", "streaming_response": false},
        "platform": [],
    })
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Behaviour::default(), |_| {}).await
}

/// Starts a fake provider with `behaviour`, writes the default test config
/// (after `edit` changed it) and starts the server.
pub async fn spawn_app_with(behaviour: Behaviour, edit: impl FnOnce(&mut Value)) -> TestApp {
    spawn_app_with_limits(behaviour, ConnectionLimits::default(), edit).await
}

/// [`spawn_app_with`], giving silent clients `limits`.
pub async fn spawn_app_with_limits(
    behaviour: Behaviour,
    limits: ConnectionLimits,
    edit: impl FnOnce(&mut Value),
) -> TestApp {
    let fake = FakeOpenAi::start(behaviour).await;
    let mut config = config_for(&fake);
    edit(&mut config);
    let root = temp_root();
    std::fs::write(
        root.join("data/cmd_config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    start_server_with_limits(root, fake, limits).await
}

/// Starts the server on an existing root.
pub async fn start_server(root: PathBuf, fake: FakeOpenAi) -> TestApp {
    start_server_with_limits(root, fake, ConnectionLimits::default()).await
}

/// Starts the server on an existing root, giving silent clients `limits`.
pub async fn start_server_with_limits(
    root: PathBuf,
    fake: FakeOpenAi,
    limits: ConnectionLimits,
) -> TestApp {
    let server = Server::bind(ServerOptions {
        root: DataRoot::new(&root),
        host: Some("127.0.0.1".into()),
        port: Some(0),
        limits,
    })
    .await
    .expect("server starts");
    let base = format!("http://{}", server.local_addr().unwrap());
    let (shutdown, signal) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = signal.await;
    }));
    TestApp {
        base,
        root,
        client: reqwest::Client::builder()
            .timeout(EXCHANGE_TIMEOUT)
            .build()
            .unwrap(),
        fake,
        shutdown: Some(shutdown),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A parsed SSE answer: its `data:` events and whether keep-alive comments
/// were seen.
#[derive(Debug, Clone)]
pub struct SseStream {
    pub status: StatusCode,
    pub content_type: String,
    pub events: Vec<Value>,
    pub raw: String,
}

impl SseStream {
    pub fn types(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn first_of(&self, kind: &str) -> Option<&Value> {
        self.events.iter().find(|e| e["type"] == kind)
    }

    /// The concatenated text of the streamed (or whole) plain events.
    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter(|e| e["type"] == "plain" && e["chain_type"].is_null())
            .filter_map(|e| e["data"].as_str())
            .collect()
    }
}

pub fn parse_sse(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        .flat_map(|block| block.lines())
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("every data line is JSON"))
        .collect()
}

impl TestApp {
    /// A plain TCP connection to the server, for requests written by hand.
    pub async fn connect(&self) -> tokio::net::TcpStream {
        let address = self.base.trim_start_matches("http://");
        tokio::net::TcpStream::connect(address).await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Logs in as the default admin and returns the JWT.
    pub async fn admin_token(&self) -> String {
        let (status, body) = self
            .post_json(
                "/api/auth/login",
                None,
                json!({"username": "astrbot", "password": "77b90590a8945a7d36c963981a307dc9"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok", "{body}");
        body["data"]["token"].as_str().unwrap().to_owned()
    }

    /// Creates a key through the admin API and returns (plaintext, key_id).
    pub async fn create_key(&self, scopes: &[&str]) -> (String, String) {
        let token = self.admin_token().await;
        let (_, body) = self
            .admin_post(
                &token,
                "/api/apikey/create",
                json!({"name": "test", "scopes": scopes}),
            )
            .await;
        assert_eq!(body["status"], "ok", "{body}");
        (
            body["data"]["api_key"].as_str().unwrap().to_owned(),
            body["data"]["key_id"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn admin_post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        into_json(response).await
    }

    pub async fn admin_get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        into_json(response).await
    }

    /// GET with `X-API-Key`.
    pub async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        into_json(request.send().await.unwrap()).await
    }

    /// POST a JSON body with `X-API-Key`.
    pub async fn post_json(
        &self,
        path: &str,
        key: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        into_json(request.send().await.unwrap()).await
    }

    /// POSTs to `/api/v1/chat` and reads the whole SSE answer.
    pub async fn chat(&self, key: &str, body: Value) -> SseStream {
        let response = self
            .client
            .post(self.url("/api/v1/chat"))
            .header("X-API-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        read_stream(response).await
    }

    /// Uploads bytes as the multipart part `file`.
    pub async fn upload(&self, key: &str, name: &str, mime: &str, bytes: Vec<u8>) -> Value {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(mime)
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .client
            .post(self.url("/api/v1/file"))
            .header("X-API-Key", key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        into_json(response).await.1
    }

    /// The chat-completion requests the fake received that answer a user
    /// (title requests left out).
    pub fn chat_requests(&self) -> Vec<Value> {
        self.fake
            .requests()
            .into_iter()
            .map(|r| r.body)
            .filter(|body| !is_title_request(body))
            .collect()
    }

    /// Bot `id`'s entry in `/api/v1/im/bots/status` (null when absent).
    pub async fn bot_status(&self, key: &str, id: &str) -> Value {
        let (_, body) = self.get("/api/v1/im/bots/status", Some(key)).await;
        body["data"]["bots"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|bot| bot["id"] == id)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (bounded) until bot `id` runs, so that a proactive send finds it.
    pub async fn wait_bot_running(&self, key: &str, id: &str) {
        self.eventually(&format!("bot {id} runs"), || async {
            self.bot_status(key, id).await["running"] == true
        })
        .await;
    }

    /// Waits (bounded) until bot `id` reports an error; its status entry.
    pub async fn wait_bot_error(&self, key: &str, id: &str) -> Value {
        self.eventually(&format!("bot {id} reports an error"), || async {
            self.bot_status(key, id).await["last_error"].is_string()
        })
        .await;
        self.bot_status(key, id).await
    }

    /// Polls until `check` holds or the deadline passes.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

/// Reads a chat answer to its end: the SSE events, or the JSON envelope of
/// an error answered before streaming.
pub async fn read_stream(response: reqwest::Response) -> SseStream {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let raw = tokio::time::timeout(EXCHANGE_TIMEOUT, response.text())
        .await
        .expect("the stream ends")
        .unwrap();
    let events = if content_type.starts_with("text/event-stream") {
        parse_sse(&raw)
    } else {
        vec![serde_json::from_str(&raw).unwrap()]
    };
    SseStream {
        status,
        content_type,
        events,
        raw,
    }
}

pub fn is_title_request(body: &Value) -> bool {
    body["messages"][0]["content"]
        .as_str()
        .is_some_and(|system| system.starts_with("Write a title"))
}

pub async fn into_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("expected a JSON body, got {status}: {text}"));
    (status, body)
}

/// The files under a folder, recursively.
pub fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}
