//! Verified API keys kept in memory, so that a busy key costs one SHA-256
//! and no database read per request.
//!
//! Every entry remembers the store's [`ChangeStamp`] taken before its
//! record was read, and is used only while the stamp is unchanged: any
//! commit, from this server or from another process such as
//! `astrbot-rs apikey revoke`, sends the next request back to the database.
//! Revocation and deletion therefore still apply on the next request.
//! Expiry is checked on every hit, since it needs no write.

use std::collections::HashMap;
use std::sync::RwLock;

use astrbot_core::store::ApiKeyRecord;
use astrbot_core::ChangeStamp;
use chrono::{DateTime, Utc};

/// Beyond this many keys the cache starts over rather than grow: only
/// keys that verified are stored, so this is only reached by deployments
/// with very many live keys.
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct VerifiedKeys {
    entries: RwLock<HashMap<String, CachedKey>>,
}

struct CachedKey {
    stamp: ChangeStamp,
    record: ApiKeyRecord,
}

impl VerifiedKeys {
    /// The record stored for `lookup_hash` if the database has not changed
    /// since (same `stamp`) and the key is still active at `now`.
    pub fn get(
        &self,
        lookup_hash: &str,
        stamp: ChangeStamp,
        now: DateTime<Utc>,
    ) -> Option<ApiKeyRecord> {
        let entries = self.entries.read().ok()?;
        let cached = entries.get(lookup_hash)?;
        let current = cached.stamp == stamp && is_active(&cached.record, now);
        current.then(|| cached.record.clone())
    }

    /// Remembers `record`, read after `stamp` was taken.
    pub fn insert(&self, lookup_hash: String, stamp: ChangeStamp, record: ApiKeyRecord) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&lookup_hash) {
            entries.clear();
        }
        entries.insert(lookup_hash, CachedKey { stamp, record });
    }
}

/// Not revoked and not expired at `now`.
fn is_active(record: &ApiKeyRecord, now: DateTime<Utc>) -> bool {
    record.revoked_at.is_none() && record.expires_at.is_none_or(|expiry| expiry > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(byte: u8) -> ChangeStamp {
        ChangeStamp {
            shared: [byte; 96],
            local_writes: 0,
        }
    }

    fn record(expires_at: Option<DateTime<Utc>>) -> ApiKeyRecord {
        let now = Utc::now();
        ApiKeyRecord {
            key_id: "id".into(),
            name: "name".into(),
            key_hash: "pbkdf2".into(),
            lookup_hash: Some("sha".into()),
            key_prefix: "abk_".into(),
            scopes: None,
            created_by: "astrbot".into(),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            expires_at,
            revoked_at: None,
        }
    }

    #[test]
    fn a_hit_needs_the_same_stamp() {
        let keys = VerifiedKeys::default();
        let now = Utc::now();
        keys.insert("sha".into(), stamp(1), record(None));

        assert!(keys.get("sha", stamp(1), now).is_some());
        assert!(keys.get("sha", stamp(2), now).is_none());
        assert!(keys.get("other", stamp(1), now).is_none());
    }

    #[test]
    fn an_expired_key_misses_without_any_write() {
        let keys = VerifiedKeys::default();
        let now = Utc::now();
        let expiry = now + chrono::Duration::seconds(1);
        keys.insert("sha".into(), stamp(1), record(Some(expiry)));

        assert!(keys.get("sha", stamp(1), now).is_some());
        assert!(keys.get("sha", stamp(1), expiry).is_none());
    }

    #[test]
    fn the_cache_starts_over_instead_of_growing_without_bound() {
        let keys = VerifiedKeys::default();
        for n in 0..=MAX_ENTRIES {
            keys.insert(format!("sha{n}"), stamp(1), record(None));
        }
        let entries = keys.entries.read().unwrap();
        assert!(entries.len() <= MAX_ENTRIES);
        assert!(entries.contains_key(&format!("sha{MAX_ENTRIES}")));
    }
}
