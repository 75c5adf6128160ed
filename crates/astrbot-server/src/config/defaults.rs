//! The default config: AstrBot's key names for everything astrbot-rs reads,
//! with AstrBot's default values, plus our own `astrbot_rs` section.

use serde_json::{json, Value};

/// The document a fresh root starts with; missing keys of an existing file
/// are filled from it.
pub fn default_config() -> Value {
    json!({
        "config_version": 2,
        "platform_settings": {
            "unique_session": false,
            "rate_limit": {"time": 60, "count": 30, "strategy": "stall"},
            "reply_prefix": "",
            "id_whitelist": [],
        },
        "provider_sources": [],
        "provider": [],
        "provider_settings": {
            "enable": true,
            "default_provider_id": "",
            "wake_prefix": "",
            "streaming_response": false,
            "display_reasoning_text": false,
            "default_personality": "default",
            "prompt_prefix": "{{prompt}}",
            "max_context_length": -1,
            "dequeue_context_length": 1,
        },
        "persona": [],
        "platform": [],
        "wake_prefix": ["/"],
        "admins_id": ["astrbot"],
        "timezone": "Asia/Shanghai",
        "dashboard": {
            "enable": true,
            "username": "astrbot",
            "password": "77b90590a8945a7d36c963981a307dc9",
            "jwt_secret": "",
            // AstrBot listens on 0.0.0.0 by default, which exposes the admin
            // login to the whole network; we start on loopback.
            "host": "127.0.0.1",
            "port": 6185,
        },
        "astrbot_rs": {
            "max_upload_mb": 128,
            "provider_timeout_seconds": 120,
        },
    })
}
