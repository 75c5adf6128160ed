//! `POST /api/v1/file`: attachment upload. The file is streamed to disk
//! under `data/attachments/<attachment_id>/<basename>`, so the client's name
//! is kept, two uploads of one name never collide, and no name can leave
//! the attachments folder.

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::json::Envelope;
use crate::routes::python::declared_length;
use crate::state::AppState;

/// What a multipart body may hold beyond the file itself before its
/// declared length alone refuses it.
const FORM_MARGIN_BYTES: u64 = 1024 * 1024;

fn too_large(limit: u64) -> Envelope {
    Envelope::error_with_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("File too large: the limit is {} MiB", limit / (1024 * 1024)),
    )
}

/// File names are cut to this many bytes (file systems allow 255).
const MAX_NAME_BYTES: usize = 200;

pub async fn upload_file(State(state): State<AppState>, request: Request) -> Response {
    let answer = upload(&state, request).await;
    if answer.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the file is still on its way.
        return answer.closing_connection();
    }
    answer.into_response()
}

async fn upload(state: &AppState, request: Request) -> Envelope {
    // A body declared far over the limit is refused before it is read; the
    // margin is room for the form's own framing and other fields.
    let limit = state.configs.default_config().max_upload_bytes;
    if declared_length(&request).is_some_and(|length| length > limit + FORM_MARGIN_BYTES) {
        return too_large(limit);
    }
    let Ok(mut multipart) = Multipart::from_request(request, &()).await else {
        return Envelope::error("Missing key: file");
    };
    let mut fields_seen = 0;
    loop {
        match multipart.next_field().await {
            // Werkzeug's `request.files` holds only parts that declare a
            // file name: a plain `file` field is form data, not an upload.
            Ok(Some(field)) if field.name() == Some("file") => match declared_file_name(&field) {
                Some(name) => return store_upload(state, field, &name).await,
                None => fields_seen += 1,
            },
            Ok(Some(_)) => fields_seen += 1,
            Ok(None) => return Envelope::error("Missing key: file"),
            // A form with no parts at all does not parse as multipart; it
            // is the same mistake as a form without `file`.
            Err(error) if fields_seen == 0 && ends_before_any_part(&error) => {
                return Envelope::error("Missing key: file")
            }
            Err(error) => return Envelope::error(format!("Invalid multipart body: {error}")),
        }
    }
}

async fn store_upload(state: &AppState, mut field: Field<'_>, declared_name: &str) -> Envelope {
    let limit = state.configs.default_config().max_upload_bytes;
    let filename = safe_file_name(Some(declared_name));
    let mime_type = field
        .content_type()
        .filter(|mime| !mime.is_empty())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let kind = kind_of(&mime_type);

    let attachment_id = uuid::Uuid::new_v4().to_string();
    let folder = state.root.attachments_dir().join(&attachment_id);
    let path = folder.join(&filename);
    let written = write_field(&mut field, &folder, &path, limit).await;
    if let Err(failure) = written {
        let _ = tokio::fs::remove_dir_all(&folder).await;
        return failure;
    }

    let path_text = path.display().to_string();
    match state
        .store
        .create_attachment(&attachment_id, &path_text, kind, &mime_type)
        .await
    {
        Ok(_) => Envelope::ok(json!({
            "attachment_id": attachment_id,
            "filename": filename,
            "type": kind,
        })),
        Err(error) => {
            tracing::error!(%error, "could not record the attachment");
            let _ = tokio::fs::remove_dir_all(&folder).await;
            Envelope::error("Failed to create attachment")
        }
    }
}

async fn write_field(
    field: &mut Field<'_>,
    folder: &std::path::Path,
    path: &std::path::Path,
    limit: u64,
) -> Result<(), Envelope> {
    let io_failed = |error: std::io::Error| {
        tracing::error!(%error, "could not store an upload");
        Envelope::error("Failed to store the file")
    };
    tokio::fs::create_dir_all(folder).await.map_err(io_failed)?;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Users' uploads: readable by the server's user only.
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await.map_err(io_failed)?;
    let mut size: u64 = 0;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                size += chunk.len() as u64;
                if size > limit {
                    return Err(too_large(limit));
                }
                file.write_all(&chunk).await.map_err(io_failed)?;
            }
            Ok(None) => break,
            Err(error) => {
                return Err(Envelope::error(format!(
                    "Upload interrupted: {}",
                    astrbot_core::with_causes(&error)
                )))
            }
        }
    }
    file.flush().await.map_err(io_failed)
}

/// The file name a part declares, as Werkzeug reads it: RFC 5987's
/// `filename*` (`UTF-8''%E6%97%A5.txt`, percent-decoded) when given, as
/// RFC 6266 prefers it, else `filename`. `None` when it declares neither.
fn declared_file_name(field: &Field<'_>) -> Option<String> {
    extended_file_name(field).or_else(|| field.file_name().map(str::to_owned))
}

/// A part's `filename*`, decoded.
fn extended_file_name(field: &Field<'_>) -> Option<String> {
    let disposition = field.headers().get(header::CONTENT_DISPOSITION)?;
    let extended = disposition
        .to_str()
        .ok()?
        .split(';')
        .map(str::trim)
        .find_map(|parameter| {
            let (name, value) = parameter.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("filename*")
                .then_some(value.trim())
        })?;
    // Some clients quote it, though the RFC does not.
    let extended = extended
        .strip_prefix('"')
        .and_then(|unquoted| unquoted.strip_suffix('"'))
        .unwrap_or(extended);
    let (charset, rest) = extended.split_once('\'')?;
    let (_language, encoded) = rest.split_once('\'')?;
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8") {
        // Werkzeug replaces what does not decode; the upload is kept.
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        // ISO-8859-1, the only other charset RFC 5987 names.
        Some(bytes.into_iter().map(char::from).collect())
    }
}

/// The last component of the client's name (both `/` and `\` separate,
/// since Windows clients send full paths), without control characters;
/// a fresh UUID when nothing usable is left.
pub fn safe_file_name(name: Option<&str>) -> String {
    let base = name
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return uuid::Uuid::new_v4().to_string();
    }
    let mut end = cleaned.len().min(MAX_NAME_BYTES);
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    cleaned[..end].to_owned()
}

/// Whether the multipart body ended before its first part: an empty form.
fn ends_before_any_part(error: &MultipartError) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<multer::Error>())
        .is_some_and(|error| matches!(error, multer::Error::IncompleteStream))
}

/// AstrBot's type mapping, by MIME prefix only.
fn kind_of(mime_type: &str) -> &'static str {
    if mime_type.starts_with("image") {
        "image"
    } else if mime_type.starts_with("audio") {
        "record"
    } else if mime_type.starts_with("video") {
        "video"
    } else {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_or_vanish() {
        assert_eq!(safe_file_name(Some("../../x")), "x");
        assert_eq!(safe_file_name(Some("..\\..\\x")), "x");
        assert_eq!(safe_file_name(Some("a/b/report.pdf")), "report.pdf");
        assert_eq!(safe_file_name(Some("bad\0name.txt")), "badname.txt");
        for hostile in [
            None,
            Some(""),
            Some(".."),
            Some("../"),
            Some("\0"),
            Some(" "),
        ] {
            let name = safe_file_name(hostile);
            assert_eq!(name.len(), 36, "{hostile:?} gave {name}");
        }
        assert!(safe_file_name(Some(&"é".repeat(300))).len() <= MAX_NAME_BYTES);
    }

    #[test]
    fn percent_escapes_decode_and_stray_percents_stay() {
        let decoded = |text: &str| percent_decode_str(text).collect::<Vec<u8>>();
        assert_eq!(decoded("%E6%97%A5.txt"), "日.txt".as_bytes());
        assert_eq!(decoded("100%"), b"100%");
        assert_eq!(decoded("%zz%4"), b"%zz%4");
        assert_eq!(decoded("%+1"), b"%+1");
    }

    #[test]
    fn type_follows_mime_prefix() {
        assert_eq!(kind_of("image/png"), "image");
        assert_eq!(kind_of("audio/wav"), "record");
        assert_eq!(kind_of("video/mp4"), "video");
        assert_eq!(kind_of("text/plain"), "file");
    }
}
