//! `astrbot-rs apikey …`: key management straight on the data root's
//! database, for admins at a shell. A running server sees the changes on
//! its next request: it keeps verified keys in memory only until the
//! database records a commit, from any process.

use std::io::Write;

use anyhow::{bail, Context};
use astrbot_core::store::ApiKeyRecord;
use astrbot_core::Store;
use astrbot_server::auth::api_key::{self, ALL_SCOPES};
use astrbot_server::DataRoot;
use astrbot_store::SqliteStore;
use chrono::Utc;

use crate::cli::ApikeyCommand;

pub async fn run(root: DataRoot, command: ApikeyCommand) -> anyhow::Result<()> {
    crate::require_root(&root)?;
    root.create_dirs().with_context(|| {
        format!(
            "cannot create the data folders in {}",
            root.root().display()
        )
    })?;
    let store = SqliteStore::open(&root.database())
        .await
        .with_context(|| format!("cannot open the database {}", root.database().display()))?;

    match command {
        ApikeyCommand::Create {
            name,
            scopes,
            expires_in_days,
        } => create(&store, name, scopes, expires_in_days).await,
        ApikeyCommand::List => list(&store).await,
        ApikeyCommand::Revoke { key_id } => {
            if !store
                .revoke_api_key(&key_id, astrbot_core::time::now())
                .await?
            {
                bail!("API key not found: {key_id}");
            }
            println!("revoked {key_id}");
            Ok(())
        }
        ApikeyCommand::Delete { key_id } => {
            if !store.delete_api_key(&key_id).await? {
                bail!("API key not found: {key_id}");
            }
            println!("deleted {key_id}");
            Ok(())
        }
    }
}

async fn create(
    store: &SqliteStore,
    name: String,
    scopes: Vec<String>,
    expires_in_days: Option<u64>,
) -> anyhow::Result<()> {
    let mut chosen: Vec<String> = Vec::new();
    for scope in scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !ALL_SCOPES.contains(&scope) {
            bail!(
                "unknown scope {scope:?}; valid scopes are {}",
                ALL_SCOPES.join(", ")
            );
        }
        if !chosen.iter().any(|s| s == scope) {
            chosen.push(scope.to_owned());
        }
    }
    if chosen.is_empty() {
        bail!("At least one valid scope is required");
    }
    let expires_at = match expires_in_days {
        Some(days) => Some(
            api_key::expiry_after_days(i64::try_from(days).unwrap_or(i64::MAX))
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let name = match name.trim() {
        "" => "Untitled API Key".to_owned(),
        trimmed => trimmed.to_owned(),
    };

    let (record, plaintext) =
        api_key::issue(store, name, chosen, expires_at, "cli".to_owned()).await?;
    // The key is shown once; a key nobody could see must not stay active.
    let shown = writeln!(std::io::stdout().lock(), "{plaintext}");
    if let Err(error) = shown {
        store.delete_api_key(&record.key_id).await?;
        bail!("could not print the new key ({error}); it was deleted");
    }
    eprintln!(
        "Created key {} ({}) with scopes {}, {}. This is the only time the key is shown.",
        record.key_id,
        printable(&record.name),
        record.scopes.clone().unwrap_or_default().join(","),
        match record.expires_at {
            Some(at) => format!("expiring {}", astrbot_core::time::iso(at)),
            None => "never expiring".to_owned(),
        }
    );
    Ok(())
}

async fn list(store: &SqliteStore) -> anyhow::Result<()> {
    let keys = store.list_api_keys().await?;
    let mut table = format!(
        "{:<36}  {:<12}  {:<8}  {:<20}  {:<19}  {:<19}  NAME\n",
        "KEY_ID", "PREFIX", "STATUS", "SCOPES", "EXPIRES", "LAST_USED"
    );
    for key in &keys {
        // Every column but the times can be written to the database by
        // hand, so each is shown escaped.
        let scopes = key.scopes.clone().map_or("*".to_owned(), |s| s.join(","));
        table.push_str(&format!(
            "{:<36}  {:<12}  {:<8}  {:<20}  {:<19}  {:<19}  {}\n",
            printable(&key.key_id),
            printable(&key.key_prefix),
            status(key),
            printable(&scopes),
            short_time(key.expires_at, "never"),
            short_time(key.last_used_at, "-"),
            printable(&key.name)
        ));
    }
    // A reader that stops early (`apikey list | head`) is not an error.
    let written = std::io::stdout().lock().write_all(table.as_bytes());
    if let Err(error) = written {
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(error.into());
        }
    }
    if keys.is_empty() {
        eprintln!("no API keys yet: create one with `astrbot-rs apikey create --name NAME`");
    }
    Ok(())
}

/// `text` safe to print on a terminal: anyone who may create keys names
/// them, and a control character (an escape sequence, a line break) or a
/// reordering mark would let a name rewrite the table. Those are printed
/// escaped (`\u{1b}`, `\n`).
fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for character in text.chars() {
        // Line and paragraph separators, and the marks that reorder text.
        let layout = matches!(
            character,
            '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}'
                | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        );
        if character.is_control() || layout {
            shown.extend(character.escape_default());
        } else {
            shown.push(character);
        }
    }
    shown
}

fn status(key: &ApiKeyRecord) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|at| at < Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

fn short_time(instant: Option<chrono::DateTime<Utc>>, none: &str) -> String {
    instant.map_or(none.to_owned(), |at| {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    })
}
