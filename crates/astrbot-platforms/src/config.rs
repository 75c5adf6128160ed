//! One entry of AstrBot's `platform` config list: `{"id", "type",
//! "enable", ...platform keys}`.

use serde_json::{Map, Value};

use crate::adapter::PlatformError;

/// Platform ids end up inside UMOs, which use `:` as separator and webchat
/// uses `!`, so AstrBot replaces both with `_` on load.
pub fn sanitize_platform_id(id: &str) -> String {
    id.replace([':', '!'], "_")
}

/// A parsed platform entry; the adapter reads its own keys from `raw`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformConfig {
    pub id: String,
    /// AstrBot's `type` (`aiocqhttp`, `telegram` …).
    pub kind: String,
    /// Missing counts as off, as AstrBot's templates write it explicitly.
    pub enable: bool,
    pub raw: Map<String, Value>,
}

impl PlatformConfig {
    pub fn from_json(entry: &Value) -> Result<Self, PlatformError> {
        let raw = entry
            .as_object()
            .ok_or_else(|| PlatformError::Config("platform entry is not an object".into()))?;
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| PlatformError::Config("platform entry has no id".into()))?;
        let kind = raw
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Config(format!("platform {id} has no type")))?;
        Ok(PlatformConfig {
            id: sanitize_platform_id(id),
            kind: kind.to_owned(),
            enable: raw.get("enable").is_some_and(truthy),
            raw: raw.clone(),
        })
    }

    /// A string key, accepting numbers too (hand-edited configs do both).
    pub fn string(&self, key: &str) -> Option<String> {
        match self.raw.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    /// A port-like key given as a number or a numeric string.
    pub fn u16(&self, key: &str) -> Result<Option<u16>, PlatformError> {
        let Some(text) = self.string(key).filter(|text| !text.trim().is_empty()) else {
            return Ok(None);
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| PlatformError::Config(format!("{key} is not a port number: {text}")))
    }
}

/// AstrBot's configs hold `true`/`false`, but older ones also hold strings
/// and numbers; read them the way Python's truthiness would.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => matches!(text.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_sanitised_and_keys_read() {
        let entry = json!({"id": "qq:main!1", "type": "aiocqhttp", "enable": true, "ws_reverse_port": "6199"});
        let config = PlatformConfig::from_json(&entry).unwrap();
        assert_eq!(config.id, "qq_main_1");
        assert_eq!(config.kind, "aiocqhttp");
        assert!(config.enable);
        assert_eq!(config.u16("ws_reverse_port").unwrap(), Some(6199));
        assert_eq!(config.u16("missing").unwrap(), None);
    }

    #[test]
    fn bad_entries_are_reported() {
        assert!(PlatformConfig::from_json(&json!([])).is_err());
        assert!(PlatformConfig::from_json(&json!({"type": "x"})).is_err());
        assert!(PlatformConfig::from_json(&json!({"id": "a"})).is_err());
        let off = PlatformConfig::from_json(&json!({"id": "a", "type": "x"})).unwrap();
        assert!(!off.enable);
        let bad_port = PlatformConfig::from_json(&json!({"id": "a", "type": "x", "p": "http"}));
        assert!(bad_port.unwrap().u16("p").is_err());
    }
}
