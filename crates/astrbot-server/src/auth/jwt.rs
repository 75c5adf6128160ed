//! The admin session token: a JWT signed with HS256, payload
//! `{"username", "exp"}`, valid 7 days, exactly as AstrBot issues it, so
//! tokens are interchangeable for a shared secret (those issued before the
//! admin's credentials last changed are refused by the middleware).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long an admin token is valid.
pub const TOKEN_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    exp: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

/// Issues a token for `username`, expiring `TOKEN_LIFETIME_SECONDS` after
/// `now` (seconds since the epoch).
pub fn issue(secret: &str, username: &str, now: i64) -> String {
    let claims = Claims {
        username: username.to_owned(),
        exp: now + TOKEN_LIFETIME_SECONDS,
    };
    let payload = serde_json::to_vec(&claims).unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = URL_SAFE_NO_PAD.encode(sign(secret, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// A token that verified.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    /// Its expiry less the lifetime: AstrBot's tokens carry no `iat`.
    pub issued_at: i64,
}

/// Verifies a token: signed with `secret`, not expired at `now`.
pub fn verify(secret: &str, token: &str, now: i64) -> Result<Verified, TokenError> {
    // An empty key would let anyone sign tokens; the config loader never
    // leaves it empty, and this makes sure no token passes if it ever is.
    if secret.is_empty() {
        return Err(TokenError::Invalid);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Invalid)?;
    let mut mac = mac(secret);
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::Invalid)?;

    let header: Header = decode_part(header)?;
    if header.alg != "HS256" {
        return Err(TokenError::Invalid);
    }
    let claims: Claims = decode_part(payload)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(Verified {
        username: claims.username,
        issued_at: claims.exp - TOKEN_LIFETIME_SECONDS,
    })
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Invalid)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)
}

fn sign(secret: &str, input: &[u8]) -> Vec<u8> {
    let mut mac = mac(secret);
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let token = issue("secret", "astrbot", 1_000);
        assert_eq!(
            verify("secret", &token, 1_001),
            Ok(Verified {
                username: "astrbot".to_owned(),
                issued_at: 1_000
            })
        );
        assert_eq!(
            verify("secret", &token, 1_000 + TOKEN_LIFETIME_SECONDS),
            Err(TokenError::Expired)
        );
        assert_eq!(verify("other", &token, 1_001), Err(TokenError::Invalid));
        assert_eq!(verify("secret", "a.b", 1_001), Err(TokenError::Invalid));
        let unsigned = issue("", "astrbot", 1_000);
        assert_eq!(verify("", &unsigned, 1_001), Err(TokenError::Invalid));
    }

    #[test]
    fn matches_pyjwt_output() {
        // jwt.encode({"username": "astrbot", "exp": 2000000000}, "s", algorithm="HS256")
        let token = issue("s", "astrbot", 2_000_000_000 - TOKEN_LIFETIME_SECONDS);
        let expected_payload = URL_SAFE_NO_PAD.encode(r#"{"username":"astrbot","exp":2000000000}"#);
        assert_eq!(token.split('.').nth(1), Some(expected_payload.as_str()));
    }
}
