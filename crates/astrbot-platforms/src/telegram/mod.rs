//! The `telegram` platform: the Telegram Bot API over HTTPS with a
//! configurable base URL, updates by long polling or webhook, replies and
//! proactive sends by chat id.
//!
//! The bot token is part of every API and file URL, so this module never
//! logs URLs and scrubs the token from every error it returns.

mod albums;
mod api;
mod config;
mod inbound;
mod outbound;
mod updates;

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astrbot_core::MessageType;
use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

pub use config::{
    TelegramConfig, TelegramMode, DEFAULT_API_BASE_URL, DEFAULT_FILE_BASE_URL,
    DEFAULT_POLL_TIMEOUT, DEFAULT_WEBHOOK_PORT,
};
pub use inbound::{parse_update, BotIdentity, Parsed};
pub use outbound::{split_text, MAX_TEXT};
pub use updates::SECRET_HEADER;

use crate::adapter::{PlatformAdapter, PlatformError, PlatformStatus, StatusCell};
use crate::config::PlatformConfig;
use crate::in_order::{InOrder, Place};
use crate::message::{InboundMessage, Media, MessagePart, OutboundChain, SessionTarget};
use crate::seen::Seen;
use albums::Albums;
use api::BotApi;
use outbound::{send_chain, truncate_text, Chat};

/// AstrBot's `type` name for Telegram.
pub const KIND: &str = "telegram";
/// The least time between two edits of one message, well inside
/// Telegram's flood limits.
pub const EDIT_INTERVAL: Duration = Duration::from_secs(1);

/// A Telegram bot.
pub struct TelegramAdapter {
    id: String,
    config: TelegramConfig,
    api: BotApi,
    status: StatusCell,
    /// The next `getUpdates` offset; kept across restarts of `run` so a
    /// restart never delivers an update twice.
    offset: AtomicI64,
    me: Mutex<Option<BotIdentity>>,
    /// When each `(chat, message)` was last edited.
    edits: Mutex<HashMap<(String, String), Instant>>,
    /// Albums whose photos are still coming.
    albums: Arc<Albums>,
    /// Updates already handed on, by `update_id`.
    seen: Seen,
    /// Each chat's messages go on in the order they came.
    in_order: Arc<InOrder>,
}

impl TelegramAdapter {
    pub fn new(id: &str, config: TelegramConfig) -> Result<Self, PlatformError> {
        let api = BotApi::new(&config.api_base_url, &config.file_base_url, &config.token)?;
        let albums = Albums::new(config.media_group_timeout, config.media_group_max_wait);
        Ok(TelegramAdapter {
            id: id.to_owned(),
            config,
            api,
            status: StatusCell::default(),
            offset: AtomicI64::new(0),
            me: Mutex::new(None),
            edits: Mutex::new(HashMap::new()),
            albums: Arc::new(albums),
            seen: Seen::default(),
            in_order: Arc::default(),
        })
    }

    pub fn from_config(config: &PlatformConfig) -> Result<Self, PlatformError> {
        TelegramAdapter::new(&config.id, TelegramConfig::from_platform(config)?)
    }

    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    /// The bot as `getMe` described it, once `run` has started.
    pub fn identity(&self) -> Option<BotIdentity> {
        lock(&self.me).clone()
    }

    /// Any Bot API method with JSON parameters; returns its `result`.
    pub async fn call_api(&self, method: &str, params: Value) -> Result<Value, PlatformError> {
        self.api.call(method, &params).await
    }

    /// Sends plain text (split if long) and returns the id of the last
    /// message, for later [`edit_text`](Self::edit_text) calls.
    pub async fn send_text(
        &self,
        target: &SessionTarget,
        text: &str,
    ) -> Result<String, PlatformError> {
        let sent = send_chain(&self.api, target, &OutboundChain::text(text)).await?;
        sent.map(|id| id.to_string())
            .ok_or_else(|| PlatformError::Other("sendMessage returned no message id".into()))
    }

    /// Replaces a sent message's text (`editMessageText`), for streamed
    /// answers. Edits of one message are spaced at least
    /// [`EDIT_INTERVAL`] apart (this waits); text beyond [`MAX_TEXT`] UTF-16
    /// units is cut; an edit that changes nothing is not an error.
    pub async fn edit_text(
        &self,
        session_id: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), PlatformError> {
        let chat = Chat::parse(session_id)?;
        let message: i64 = message_id.trim().parse().map_err(|_| {
            PlatformError::Unsupported(format!("not a Telegram message id: {message_id}"))
        })?;
        let key = (session_id.to_owned(), message_id.to_owned());
        let wait = {
            let mut edits = lock(&self.edits);
            let now = Instant::now();
            // Forget messages nobody edited for a while.
            edits.retain(|_, at| now.saturating_duration_since(*at) < EDIT_INTERVAL * 60);
            let next = edits
                .get(&key)
                .map_or(now, |last| (*last + EDIT_INTERVAL).max(now));
            edits.insert(key, next);
            next - now
        };
        tokio::time::sleep(wait).await;
        let params = json!({
            "chat_id": chat.chat_id(),
            "message_id": message,
            "text": truncate_text(text, MAX_TEXT),
        });
        match self.api.call("editMessageText", &params).await {
            Err(PlatformError::Action { message, .. })
                if message.contains("message is not modified") =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// `getMe`: who we are; a refused token is a clear error.
    async fn identify(&self) -> Result<BotIdentity, PlatformError> {
        let me = match self.api.call("getMe", &json!({})).await {
            Ok(me) => me,
            // 404 is what Telegram answers for a malformed token.
            Err(PlatformError::Action {
                retcode: 401 | 404, ..
            }) => return Err(updates::token_rejected("getMe")),
            Err(error) => return Err(error),
        };
        let identity = BotIdentity {
            id: me
                .get("id")
                .and_then(Value::as_i64)
                .map(|id| id.to_string())
                .unwrap_or_default(),
            username: me
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        *lock(&self.me) = Some(identity.clone());
        Ok(identity)
    }

    /// Parses an update and hands it to the pipeline. One with photos is
    /// handed on from a task of its own once they are downloaded, so that
    /// a slow download holds up neither the other chats nor the answer to
    /// a webhook request; what its chat sends after it waits its turn.
    async fn deliver(
        self: &Arc<Self>,
        bot: &BotIdentity,
        update: &Value,
        inbound: &mpsc::Sender<InboundMessage>,
    ) {
        // Telegram sends a webhook update again when it thinks the first
        // try failed.
        if let Some(id) = update.get("update_id").and_then(Value::as_i64) {
            if !self.seen.first_time(id.to_string()) {
                return;
            }
        }
        let Some(Parsed { message, files }) = parse_update(&self.id, bot, update) else {
            return;
        };
        let album = update.pointer("/message/media_group_id").map(|group| {
            group
                .as_str()
                .map_or_else(|| group.to_string(), str::to_owned)
        });
        // A document reaches the model by its name only, so it is not
        // fetched; its source stays empty.
        let photos: Vec<(usize, String)> = files
            .into_iter()
            .filter(|(index, _)| matches!(message.chain.get(*index), Some(MessagePart::Image(_))))
            .collect();
        let place = self.in_order.take(&message.session_id);
        let mut place = match &album {
            // An album's parts do not wait for each other: the album holds
            // their places and goes in its chat's line as one message.
            Some(group) => {
                self.albums.expect(group, place);
                None
            }
            None => Some(place),
        };
        if photos.is_empty() && place.as_ref().is_none_or(Place::is_next) {
            return self.hand_on(message, album, inbound).await;
        }
        let (adapter, inbound) = (Arc::clone(self), inbound.clone());
        tokio::spawn(async move {
            let mut message = message;
            for (index, file_id) in photos {
                let image = adapter.image(&file_id).await;
                message.chain[index] = image.unwrap_or_else(|error| {
                    tracing::warn!(platform.id = %adapter.id, %error, "could not fetch a photo; passing the file id on");
                    MessagePart::Other {
                        kind: "telegram_file".into(),
                        data: json!({"file_id": file_id, "error": error.to_string()}),
                    }
                });
            }
            if let Some(place) = &mut place {
                place.wait().await;
            }
            adapter.hand_on(message, album, &inbound).await;
        });
    }

    /// Hands a message to the pipeline; an album's photos are answered
    /// once, together.
    async fn hand_on(
        self: &Arc<Self>,
        message: InboundMessage,
        album: Option<String>,
        inbound: &mpsc::Sender<InboundMessage>,
    ) {
        match album {
            Some(group) => self.albums.add(&group, message, inbound),
            // The receiver is gone only while the server shuts down.
            None => {
                let _ = inbound.send(message).await;
            }
        }
    }

    /// A photo's bytes. Telegram's download URL holds the bot token, and
    /// handed to the model it would reach the provider (AstrBot, too,
    /// downloads images and sends their bytes).
    async fn image(&self, file_id: &str) -> Result<MessagePart, PlatformError> {
        let file = self
            .api
            .call("getFile", &json!({"file_id": file_id}))
            .await?;
        let path = file
            .get("file_path")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Other("getFile returned no file_path".into()))?;
        let data = self.api.download(path, MAX_IMAGE_BYTES).await?;
        Ok(MessagePart::Image(Media::Bytes {
            data,
            mime: image_type(path).to_owned(),
        }))
    }

    /// Brings the chat up to date with `answer.text`: full messages first,
    /// then the current one, edited only after [`EDIT_INTERVAL`] unless
    /// this is the `last` call.
    async fn show(
        &self,
        target: &SessionTarget,
        answer: &mut Streamed,
        last: bool,
    ) -> Result<(), PlatformError> {
        while let Some(end) = first_piece_end(&answer.text[answer.start..]) {
            self.complete(target, answer, answer.start + end).await?;
        }

        let pending = &answer.text[answer.start..];
        // Nothing new, or only whitespace (which Telegram refuses).
        if pending.trim().is_empty() || answer.shown == answer.text.len() {
            return Ok(());
        }
        match &answer.message {
            None => answer.message = Some(self.send_text(target, pending).await?),
            Some(id) => {
                let due = answer
                    .last_edit
                    .is_none_or(|at| at.elapsed() >= EDIT_INTERVAL);
                if !(last || due) {
                    return Ok(());
                }
                self.edit_text(&target.session_id, id, pending).await?;
            }
        }
        answer.shown = answer.text.len();
        answer.last_edit = Some(Instant::now());
        Ok(())
    }

    /// Gives the current message its final text, `text[start..end]`, and
    /// starts the next one at `end`.
    async fn complete(
        &self,
        target: &SessionTarget,
        answer: &mut Streamed,
        end: usize,
    ) -> Result<(), PlatformError> {
        let piece = &answer.text[answer.start..end];
        match &answer.message {
            Some(id) if answer.shown != end => {
                self.edit_text(&target.session_id, id, piece).await?;
            }
            Some(_) => {}
            None if !piece.trim().is_empty() => {
                self.send_text(target, piece).await?;
            }
            None => {}
        }
        answer.start = end;
        answer.shown = end;
        answer.message = None;
        answer.last_edit = None;
        Ok(())
    }
}

/// The largest file the Bot API lets a bot download.
const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;

/// An image's type from its file name: Telegram serves files as
/// `application/octet-stream`; photos are JPEG, stickers WebP.
fn image_type(path: &str) -> &'static str {
    let extension = path.rsplit('.').next().unwrap_or_default();
    match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        _ => "image/jpeg",
    }
}

#[async_trait]
impl PlatformAdapter for TelegramAdapter {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        KIND
    }

    async fn run(
        self: Arc<Self>,
        inbound: mpsc::Sender<InboundMessage>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), PlatformError> {
        let bot = match self.identify().await {
            Ok(bot) => bot,
            Err(error) => {
                self.status.set_error(error.to_string());
                return Err(error);
            }
        };
        self.status.clear_error();
        match self.config.mode {
            TelegramMode::Polling => updates::poll(self, bot, inbound, shutdown).await,
            TelegramMode::Webhook => updates::serve_webhook(self, bot, inbound, shutdown).await,
        }
    }

    /// An empty chain sends nothing. Private and group sessions are both
    /// chat ids on Telegram.
    async fn send(
        &self,
        target: &SessionTarget,
        chain: OutboundChain,
    ) -> Result<(), PlatformError> {
        if target.message_type == MessageType::Other {
            return Err(PlatformError::Unsupported(
                "Telegram cannot send to an OtherMessage session".into(),
            ));
        }
        if chain.is_empty() {
            return Ok(());
        }
        send_chain(&self.api, target, &chain).await.map(drop)
    }

    /// The answer appears as one message that grows: sent on the first
    /// text, then edited at most once per [`EDIT_INTERVAL`] while more
    /// arrives, and a last time with the whole text. Once the text no
    /// longer fits one message (counted in UTF-16 units, as Telegram and
    /// [`split_text`] count), that message keeps its first piece and the
    /// answer goes on growing in a new one.
    async fn send_streaming(
        &self,
        target: &SessionTarget,
        mut deltas: mpsc::Receiver<String>,
    ) -> Result<(), PlatformError> {
        let mut answer = Streamed::default();
        while let Some(delta) = deltas.recv().await {
            answer.text.push_str(&delta);
            self.show(target, &mut answer, false).await?;
        }
        self.show(target, &mut answer, true).await
    }

    fn status(&self) -> PlatformStatus {
        self.status.get()
    }
}

/// A streamed answer on its way: `text[..start]` is in full messages,
/// `text[start..]` belongs in the current one, which shows
/// `text[start..shown]` once it is sent.
#[derive(Default)]
struct Streamed {
    text: String,
    start: usize,
    /// The current message's id, once sent.
    message: Option<String>,
    shown: usize,
    /// When the current message was sent or last edited.
    last_edit: Option<Instant>,
}

/// Where the first message's text ends when `text` is too long for one
/// message; the cut is [`split_text`]'s, so streamed and whole answers are
/// split alike.
fn first_piece_end(text: &str) -> Option<usize> {
    if text.encode_utf16().count() <= MAX_TEXT {
        return None;
    }
    split_text(text, MAX_TEXT).first().map(String::len)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data under these locks; a poisoned one is still usable.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
