//! Admin password helpers: AstrBot keeps (and its web UI posts) the MD5 hex
//! of the password, so we compare MD5 strings, in constant time.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// MD5 hex of a password, the form AstrBot stores and posts.
pub fn md5_hex(password: &str) -> String {
    Md5::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Constant-time string equality, so response timing does not reveal how
/// much of a credential matched.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_password_hash_is_astrbots() {
        assert_eq!(md5_hex("astrbot"), "77b90590a8945a7d36c963981a307dc9");
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
