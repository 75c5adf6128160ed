//! §5.2 and §7.2: `POST /api/v1/file`, attachment upload: the part name,
//! the MIME mapping, where files land, hostile names and the size limit.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fake_openai::Behaviour;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn error(message: &str) -> Value {
    json!({"status": "error", "message": message, "data": null})
}

/// Posts a hand-built multipart body whose only part is `file` with the
/// given raw `Content-Disposition` parameters, so the bytes are exact.
async fn upload_raw(
    app: &TestApp,
    key: &str,
    disposition: &[u8],
    content: &[u8],
) -> (StatusCode, Value) {
    let boundary = format!("boundary{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(b"Content-Disposition: form-data; name=\"file\"");
    body.extend_from_slice(disposition);
    body.extend_from_slice(b"\r\nContent-Type: text/plain\r\n\r\n");
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = app
        .client
        .post(app.url("/api/v1/file"))
        .header("X-API-Key", key)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::from(body))
        .send()
        .await
        .unwrap();
    into_json(response).await
}

fn attachments(app: &TestApp) -> PathBuf {
    app.data_dir().join("attachments")
}

/// The stored file of an answer: `data/attachments/<id>/<filename>`.
fn stored(app: &TestApp, answer: &Value) -> PathBuf {
    attachments(app)
        .join(answer["data"]["attachment_id"].as_str().unwrap())
        .join(answer["data"]["filename"].as_str().unwrap())
}

/// Files that appeared under the root since `before`, other than the
/// database's own files.
fn new_files(app: &TestApp, before: &HashSet<PathBuf>) -> Vec<PathBuf> {
    files_under(&app.root)
        .into_iter()
        .filter(|path| !before.contains(path))
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            !(path.parent() == Some(&app.data_dir()) && name.starts_with("astrbot-rs.db"))
        })
        .collect()
}

fn is_inside(path: &Path, folder: &Path) -> bool {
    path.starts_with(folder)
        && path
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
}

#[tokio::test]
async fn an_empty_form_is_missing_the_file() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let response = app
        .client
        .post(app.url("/api/v1/file"))
        .header("X-API-Key", &key)
        .multipart(reqwest::multipart::Form::new())
        .send()
        .await
        .unwrap();
    let (status, body) = into_json(response).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, error("Missing key: file"));
}

#[tokio::test]
async fn a_form_without_a_file_part_is_missing_the_file() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;
    let form = reqwest::multipart::Form::new().text("other", "value").part(
        "upload",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
    );

    let response = app
        .client
        .post(app.url("/api/v1/file"))
        .header("X-API-Key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = into_json(response).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, error("Missing key: file"));
}

#[tokio::test]
async fn a_body_that_is_not_multipart_is_missing_the_file() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let (json_status, json_body) = app
        .post_json("/api/v1/file", Some(&key), json!({"file": "x"}))
        .await;
    let (empty_status, empty_body) = into_json(
        app.client
            .post(app.url("/api/v1/file"))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(json_status, StatusCode::OK);
    assert_eq!(json_body, error("Missing key: file"));
    assert_eq!(empty_status, StatusCode::OK);
    assert_eq!(empty_body, error("Missing key: file"));
}

#[tokio::test]
async fn a_text_file_is_stored_under_its_own_attachment_folder() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let body = app
        .upload(
            &key,
            "openapi_test.txt",
            "text/plain",
            b"openapi-file-content".to_vec(),
        )
        .await;

    assert_eq!(body["status"], "ok", "{body}");
    assert!(body["message"].is_null());
    let data = body["data"].as_object().unwrap();
    let keys: Vec<&String> = data.keys().collect();
    assert_eq!(keys, ["attachment_id", "filename", "type"]);
    assert!(uuid::Uuid::parse_str(data["attachment_id"].as_str().unwrap()).is_ok());
    assert_eq!(data["filename"], "openapi_test.txt");
    assert_eq!(data["type"], "file");
    assert_eq!(
        std::fs::read(stored(&app, &body)).unwrap(),
        b"openapi-file-content"
    );
}

#[tokio::test]
async fn the_type_follows_the_mime_prefix() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let mut answers = Vec::new();
    for (mime, expected) in [
        ("image/png", "image"),
        ("image/x-unusual", "image"),
        ("audio/wav", "record"),
        ("video/mp4", "video"),
        ("application/pdf", "file"),
        ("text/plain", "file"),
    ] {
        let body = app.upload(&key, "sample.bin", mime, vec![1, 2, 3]).await;
        answers.push((mime, expected, body));
    }

    for (mime, expected, body) in answers {
        assert_eq!(body["status"], "ok", "{mime}: {body}");
        assert_eq!(body["data"]["type"], expected, "{mime}");
    }
}

#[tokio::test]
async fn a_part_without_a_content_type_is_a_file() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;
    let part = reqwest::multipart::Part::bytes(b"raw".to_vec()).file_name("raw.dat");

    let response = app
        .client
        .post(app.url("/api/v1/file"))
        .header("X-API-Key", &key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let (_, body) = into_json(response).await;

    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["data"]["type"], "file");
}

#[tokio::test]
async fn two_uploads_of_one_name_keep_their_own_content() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let first = app
        .upload(&key, "same.txt", "text/plain", b"first".to_vec())
        .await;
    let second = app
        .upload(&key, "same.txt", "text/plain", b"second".to_vec())
        .await;

    assert_eq!(first["data"]["filename"], "same.txt");
    assert_eq!(second["data"]["filename"], "same.txt");
    assert_ne!(
        first["data"]["attachment_id"],
        second["data"]["attachment_id"]
    );
    assert_eq!(std::fs::read(stored(&app, &first)).unwrap(), b"first");
    assert_eq!(std::fs::read(stored(&app, &second)).unwrap(), b"second");
}

#[tokio::test]
async fn file_names_are_read_as_werkzeug_reads_them() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let (_, extended) = upload_raw(
        &app,
        &key,
        b"; filename*=UTF-8''%E6%97%A5%20notes.txt",
        b"x",
    )
    .await;
    let (_, latin) = upload_raw(&app, &key, b"; filename*=iso-8859-1'en'caf%E9.txt", b"x").await;
    // A `file` field without a file name is form data, not a file.
    let (_, plain_field) = upload_raw(&app, &key, b"", b"hello").await;

    assert_eq!(extended["data"]["filename"], "日 notes.txt", "{extended}");
    assert_eq!(latin["data"]["filename"], "café.txt", "{latin}");
    let (_, broken) = upload_raw(&app, &key, b"; filename*=UTF-8''%FF%FE.txt", b"x").await;
    assert_eq!(
        broken["data"]["filename"], "\u{fffd}\u{fffd}.txt",
        "{broken}"
    );
    let quoted_alias = b"; filename*=\"utf8''%C3%A9.txt\"";
    let (_, quoted) = upload_raw(&app, &key, quoted_alias, b"x").await;
    assert_eq!(quoted["data"]["filename"], "\u{e9}.txt", "{quoted}");
    let both = b"; filename=\"fallback.txt\"; filename*=UTF-8''%E6%97%A5.txt";
    let (_, preferred) = upload_raw(&app, &key, both, b"x").await;
    assert_eq!(preferred["data"]["filename"], "\u{65e5}.txt", "{preferred}");
    assert_eq!(plain_field, error("Missing key: file"));
}

#[cfg(unix)]
#[tokio::test]
async fn uploads_and_the_database_are_readable_by_the_servers_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;
    let uploaded = app
        .upload(&key, "private.txt", "text/plain", b"mine".to_vec())
        .await;

    for file in [
        stored(&app, &uploaded),
        app.data_dir().join("astrbot-rs.db"),
    ] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", file.display());
    }
}

#[tokio::test]
async fn hostile_file_names_stay_inside_the_attachments_folder() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;
    let escape = format!("escape-{}.txt", uuid::Uuid::new_v4().simple());
    let before: HashSet<PathBuf> = files_under(&app.root).into_iter().collect();
    let names: Vec<(String, Vec<u8>)> = vec![
        (
            "../../x".into(),
            format!("; filename=\"../../../{escape}\"").into_bytes(),
        ),
        (
            r"..\..\x".into(),
            format!("; filename=\"..\\..\\..\\{escape}\"").into_bytes(),
        ),
        (
            "absolute".into(),
            format!("; filename=\"/tmp/{escape}\"").into_bytes(),
        ),
        ("empty".into(), b"; filename=\"\"".to_vec()),
        ("..".into(), b"; filename=\"..\"".to_vec()),
        (".".into(), b"; filename=\".\"".to_vec()),
        ("../".into(), b"; filename=\"../\"".to_vec()),
        (
            "RFC 5987".into(),
            format!("; filename*=UTF-8''..%2F..%2F..%2F{escape}").into_bytes(),
        ),
    ];

    let mut answers = Vec::new();
    for (what, disposition) in &names {
        answers.push((what, upload_raw(&app, &key, disposition, b"hostile").await));
    }

    for (what, (status, body)) in &answers {
        assert_eq!(*status, StatusCode::OK, "{what}: {body}");
        assert_eq!(body["status"], "ok", "{what}: {body}");
        let filename = body["data"]["filename"].as_str().unwrap();
        assert!(!filename.is_empty(), "{what}");
        assert!(
            !filename.contains('/') && !filename.contains('\\'),
            "{what}: {filename}"
        );
        assert!(!filename.contains('\0'), "{what}: {filename:?}");
        assert!(filename != "." && filename != "..", "{what}: {filename}");
        let path = stored(&app, body);
        assert!(
            is_inside(&path, &attachments(&app)),
            "{what}: {}",
            path.display()
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"hostile", "{what}");
    }
    let outside: Vec<PathBuf> = new_files(&app, &before)
        .into_iter()
        .filter(|path| !is_inside(path, &attachments(&app)))
        .collect();
    assert!(
        outside.is_empty(),
        "files written outside data/attachments: {outside:?}"
    );
    assert!(!std::env::temp_dir().join(&escape).exists());
    assert!(!Path::new("/tmp").join(&escape).exists());
    assert!(!app.root.join(&escape).exists());
    assert_eq!(new_files(&app, &before).len(), names.len());
}

#[tokio::test]
async fn a_file_name_with_a_nul_byte_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;
    let before: HashSet<PathBuf> = files_under(&app.root).into_iter().collect();

    let (status, body) = upload_raw(&app, &key, b"; filename=\"bad\0name.txt\"", b"nul").await;

    // A NUL is not allowed in a multipart header, so the part cannot be
    // read at all: the upload is refused in the envelope (AstrBot: HTTP 500).
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid multipart body"),
        "{body}"
    );
    assert!(new_files(&app, &before).is_empty());
}

#[tokio::test]
async fn path_like_names_keep_only_their_basename() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let (_, slashes) = upload_raw(&app, &key, b"; filename=\"a/b/report.pdf\"", b"pdf").await;
    let (_, backslashes) = upload_raw(
        &app,
        &key,
        b"; filename=\"C:\\\\Users\\\\me\\\\report.pdf\"",
        b"pdf",
    )
    .await;

    assert_eq!(slashes["data"]["filename"], "report.pdf", "{slashes}");
    let name = backslashes["data"]["filename"].as_str().unwrap();
    assert!(
        name.ends_with("report.pdf") && !name.contains('\\'),
        "{name}"
    );
}

#[tokio::test]
async fn an_upload_over_the_configured_limit_is_refused_with_413_and_leaves_nothing() {
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["astrbot_rs"] = json!({"max_upload_mb": 1});
    })
    .await;
    let (key, _) = app.create_key(&["file"]).await;
    let before = files_under(&attachments(&app));

    let response = app
        .client
        .post(app.url("/api/v1/file"))
        .header("X-API-Key", &key)
        .multipart(
            reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(vec![b'x'; 2 * 1024 * 1024])
                    .file_name("big.bin")
                    .mime_str("application/octet-stream")
                    .unwrap(),
            ),
        )
        .send()
        .await
        .unwrap();
    let closes = response.headers().get("connection").cloned();
    let (status, body) = into_json(response).await;
    let small = app
        .upload(
            &key,
            "small.bin",
            "application/octet-stream",
            vec![b'y'; 512 * 1024],
        )
        .await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        closes.as_ref().map(|value| value.to_str().unwrap()),
        Some("close"),
        "the rest of the file is not read"
    );
    assert_eq!(body["status"], "error");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["data"].is_null());
    assert_eq!(
        small["status"], "ok",
        "a file under the limit still uploads: {small}"
    );
    let after: Vec<PathBuf> = files_under(&attachments(&app))
        .into_iter()
        .filter(|path| !before.contains(path))
        .collect();
    assert_eq!(
        after,
        [stored(&app, &small)],
        "no partial file of the refused upload"
    );
    let folders = std::fs::read_dir(attachments(&app)).unwrap().count();
    assert_eq!(folders, 1, "no empty attachment folder is left");
}

#[tokio::test]
async fn an_uploaded_file_is_recorded_with_its_mime_type() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file"]).await;

    let body = app
        .upload(&key, "pic.png", "image/png", vec![0x89, b'P', b'N', b'G'])
        .await;
    let store = astrbot_store::SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let record = astrbot_core::Store::get_attachment(
        &store,
        body["data"]["attachment_id"].as_str().unwrap(),
    )
    .await
    .unwrap()
    .expect("the attachment row exists");

    assert_eq!(record.kind, "image");
    assert_eq!(record.mime_type, "image/png");
    assert_eq!(PathBuf::from(&record.path), stored(&app, &body));
    assert!(Path::new(&record.path).is_absolute());
}
