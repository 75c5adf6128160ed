//! When the admin's credentials last changed, so that the admin tokens
//! issued before a new password or name stop working: whoever held one, a
//! stolen one too, has to sign in again.
//!
//! The store keeps a digest of the credentials with the time they were
//! first seen. A change made any way (the account page, a config save, the
//! file reloaded with SIGHUP or edited while the server was stopped) is
//! seen as a new digest and moves the time on.

use std::sync::atomic::{AtomicI64, Ordering};

use astrbot_core::{Store, StoreError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::LoadedConfig;

/// Where the digest and its time are kept (scope and id `global`).
const PREFERENCE: &str = "astrbot_rs_admin_credentials";
const GLOBAL: &str = "global";

/// The time (seconds since the epoch) before which admin tokens count as
/// issued for other credentials.
#[derive(Default)]
pub struct TokenCutoff {
    not_before: AtomicI64,
}

impl TokenCutoff {
    /// Tokens issued before this are refused.
    pub fn not_before(&self) -> i64 {
        self.not_before.load(Ordering::Relaxed)
    }

    /// Notes the credentials of `config` (the default config), moving the
    /// cutoff to `now` when they are not the ones stored. The first ones
    /// ever seen set no cutoff, so an upgrade signs nobody out.
    pub async fn track(
        &self,
        store: &dyn Store,
        config: &LoadedConfig,
        now: i64,
    ) -> Result<(), StoreError> {
        let digest = credentials_digest(config);
        let stored = store.get_preference(GLOBAL, GLOBAL, PREFERENCE).await?;
        let stored_digest = stored
            .as_ref()
            .and_then(|s| s.get("digest"))
            .and_then(Value::as_str);
        let since = stored
            .as_ref()
            .and_then(|s| s.get("since"))
            .and_then(Value::as_i64);
        if let (Some(stored_digest), Some(since)) = (stored_digest, since) {
            if stored_digest == digest {
                self.not_before.store(since, Ordering::Relaxed);
                return Ok(());
            }
        }
        // Logins issue their tokens as of the second after the cutoff (see
        // `login`), so a second change in that same second must move it
        // past them.
        let since = match (&stored, since) {
            (None, _) => 0,
            (Some(_), Some(previous)) => now.max(previous + 1),
            (Some(_), None) => now,
        };
        // In memory first: a store that fails must not keep old tokens valid.
        self.not_before.store(since, Ordering::Relaxed);
        let record = json!({"digest": digest, "since": since});
        store
            .put_preference(GLOBAL, GLOBAL, PREFERENCE, &record)
            .await
    }
}

/// The credentials' digest, keyed with the token secret so that the
/// database alone tells nothing about the password.
fn credentials_digest(config: &LoadedConfig) -> String {
    let dashboard = config.dashboard();
    let mut hasher = Sha256::new();
    for part in [
        &dashboard.jwt_secret,
        &dashboard.username,
        &dashboard.password_md5,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
