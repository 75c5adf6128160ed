//! API keys: `$ENV` / `${ENV}` resolution, the order in which keys are tried,
//! and keeping keys out of error texts.

use std::sync::atomic::{AtomicUsize, Ordering};

use astrbot_core::ProviderError;

/// Resolves one configured key. `$NAME` and `${NAME}` are read from the
/// environment, as AstrBot does; anything else is the key itself.
pub fn resolve_key(raw: &str) -> Result<String, ProviderError> {
    let raw = raw.trim();
    let name = raw
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .or_else(|| raw.strip_prefix('$'));
    match name {
        Some(name) if !name.is_empty() => std::env::var(name)
            .map(|value| value.trim().to_owned())
            .map_err(|_| {
                ProviderError::Other(format!(
                    "the environment variable {name} named in the provider's key list is not set"
                ))
            }),
        _ => Ok(raw.to_owned()),
    }
}

/// The usable keys of a provider, and where the next request starts.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<String>,
    next: AtomicUsize,
}

impl KeyRing {
    /// Resolves every key; empty ones are dropped, so `[""]` means "no key"
    /// (Ollama, vLLM).
    pub fn new(raw: &[String]) -> Result<Self, ProviderError> {
        let mut keys = Vec::with_capacity(raw.len());
        for key in raw {
            let key = resolve_key(key)?;
            if !key.is_empty() {
                keys.push(key);
            }
        }
        Ok(KeyRing {
            keys,
            next: AtomicUsize::new(0),
        })
    }

    /// The keys to try for one request, each once: starting one further
    /// than the previous request did, so that load spreads over the keys.
    /// `[None]` when there is no key at all.
    pub fn attempt_order(&self) -> Vec<Option<&str>> {
        if self.keys.is_empty() {
            return vec![None];
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.keys.len();
        (0..self.keys.len())
            .map(|offset| Some(self.keys[(start + offset) % self.keys.len()].as_str()))
            .collect()
    }

    /// Replaces every key in `text` so that upstream error bodies (which
    /// sometimes echo the key) can be shown to users.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for key in &self.keys {
            // Very short "keys" would mangle the text and are no secret.
            if key.len() >= 4 {
                text = text.replace(key.as_str(), "***");
            }
        }
        text
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_are_resolved() {
        std::env::set_var("ASTRBOT_PROVIDERS_TEST_KEY", " sk-from-env ");
        assert_eq!(
            resolve_key("$ASTRBOT_PROVIDERS_TEST_KEY").unwrap(),
            "sk-from-env"
        );
        assert_eq!(
            resolve_key("${ASTRBOT_PROVIDERS_TEST_KEY}").unwrap(),
            "sk-from-env"
        );
        assert_eq!(resolve_key("sk-plain").unwrap(), "sk-plain");
        let missing = resolve_key("$ASTRBOT_PROVIDERS_TEST_UNSET").unwrap_err();
        assert!(missing.to_string().contains("ASTRBOT_PROVIDERS_TEST_UNSET"));
    }

    #[test]
    fn rotation_starts_one_further_each_request() {
        let ring = KeyRing::new(&["a1".into(), "".into(), "b2".into(), "c3".into()]).unwrap();
        assert_eq!(
            ring.attempt_order(),
            vec![Some("a1"), Some("b2"), Some("c3")]
        );
        assert_eq!(
            ring.attempt_order(),
            vec![Some("b2"), Some("c3"), Some("a1")]
        );
        assert_eq!(
            ring.attempt_order(),
            vec![Some("c3"), Some("a1"), Some("b2")]
        );
        assert_eq!(ring.attempt_order()[0], Some("a1"));
    }

    #[test]
    fn no_keys_means_one_attempt_without_key() {
        let ring = KeyRing::new(&["".into()]).unwrap();
        assert_eq!(ring.attempt_order(), vec![None]);
    }

    #[test]
    fn scrub_and_truncate() {
        let ring = KeyRing::new(&["sk-secret-123".into()]).unwrap();
        assert_eq!(ring.scrub("bad key sk-secret-123!"), "bad key ***!");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }
}
