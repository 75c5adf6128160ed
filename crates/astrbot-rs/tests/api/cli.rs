//! The `astrbot-rs` binary: key management from the shell, `serve` on a
//! data root, and start-up errors a newcomer can act on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_astrbot-rs"));
    command
        .env_remove("ASTRBOT_ROOT")
        .env_remove("DASHBOARD_PORT")
        .env_remove("ASTRBOT_DASHBOARD_PORT")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    command
}

fn run(root: &Path, args: &[&str]) -> (bool, String, String) {
    let output = binary()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `astrbot-rs serve` child, the URL it printed and its log.
struct Served {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn log_contains(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(root: &Path) -> Served {
    let (served, rest) = start_serving(root);
    keep_reading(&served, rest);
    served
}

/// Starts `astrbot-rs serve` on `root` and reads its log up to the line
/// that gives its address; returns it with those lines, and the rest of
/// the log still unread.
fn start_serving(root: &Path) -> (Served, BufReader<ChildStderr>) {
    let mut child = binary()
        .arg("--root")
        .arg(root)
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (found, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).is_ok_and(|read| read > 0) {
            let text = line.strip_suffix('\n').unwrap_or(&line);
            let text = text.strip_suffix('\r').unwrap_or(text).to_owned();
            line.clear();
            let address = text.find("listening on http://").map(|at| {
                let rest = &text[at + "listening on ".len()..];
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            lines.push(text);
            if let Some(address) = address {
                let _ = found.send((address, lines, stderr));
                return;
            }
        }
    });
    let (base, lines, rest) = started
        .recv_timeout(Duration::from_secs(30))
        .expect("the server reports its address");
    let served = Served {
        child,
        base,
        log: Arc::new(Mutex::new(lines)),
    };
    (served, rest)
}

/// Adds the rest of the server's log to `served.log` as it comes.
fn keep_reading(served: &Served, rest: BufReader<ChildStderr>) {
    let log = served.log.clone();
    std::thread::spawn(move || {
        for line in rest.lines().map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    });
}

#[tokio::test]
async fn keys_made_on_the_command_line_work_until_revoked() {
    let root = temp_root();

    let (ok, stdout, stderr) = run(
        &root,
        &[
            "apikey",
            "create",
            "--name",
            "demo",
            "--scopes",
            "chat,im",
            "--expires-in-days",
            "30",
        ],
    );
    assert!(ok, "{stderr}");
    let key = stdout.trim().to_owned();
    assert!(key.starts_with("abk_") && key.len() == 47, "{stdout}");
    assert!(stderr.contains("only time"), "{stderr}");
    let (_, listed, _) = run(&root, &["apikey", "list"]);
    assert!(
        listed.contains(&key[..12]) && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "the list never shows the key");

    let served = serve(&root);
    let client = reqwest::Client::new();
    let bots = |key: String| {
        let client = client.clone();
        let url = format!("{}/api/v1/im/bots", served.base);
        async move {
            let response = client
                .get(url)
                .header("X-API-Key", key)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    assert_eq!(bots(key.clone()).await, 200);
    let forbidden = client
        .get(format!("{}/api/v1/configs", served.base))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    let key_id = listed
        .lines()
        .find(|line| line.contains(&key[..12]))
        .and_then(|line| line.split_whitespace().next())
        .unwrap()
        .to_owned();
    // The server keeps verified keys in memory: use the key a few times so
    // that it is served from there when the revocation comes.
    for _ in 0..3 {
        assert_eq!(bots(key.clone()).await, 200);
    }
    let (ok, _, stderr) = run(&root, &["apikey", "revoke", &key_id]);
    assert!(ok, "{stderr}");
    assert_eq!(
        bots(key.clone()).await,
        401,
        "revocation from another process applies on the next request"
    );

    let (ok, _, _) = run(&root, &["apikey", "delete", &key_id]);
    assert!(ok);
    let (ok, _, stderr) = run(&root, &["apikey", "delete", &key_id]);
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    drop(served);
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn serve_creates_the_data_root_and_warns_about_the_default_password() {
    let root = temp_root();
    let served = serve(&root);

    let response = reqwest::Client::new()
        .post(format!("{}/api/auth/login", served.base))
        .json(&json!({"username": "astrbot", "password": "astrbot"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["data"]["change_pwd_hint"], true);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("data/cmd_config.json")).unwrap()).unwrap();
    assert_eq!(
        config["dashboard"]["jwt_secret"].as_str().unwrap().len(),
        64
    );
    assert!(root.join("data/astrbot-rs.db").is_file());

    assert!(served.log_contains("the admin password is still the default"));
    assert!(served.log_contains("data root ready"));

    // One access line per request, its time in milliseconds to the microsecond.
    wait_until(|| served.log_contains("http.path=/api/auth/login")).await;
    let log = served.log.lock().unwrap().clone();
    let line = log
        .iter()
        .find(|line| line.contains("http.path=/api/auth/login"))
        .unwrap();
    assert!(
        line.contains("http.method=POST") && line.contains("http.status=200"),
        "{line}"
    );
    let duration = line.split("duration_ms=").nth(1).unwrap_or_default();
    let (whole, fraction) = duration.trim().split_once('.').unwrap_or_default();
    assert!(
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() == 3
            && fraction.bytes().all(|b| b.is_ascii_digit()),
        "{line}"
    );
    drop(served);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_malformed_config_stops_start_up_naming_file_line_and_column() {
    let root = temp_root();
    std::fs::write(
        root.join("data/cmd_config.json"),
        "{\n  \"dashboard\": {\n    \"port\": ,\n  }\n}\n",
    )
    .unwrap();

    let (ok, stdout, stderr) = run(&root, &["serve", "--port", "0"]);

    assert!(!ok);
    let output = format!("{stdout}{stderr}");
    assert!(output.contains("cmd_config.json"), "{output}");
    assert!(output.contains("line 3, column 13"), "{output}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["apikey", "--help"],
        vec!["apikey", "create", "--help"],
        vec!["apikey", "list", "--help"],
        vec!["apikey", "revoke", "--help"],
        vec!["apikey", "delete", "--help"],
    ] {
        let output = binary().args(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn bad_scopes_on_the_command_line_are_refused() {
    let root = temp_root();

    let (ok, _, stderr) = run(&root, &["apikey", "create", "--scopes", "chat,admin"]);

    assert!(!ok);
    assert!(stderr.contains("unknown scope"), "{stderr}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_missing_data_root_is_refused_instead_of_created() {
    let missing = std::env::temp_dir().join(format!("astrbot-rs-missing-{}", uuid::Uuid::new_v4()));

    let (ok, _, stderr) = run(&missing, &["apikey", "list"]);

    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!missing.exists());
}

#[test]
fn key_names_cannot_write_to_the_terminal() {
    let root = temp_root();
    let name = "multi\nline\u{2028}\u{1b}[31mred\u{202e}";
    let (ok, _, stderr) = run(&root, &["apikey", "create", "--name", name]);
    assert!(ok, "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "the echo is escaped too: {stderr:?}"
    );

    let (ok, listed, _) = run(&root, &["apikey", "list"]);

    assert!(ok);
    assert!(
        !listed.contains('\u{1b}') && !listed.contains('\u{202e}'),
        "{listed:?}"
    );
    assert_eq!(
        listed.lines().count(),
        2,
        "a header and one row: {listed:?}"
    );
    assert!(
        listed.contains(r"multi\nline\u{2028}\u{1b}[31mred\u{202e}"),
        "{listed:?}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_list_read_only_in_part_is_not_a_crash() {
    let root = temp_root();
    for n in 0..3 {
        let (ok, _, stderr) = run(&root, &["apikey", "create", "--name", &format!("k{n}")]);
        assert!(ok, "{stderr}");
    }

    // `apikey list | head -0`: the reader is gone before the table comes.
    let (ok, stderr) = run_unread(&root, &["apikey", "list"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A new key that could not be shown is not kept.
    let (ok, stderr) = run_unread(&root, &["apikey", "create", "--name", "unseen"]);
    assert!(!ok && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("it was deleted"), "{stderr}");
    let (_, listed, _) = run(&root, &["apikey", "list"]);
    assert!(!listed.contains("unseen"), "{listed}");
    let _ = std::fs::remove_dir_all(root);
}

/// Runs a command whose standard output nobody reads (closed at once);
/// whether it succeeded, and its standard error.
fn run_unread(root: &Path, args: &[&str]) -> (bool, String) {
    let mut child = binary()
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

#[test]
fn an_absurd_expiry_is_refused_not_a_crash() {
    let root = temp_root();

    // The second is past the end of year 9999, which stored timestamps end at.
    for days in ["4294967295", "2932897", "99999999999999999999"] {
        let (ok, _, stderr) = run(&root, &["apikey", "create", "--expires-in-days", days]);

        assert!(!ok);
        assert!(
            stderr.contains("expires_in_days must be at most"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (ok, listed, _) = run(&root, &["apikey", "list"]);
    assert!(ok, "the list still reads");
    assert!(!listed.contains("abk_"), "{listed}");
    let _ = std::fs::remove_dir_all(root);
}

/// A server whose provider sends two deltas of `text` and then goes quiet
/// for longer than the shutdown grace, with a chat key.
struct StalledProvider {
    fake: fake_openai::FakeOpenAi,
    root: std::path::PathBuf,
    key: String,
    served: Served,
}

impl StalledProvider {
    async fn start(text: &str) -> StalledProvider {
        let fake = fake_openai::FakeOpenAi::start(fake_openai::Behaviour {
            text: Some(text.into()),
            hang_after_chunks: Some(2),
            ..Default::default()
        })
        .await;
        let root = temp_root();
        let mut config = config_for(&fake);
        config["provider_sources"][0]["timeout"] = json!(120);
        std::fs::write(
            root.join("data/cmd_config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        let (ok, stdout, stderr) = run(
            &root,
            &["apikey", "create", "--name", "t", "--scopes", "chat"],
        );
        assert!(ok, "{stderr}");
        let key = stdout.trim().to_owned();
        let served = serve(&root);
        StalledProvider {
            fake,
            root,
            key,
            served,
        }
    }

    /// Starts a streamed chat in session `s` and reads it in the background.
    async fn chat(&self, message: &str) -> tokio::task::JoinHandle<SseStream> {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/chat", self.served.base))
            .header("X-API-Key", &self.key)
            .json(&json!({"username": "u", "session_id": "s", "message": message}))
            .send()
            .await
            .unwrap();
        tokio::spawn(read_stream(response))
    }

    fn sigterm(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.served.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// Waits (up to 15 s after `asked_at`) for the process to exit.
    async fn exit_status(&mut self, asked_at: std::time::Instant) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.served.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                asked_at.elapsed() < Duration::from_secs(15),
                "still running"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The bot turns saved in session `s`.
    async fn saved_bot_turns(&self) -> Vec<serde_json::Value> {
        let store = astrbot_store::SqliteStore::open(&self.root.join("data/astrbot-rs.db"))
            .await
            .unwrap();
        astrbot_core::Store::list_history(&store, "webchat", "s")
            .await
            .unwrap()
            .into_iter()
            .map(|turn| turn.content)
            .filter(|content| content["type"] == "bot")
            .collect()
    }
}

impl Drop for StalledProvider {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[tokio::test]
async fn a_turn_still_answering_at_shutdown_is_cut_short_and_saved() {
    let mut server = StalledProvider::start("a partial answer").await;
    let reading = server.chat("hi").await;
    // A second message to the same session waits for the first turn.
    let queued = server.chat("and then?").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked_at = std::time::Instant::now();
    server.sigterm();
    let stream = tokio::time::timeout(Duration::from_secs(15), reading)
        .await
        .expect("the stream ended")
        .unwrap();

    let text = stream.text();
    assert!(
        text.starts_with("a partial")
            && text.ends_with("\n\nLLM 响应错误: the server is shutting down"),
        "{text:?}"
    );
    assert_eq!(stream.types().last().map(String::as_str), Some("end"));
    // The queued turn got its session only after the interrupt: it is
    // answered with the note alone and never reaches the model.
    let queued = queued.await.unwrap();
    assert_eq!(
        queued.text(),
        "LLM 响应错误: the server is shutting down",
        "{}",
        queued.raw
    );
    let asked_model: Vec<_> = server
        .fake
        .requests()
        .into_iter()
        .filter(|request| !is_title_request(&request.body))
        .collect();
    assert_eq!(asked_model.len(), 1, "only the first turn called the model");
    let exited = server.exit_status(asked_at).await;
    assert!(exited.success(), "{exited:?}");
    assert!(
        asked_at.elapsed() < Duration::from_secs(10),
        "exited once the turn was saved, before the grace ran out"
    );
    let bots = server.saved_bot_turns().await;
    assert_eq!(bots.len(), 2, "both turns were saved");
    assert_eq!(bots[0]["message"][0]["text"], text.as_str());
    assert_eq!(bots[1]["message"][0]["text"], queued.text().as_str());
}

#[tokio::test]
async fn a_second_signal_stops_the_chats_at_once_and_still_saves_them() {
    let mut server = StalledProvider::start("cut short").await;
    let reading = server.chat("hi").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let asked_at = std::time::Instant::now();
    for _ in 0..2 {
        server.sigterm();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stream = tokio::time::timeout(Duration::from_secs(15), reading)
        .await
        .expect("the stream ended")
        .unwrap();
    let exited = server.exit_status(asked_at).await;

    assert!(exited.success(), "{exited:?}");
    // The first signal alone waits 8 s before stopping the chat.
    assert!(
        asked_at.elapsed() < Duration::from_secs(6),
        "{:?}",
        asked_at.elapsed()
    );
    assert!(
        stream
            .text()
            .ends_with("\n\nLLM 响应错误: the server is shutting down"),
        "{:?}",
        stream.text()
    );
    assert!(
        !server.saved_bot_turns().await.is_empty(),
        "the cut turn was saved"
    );
}

#[tokio::test]
async fn a_hangup_applies_the_edited_config_file_and_keeps_a_broken_one_out() {
    let fake = fake_openai::FakeOpenAi::start(fake_openai::Behaviour::default()).await;
    let root = temp_root();
    let config_file = root.join("data/cmd_config.json");
    std::fs::write(&config_file, config_for(&fake).to_string()).unwrap();
    let (ok, stdout, stderr) = run(&root, &["apikey", "create", "--scopes", "chat,im"]);
    assert!(ok, "{stderr}");
    let key = stdout.trim().to_owned();
    let served = serve(&root);
    let client = reqwest::Client::new();
    let bots = || async {
        let url = format!("{}/api/v1/im/bots/status", served.base);
        let response = client
            .get(url)
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        body["data"]["bots"].as_array().unwrap().clone()
    };
    let answer = || async {
        let body = json!({"username": "u", "session_id": uuid::Uuid::new_v4().to_string(), "message": "hi"});
        let url = format!("{}/api/v1/chat", served.base);
        let response = client
            .post(url)
            .header("X-API-Key", &key)
            .json(&body)
            .send()
            .await;
        read_stream(response.unwrap()).await.text()
    };
    let hang_up = || {
        let sent = Command::new("kill")
            .args(["-HUP", &served.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let edit = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
        change(&mut config);
        std::fs::write(&config_file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert_eq!(answer().await, "Echo: hi");

    // A bot and a prompt prefix added to the file apply without a restart.
    edit(&|config| {
        config["platform"] = json!([{"id": "qq", "type": "aiocqhttp", "enable": true,
            "ws_reverse_host": "127.0.0.1", "ws_reverse_port": port}]);
        config["provider_settings"]["prompt_prefix"] = json!("Q: {{prompt}}");
    });
    hang_up();
    wait_until(|| served.log_contains("config file reloaded")).await;
    let qq = bots().await.into_iter().find(|bot| bot["id"] == "qq");
    assert_eq!(qq.map(|bot| bot["type"].clone()), Some(json!("aiocqhttp")));
    wait_until(listening).await;
    assert_eq!(answer().await, "Echo: Q: hi");

    // A broken file is refused; what runs stays.
    std::fs::write(&config_file, "{ not json").unwrap();
    hang_up();
    wait_until(|| served.log_contains("was not reloaded")).await;
    assert!(listening());
    assert_eq!(answer().await, "Echo: Q: hi");

    // The bot removed from the file stops.
    std::fs::write(&config_file, config_for(&fake).to_string()).unwrap();
    hang_up();
    wait_until(|| !listening()).await;
    assert!(bots().await.iter().all(|bot| bot["id"] != "qq"));
    assert_eq!(answer().await, "Echo: hi");
}

#[tokio::test]
async fn a_log_nobody_reads_does_not_stop_the_server() {
    let root = temp_root();
    let (ok, key, stderr) = run(&root, &["apikey", "create", "--name", "logs"]);
    assert!(ok, "{stderr}");
    let key = key.trim().to_owned();

    // The log is read up to the address, then left unread with the pipe
    // still open, as by a paused terminal or a stuck log shipper.
    let (served, unread) = start_serving(&root);

    // Every request logs an access line of about 120 bytes: 6,000 are ten
    // times what a pipe holds, and more than the server queues for it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/im/bots", served.base);
    let requests = (0..4).map(|_| {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        tokio::spawn(async move {
            for _ in 0..1500 {
                let response = client.get(&url).header("X-API-Key", &key).send().await;
                let status = response.expect("answered with the log blocked").status();
                assert_eq!(status, 200);
            }
        })
    });
    for request in futures::future::join_all(requests).await {
        request.unwrap();
    }

    // Read again, the log goes on and says how much of it was lost: every
    // request's line is either written or counted in a warning.
    keep_reading(&served, unread);
    let accounted = || {
        let log = served.log.lock().unwrap();
        let written = log
            .iter()
            .filter(|line| line.contains("http.path=/api/v1/im/bots"))
            .count();
        let dropped: usize = log
            .iter()
            .filter(|line| line.contains("log lines were dropped while the log output was blocked"))
            .map(|line| {
                let count = line.split("lines=").nth(1).unwrap_or_default();
                count.trim().parse::<usize>().unwrap_or_default()
            })
            .sum();
        (written, dropped)
    };
    wait_until(|| {
        let (written, dropped) = accounted();
        written + dropped >= 6000
    })
    .await;
    let (written, dropped) = accounted();
    assert!(dropped > 0, "the queue overflowed");
    assert_eq!(
        written + dropped,
        6000,
        "{written} written, {dropped} dropped"
    );
}

/// Polls `done` for up to 10 s.
async fn wait_until(done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
