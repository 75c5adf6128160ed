//! Developer API keys: generation, hashing and the path → scope table.
//!
//! A key is `abk_` plus 43 URL-safe characters. Two hashes are stored, never
//! the key: AstrBot's PBKDF2-HMAC-SHA256 (100 000 rounds, static salt), so a
//! database moved between AstrBot and astrbot-rs keeps working, and a plain
//! SHA-256 that requests are verified with. A 256-bit random key needs no
//! key stretching, so verification costs one SHA-256 and one indexed lookup
//! instead of AstrBot's ~30 ms of PBKDF2 per request.

use astrbot_core::store::{ApiKeyRecord, NewApiKey};
use astrbot_core::{Store, StoreResult};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every scope a key can hold, in AstrBot's order.
pub const ALL_SCOPES: [&str; 4] = ["chat", "config", "file", "im"];

const KEY_PREFIX: &str = "abk_";
const PBKDF2_SALT: &[u8] = b"astrbot_api_key";
const PBKDF2_ROUNDS: u32 = 100_000;

/// A freshly generated key: the plaintext to show once and what to store.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub plaintext: String,
    pub prefix: String,
    pub key_hash: String,
    pub lookup_hash: String,
}

/// Who a verified key belongs to, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct KeyIdentity {
    pub key_id: String,
    pub scopes: Vec<String>,
}

impl KeyIdentity {
    /// The default identity AstrBot gives a key's requests.
    pub fn username(&self) -> String {
        format!("api_key:{}", self.key_id)
    }
}

/// Generates a key. PBKDF2 makes this cost tens of milliseconds: call it
/// off the async executor.
pub fn generate() -> GeneratedKey {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    GeneratedKey {
        prefix: plaintext[..12].to_owned(),
        key_hash: pbkdf2_hash(&plaintext),
        lookup_hash: lookup_hash(&plaintext),
        plaintext,
    }
}

/// When a key made now for `days` days expires. Timestamps are stored as
/// text with a four-digit year (as AstrBot stores them, and compares them
/// as text), so the latest expiry is the end of year 9999; AstrBot itself
/// cannot compute dates past it.
pub fn expiry_after_days(days: i64) -> Result<DateTime<Utc>, String> {
    if days <= 0 {
        return Err("expires_in_days must be greater than 0".to_owned());
    }
    let now = astrbot_core::time::now();
    let last_day = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_opt(23, 59, 59))
        .map(|last| last.and_utc())
        .unwrap_or(now);
    let most = (last_day - now).num_days();
    if days > most {
        return Err(format!("expires_in_days must be at most {most}"));
    }
    Ok(now + Duration::days(days))
}

/// Generates a key and stores it; returns the record and the plaintext,
/// which exists nowhere else afterwards. Used by the admin API and the CLI.
pub async fn issue(
    store: &dyn Store,
    name: String,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    created_by: String,
) -> StoreResult<(ApiKeyRecord, String)> {
    let generated = tokio::task::spawn_blocking(generate)
        .await
        .map_err(|error| astrbot_core::StoreError::Backend(error.to_string()))?;
    let record = store
        .create_api_key(NewApiKey {
            key_id: uuid::Uuid::new_v4().to_string(),
            name,
            key_hash: generated.key_hash,
            lookup_hash: generated.lookup_hash,
            key_prefix: generated.prefix,
            scopes,
            created_by,
            expires_at,
        })
        .await?;
    tracing::info!(api_key.id = %record.key_id, api_key.prefix = %record.key_prefix, "API key created");
    Ok((record, generated.plaintext))
}

/// AstrBot's stored hash of a key.
pub fn pbkdf2_hash(key: &str) -> String {
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(key.as_bytes(), PBKDF2_SALT, PBKDF2_ROUNDS, &mut derived);
    hex(&derived)
}

/// The fast hash requests are verified with.
pub fn lookup_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Whether a string has the shape of a key AstrBot or we could have issued;
/// anything else is rejected without touching the database.
pub fn is_well_formed(key: &str) -> bool {
    key.len() == 47
        && key.starts_with(KEY_PREFIX)
        && key[4..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The scope an `/api/v1` path needs; `None` for paths we do not serve,
/// which are refused (deny by default) rather than let through.
pub fn required_scope(path: &str) -> Option<&'static str> {
    match path {
        "/api/v1/chat" | "/api/v1/chat/sessions" => Some("chat"),
        "/api/v1/configs" => Some("config"),
        "/api/v1/file" => Some("file"),
        "/api/v1/im/message" | "/api/v1/im/bots" | "/api/v1/im/bots/status" => Some("im"),
        _ => None,
    }
}

/// Whether a key's scopes grant `scope`. `None` (NULL or malformed in the
/// database) grants everything, as does `*`, like AstrBot.
pub fn grants(scopes: Option<&[String]>, scope: &str) -> bool {
    match scopes {
        None => true,
        Some(scopes) => scopes.iter().any(|s| s == "*" || s == scope),
    }
}

/// Lower-case hex; runs on every API request, so one allocation only.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_hash_is_the_lower_case_hex_sha256() {
        assert_eq!(
            lookup_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_have_astrbot_shape() {
        let key = generate();
        assert_eq!(key.plaintext.len(), 47);
        assert!(is_well_formed(&key.plaintext));
        assert_eq!(key.prefix, key.plaintext[..12]);
        assert_eq!(key.key_hash.len(), 64);
        assert_eq!(key.lookup_hash, lookup_hash(&key.plaintext));
    }

    #[test]
    fn pbkdf2_matches_astrbot() {
        // Python: hashlib.pbkdf2_hmac("sha256", b"abk_test", b"astrbot_api_key", 100000).hex()
        assert_eq!(
            pbkdf2_hash("abk_test"),
            "295cede68cf00643f031345001b8d1fca2203c107be83d5c2a8d2cd23bc595c5"
        );
    }

    #[test]
    fn wildcard_and_null_scopes_grant_everything() {
        assert!(grants(None, "chat"));
        assert!(grants(Some(&["*".to_owned()]), "im"));
        assert!(!grants(Some(&["im".to_owned()]), "chat"));
        assert_eq!(required_scope("/api/v1/nope"), None);
        assert_eq!(required_scope("/api/v1/file"), Some("file"));
    }
}
