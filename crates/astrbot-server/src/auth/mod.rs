//! Authentication: developer API keys on `/api/v1*`, the admin JWT on the
//! other `/api*` routes, and the middleware that applies them.

pub mod api_key;
pub mod jwt;
pub mod key_cache;
pub mod middleware;
pub mod password;
pub mod touch_pause;

pub use api_key::{GeneratedKey, KeyIdentity, ALL_SCOPES};
pub use middleware::{authenticate, AdminIdentity};
