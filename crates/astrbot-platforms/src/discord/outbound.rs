//! Result chains in Discord's message format: text (with `<@id>` mentions)
//! split at 2000 characters, a reply as `message_reference`, local or
//! inline files as multipart `files[n]` uploads, URL media as links.

use std::path::Path;

use serde_json::{json, Value};

use super::rest::Body;
use crate::adapter::PlatformError;
use crate::message::{Media, OutboundChain, OutboundPart};

/// Discord's limit on a message's `content`.
pub const MAX_CONTENT_CHARS: usize = 2000;
/// Discord's limit on attachments per message.
const MAX_FILES: usize = 10;

/// A file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Upload {
    pub name: String,
    pub mime: String,
    pub data: Vec<u8>,
}

/// One `POST /channels/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Draft {
    pub content: String,
    pub reply_to: Option<String>,
    pub everyone: bool,
    pub files: Vec<Upload>,
}

/// The chain as the messages to create, in order. Files on disk are read
/// here, so a missing file fails the send before anything is posted.
pub(super) async fn drafts(chain: &OutboundChain) -> Result<Vec<Draft>, PlatformError> {
    let mut content = String::new();
    let mut reply_to = None;
    let mut everyone = false;
    let mut files = Vec::new();
    for part in &chain.parts {
        match part {
            OutboundPart::Text(text) => content.push_str(text),
            OutboundPart::At { target_id } if target_id == "all" => {
                everyone = true;
                content.push_str("@everyone ");
            }
            OutboundPart::At { target_id } => content.push_str(&format!("<@{target_id}> ")),
            OutboundPart::Reply { message_id } => reply_to = Some(message_id.clone()),
            OutboundPart::Image(media) => {
                media_part(media, "image", &mut content, &mut files).await?
            }
            OutboundPart::File { name, source } => {
                media_part(source, name, &mut content, &mut files).await?
            }
        }
    }

    let mut drafts: Vec<Draft> = split_content(&content)
        .into_iter()
        .map(|content| Draft {
            content,
            everyone,
            ..Draft::default()
        })
        .collect();
    let mut batches = files.chunks(MAX_FILES).map(<[Upload]>::to_vec);
    // The first batch of files goes with the last piece of text.
    if let Some(last) = drafts.last_mut() {
        last.files = batches.next().unwrap_or_default();
    }
    for files in batches {
        drafts.push(Draft {
            files,
            everyone,
            ..Draft::default()
        });
    }
    if let Some(first) = drafts.first_mut() {
        first.reply_to = reply_to;
    }
    Ok(drafts)
}

/// URL media become a link in the text; paths and bytes are uploads.
async fn media_part(
    media: &Media,
    name: &str,
    content: &mut String,
    files: &mut Vec<Upload>,
) -> Result<(), PlatformError> {
    match media {
        Media::Url(url) => {
            if !content.is_empty() && !content.ends_with('\n') {
                content.push('\n');
            }
            content.push_str(url);
            content.push('\n');
        }
        Media::Path(path) => {
            let data = tokio::fs::read(path).await.map_err(|error| {
                PlatformError::Other(format!("cannot read {}: {error}", path.display()))
            })?;
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or(name)
                .to_owned();
            files.push(Upload {
                mime: mime_for(&name).to_owned(),
                name,
                data,
            });
        }
        Media::Bytes { data, mime } => {
            let name = if Path::new(name).extension().is_some() {
                name.to_owned()
            } else {
                format!("{name}.{}", extension_for(mime))
            };
            files.push(Upload {
                name,
                mime: mime.clone(),
                data: data.clone(),
            });
        }
    }
    Ok(())
}

/// Splits text into pieces of at most [`MAX_CONTENT_CHARS`] characters,
/// preferring a line break, then a space, in the second half of a piece.
/// Whitespace-only text yields nothing.
pub fn split_content(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text.trim_end();
    while !rest.trim().is_empty() {
        let Some((limit, _)) = rest.char_indices().nth(MAX_CONTENT_CHARS) else {
            pieces.push(rest.to_owned());
            break;
        };
        let window = &rest[..limit];
        let half = window
            .char_indices()
            .nth(MAX_CONTENT_CHARS / 2)
            .map_or(0, |(i, _)| i);
        let cut = window[half..]
            .rfind('\n')
            .or_else(|| window[half..].rfind(' '))
            .map_or(limit, |at| half + at + 1);
        pieces.push(rest[..cut].trim_end().to_owned());
        rest = &rest[cut..];
    }
    pieces
}

impl Draft {
    fn payload(&self) -> Value {
        let mut parse = vec!["users"];
        if self.everyone {
            parse.push("everyone");
        }
        // Model output saying "@everyone" or `<@&role>` pings nobody; only
        // users, and everyone when the chain asked with an `At { "all" }`.
        let mut payload = json!({
            "content": self.content,
            "allowed_mentions": {"parse": parse, "replied_user": true},
        });
        if let Some(message_id) = &self.reply_to {
            payload["message_reference"] =
                json!({"message_id": message_id, "fail_if_not_exists": false});
        }
        if !self.files.is_empty() {
            payload["attachments"] = self
                .files
                .iter()
                .enumerate()
                .map(|(index, file)| json!({"id": index, "filename": file.name}))
                .collect();
        }
        payload
    }

    /// JSON, or multipart with `payload_json` and `files[n]` when there are
    /// uploads.
    pub fn body(&self, boundary: &str) -> Body {
        let payload = self.payload();
        if self.files.is_empty() {
            return Body::Json(payload);
        }
        let mut data = Vec::new();
        let mut part = |headers: String, content: &[u8]| {
            data.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
            data.extend_from_slice(content);
            data.extend_from_slice(b"\r\n");
        };
        part(
            "Content-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json".into(),
            payload.to_string().as_bytes(),
        );
        for (index, file) in self.files.iter().enumerate() {
            part(
                format!(
                    "Content-Disposition: form-data; name=\"files[{index}]\"; filename=\"{}\"\r\nContent-Type: {}",
                    quoted(&file.name),
                    file.mime
                ),
                &file.data,
            );
        }
        data.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Body::Multipart {
            boundary: boundary.to_owned(),
            data,
        }
    }
}

/// A file name safe inside a quoted header parameter.
fn quoted(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn mime_for(name: &str) -> &'static str {
    let extension = Path::new(name)
        .extension()
        .and_then(|ext| ext.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

fn extension_for(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "audio/mpeg" => "mp3",
        "audio/wav" => "wav",
        "audio/ogg" => "ogg",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_splits_at_line_breaks_and_limits() {
        let line = "a".repeat(1500);
        let text = format!("{line}\n{line}");
        assert_eq!(split_content(&text), vec![line.clone(), line.clone()]);
        let solid = "é".repeat(4500);
        let pieces = split_content(&solid);
        assert_eq!(
            pieces.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [2000, 2000, 500]
        );
        assert!(split_content("  \n ").is_empty());
        assert_eq!(split_content("hi"), vec!["hi"]);
    }

    #[tokio::test]
    async fn chain_becomes_drafts() {
        let chain = OutboundChain::new()
            .with(OutboundPart::Reply {
                message_id: "9".into(),
            })
            .with(OutboundPart::At {
                target_id: "7".into(),
            })
            .with(OutboundPart::Text("look".into()))
            .with(OutboundPart::Image(Media::Url("https://x/a.png".into())))
            .with(OutboundPart::Image(Media::Bytes {
                data: b"PNG".to_vec(),
                mime: "image/png".into(),
            }));
        let drafts = drafts(&chain).await.unwrap();
        assert_eq!(drafts.len(), 1);
        let draft = &drafts[0];
        assert_eq!(draft.content, "<@7> look\nhttps://x/a.png");
        assert_eq!(draft.reply_to.as_deref(), Some("9"));
        assert_eq!(draft.files[0].name, "image.png");
        let Body::Multipart { data, .. } = draft.body("b0undary") else {
            panic!("files need multipart");
        };
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains("name=\"payload_json\""));
        assert!(text.contains("name=\"files[0]\"; filename=\"image.png\""));
        assert!(text.contains("\"message_reference\":{\"message_id\":\"9\""));
        assert!(text.ends_with("--b0undary--\r\n"));
    }

    #[tokio::test]
    async fn files_only_and_missing_path() {
        let chain = OutboundChain::new().with(OutboundPart::File {
            name: "r.txt".into(),
            source: Media::Bytes {
                data: b"x".to_vec(),
                mime: "text/plain".into(),
            },
        });
        let drafts = drafts(&chain).await.unwrap();
        assert_eq!((drafts.len(), drafts[0].content.as_str()), (1, ""));
        let missing = OutboundChain::new().with(OutboundPart::Image(Media::Path(
            "/nonexistent/x.png".into(),
        )));
        assert!(super::drafts(&missing).await.is_err());
        let Body::Json(payload) = Draft {
            content: "@everyone".into(),
            ..Draft::default()
        }
        .body("b") else {
            panic!("text is JSON");
        };
        assert_eq!(payload["allowed_mentions"]["parse"], json!(["users"]));
    }
}
