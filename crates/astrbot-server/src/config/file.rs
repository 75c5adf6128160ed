//! Reading and writing one config file: UTF-8 BOM tolerated, parse errors
//! reported with file, line and column, writes atomic and private.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: the config must be a JSON object")]
    NotAnObject { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads a config document. A missing file is `Ok(None)`.
pub fn read_config_file(path: &Path) -> Result<Option<Value>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let value: Value = serde_json::from_slice(text).map_err(|error| ConfigError::Syntax {
        path: path.to_owned(),
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })?;
    if !value.is_object() {
        return Err(ConfigError::NotAnObject {
            path: path.to_owned(),
        });
    }
    Ok(Some(value))
}

/// Adds every key of `defaults` missing from `config`, recursing into
/// objects present in both. Existing values and unknown keys are kept.
/// Returns whether anything was added.
pub fn fill_defaults(config: &mut Value, defaults: &Value) -> bool {
    let (Some(config), Some(defaults)) = (config.as_object_mut(), defaults.as_object()) else {
        return false;
    };
    let mut changed = false;
    for (key, default) in defaults {
        match config.get_mut(key) {
            Some(existing) => changed |= fill_defaults(existing, default),
            None => {
                config.insert(key.clone(), default.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Writes a config document through a temporary file and a rename, so a
/// crash never leaves half a config; the file is readable by its owner
/// only because it holds the JWT secret and provider keys.
pub fn write_config_file(path: &Path, value: &Value) -> Result<(), ConfigError> {
    let failed = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_string_pretty(value).map_err(|error| failed(error.into()))?;
    text.push('\n');
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let temporary = path.with_extension(format!("json.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut file = astrbot_core::private_file::create_new(&temporary).map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        failed(error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("astrbot-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn bom_is_tolerated() {
        let path = temp_file("bom.json", b"\xEF\xBB\xBF{\"a\": 1}");
        assert_eq!(read_config_file(&path).unwrap(), Some(json!({"a": 1})));
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let path = temp_file("broken.json", b"{\n  \"a\": 1,\n  oops\n}");
        let error = read_config_file(&path).unwrap_err().to_string();
        assert!(error.contains("broken.json"), "{error}");
        assert!(error.contains("line 3, column 3"), "{error}");
    }

    #[test]
    fn defaults_fill_gaps_and_keep_unknown_keys() {
        let mut config = json!({"custom": true, "dashboard": {"port": 7000}});
        let defaults = json!({"dashboard": {"port": 6185, "host": "127.0.0.1"}, "x": []});
        assert!(fill_defaults(&mut config, &defaults));
        assert_eq!(
            config,
            json!({"custom": true, "dashboard": {"port": 7000, "host": "127.0.0.1"}, "x": []})
        );
    }

    #[test]
    fn writes_are_atomic_and_readable_back() {
        let path = temp_file("out.json", b"{}");
        write_config_file(&path, &json!({"k": "v"})).unwrap();
        assert_eq!(read_config_file(&path).unwrap(), Some(json!({"k": "v"})));
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
