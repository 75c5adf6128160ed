//! Outbound: chains to `chat.postMessage`, local files through
//! `files.getUploadURLExternal` → upload → `files.completeUploadExternal`,
//! and `chat.update` for editing a sent message (streamed replies).

use serde_json::{json, Value};

use super::api::Body;
use super::events::escape;
use super::SlackAdapter;
use crate::adapter::PlatformError;
use crate::message::{Media, OutboundChain, OutboundPart};

/// Slack truncates messages beyond 40 000 characters; longer text is sent
/// as several messages.
const MAX_TEXT_CHARS: usize = 39_000;

/// A local file to upload.
struct Upload {
    name: String,
    data: Vec<u8>,
}

impl SlackAdapter {
    /// `chat.postMessage` of mrkdwn `text` (already escaped), in a thread
    /// when `thread_ts` is given; returns the new message's `ts`.
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Result<String, PlatformError> {
        let mut body = json!({"channel": channel, "text": text});
        if let Some(thread) = thread_ts {
            body["thread_ts"] = json!(thread);
        }
        let answer = self.call_api("chat.postMessage", body).await?;
        Ok(answer
            .get("ts")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    /// `chat.update`: replaces the text of our message `ts` in `channel`
    /// (plain text; escaped here).
    pub async fn update_text(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
    ) -> Result<(), PlatformError> {
        let body = json!({"channel": channel, "ts": ts, "text": escape(text)});
        self.call_api("chat.update", body).await.map(drop)
    }

    /// Uploads one file into `channel` (and thread) with the external
    /// upload flow.
    pub async fn upload_file(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        name: &str,
        data: Vec<u8>,
    ) -> Result<(), PlatformError> {
        let token = &self.config.bot_token;
        let ticket = self
            .api
            .call(
                "files.getUploadURLExternal",
                token,
                Body::Form(vec![
                    ("filename", name.to_owned()),
                    ("length", data.len().to_string()),
                ]),
            )
            .await?;
        let field = |key: &str| {
            ticket
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    PlatformError::Other(format!("files.getUploadURLExternal gave no {key}"))
                })
        };
        let (url, file_id) = (field("upload_url")?, field("file_id")?);
        self.api.upload(&url, data).await?;
        let mut form = vec![
            ("files", json!([{"id": file_id, "title": name}]).to_string()),
            ("channel_id", channel.to_owned()),
        ];
        if let Some(thread) = thread_ts {
            form.push(("thread_ts", thread.to_owned()));
        }
        self.api
            .call("files.completeUploadExternal", token, Body::Form(form))
            .await
            .map(drop)
    }
}

pub(super) async fn send_chain(
    adapter: &SlackAdapter,
    channel: &str,
    chain: OutboundChain,
) -> Result<(), PlatformError> {
    let mut text = String::new();
    let mut thread_ts = None;
    let mut uploads = Vec::new();
    for part in chain.parts {
        match part {
            OutboundPart::Text(plain) => text.push_str(&escape(&plain)),
            OutboundPart::At { target_id } if target_id == "all" => text.push_str("<!channel>"),
            OutboundPart::At { target_id } => text.push_str(&format!("<@{target_id}>")),
            OutboundPart::Reply { message_id } => thread_ts = Some(message_id),
            OutboundPart::Image(source) => media(&mut text, &mut uploads, None, source).await?,
            OutboundPart::File { name, source } => {
                media(&mut text, &mut uploads, Some(name), source).await?
            }
        }
    }
    if !text.trim().is_empty() {
        for piece in split_text(&text) {
            adapter
                .post_message(channel, piece, thread_ts.as_deref())
                .await?;
        }
    }
    for upload in uploads {
        adapter
            .upload_file(channel, thread_ts.as_deref(), &upload.name, upload.data)
            .await?;
    }
    Ok(())
}

/// URLs become links in the text (Slack unfurls them); local paths and
/// inline bytes are read for upload.
async fn media(
    text: &mut String,
    uploads: &mut Vec<Upload>,
    name: Option<String>,
    source: Media,
) -> Result<(), PlatformError> {
    match source {
        Media::Url(url) => {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            // `<url>` or `<url|name>`; `|` and `>` cannot appear inside.
            let url = url.replace('>', "%3E").replace('|', "%7C");
            match name {
                Some(name) => {
                    text.push_str(&format!("<{url}|{}>", escape(&name).replace('|', "/")))
                }
                None => text.push_str(&format!("<{url}>")),
            }
        }
        Media::Path(path) => {
            let data = tokio::fs::read(&path).await.map_err(|error| {
                PlatformError::Other(format!("cannot read {}: {error}", path.display()))
            })?;
            let name = name.unwrap_or_else(|| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "file".to_owned())
            });
            uploads.push(Upload { name, data });
        }
        Media::Bytes { data, mime } => {
            let name = name.unwrap_or_else(|| format!("image.{}", extension(&mime)));
            uploads.push(Upload { name, data });
        }
    }
    Ok(())
}

fn extension(mime: &str) -> &str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => other
            .rsplit_once('/')
            .map(|(_, sub)| sub)
            .filter(|sub| sub.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or("bin"),
    }
}

/// Pieces of at most [`MAX_TEXT_CHARS`], cut at a line break when there
/// is one in the second half of the piece.
fn split_text(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.chars().count() > MAX_TEXT_CHARS {
        let limit = rest
            .char_indices()
            .nth(MAX_TEXT_CHARS)
            .map_or(rest.len(), |(index, _)| index);
        let cut = match rest[..limit].rfind('\n') {
            Some(newline) if newline > limit / 2 => newline + 1,
            _ => limit,
        };
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_split_and_extensions_guessed() {
        let text = format!("{}\n{}", "a".repeat(30_000), "b".repeat(30_000));
        let pieces = split_text(&text);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces.concat(), text);
        assert!(pieces[0].ends_with('\n'));
        assert_eq!(split_text("short"), vec!["short"]);
        assert_eq!(extension("image/png"), "png");
        assert_eq!(extension("application/x-weird+zip"), "bin");
    }
}
