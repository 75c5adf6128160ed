//! Slack request signatures: `X-Slack-Signature` is `v0=` + hex
//! HMAC-SHA256(signing secret, `v0:{timestamp}:{raw body}`), and the
//! timestamp must be within five minutes of now (replay protection).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far `X-Slack-Request-Timestamp` may be from our clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;

type HmacSha256 = Hmac<Sha256>;

/// Why a request was refused (logged; the answer is a bare 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeaders,
    BadTimestamp,
    StaleTimestamp,
    Mismatch,
}

impl SignatureError {
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::MissingHeaders => "missing X-Slack-Signature or timestamp",
            SignatureError::BadTimestamp => "malformed request timestamp",
            SignatureError::StaleTimestamp => "request timestamp is more than 5 minutes off",
            SignatureError::Mismatch => "signature mismatch",
        }
    }
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The `X-Slack-Signature` value Slack would send.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("v0={hex}")
}

/// Checks a request; `now` is Unix seconds.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::MissingHeaders);
    };
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - sent).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(SignatureError::StaleTimestamp);
    }
    let presented = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(decode_hex)
        .ok_or(SignatureError::Mismatch)?;
    // `verify_slice` compares in constant time.
    mac(secret, timestamp.trim(), body)
        .verify_slice(&presented)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
            _ => None,
        })
        .collect()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_documented_example() {
        // The example from Slack's "Verifying requests" guide.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, "1531420618", body), expected);
        assert_eq!(
            verify(
                secret,
                Some("1531420618"),
                Some(expected),
                body,
                1531420618 + 60
            ),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let good = sign("s", "1000", b"{}");
        assert_eq!(verify("s", Some("1000"), Some(&good), b"{}", 1000), Ok(()));
        assert_eq!(
            verify("s", Some("1000"), Some(&good), b"{} ", 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("t", Some("1000"), Some(&good), b"{}", 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s", Some("1000"), Some(&good), b"{}", 1000 + 301),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify("s", Some("1000"), Some(&good), b"{}", 1000 - 301),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            verify("s", Some("x"), Some(&good), b"{}", 1000),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify("s", None, Some(&good), b"{}", 1000),
            Err(SignatureError::MissingHeaders)
        );
        assert_eq!(
            verify("s", Some("1000"), Some("v0=zz"), b"{}", 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s", Some("1000"), Some("v1=00"), b"{}", 1000),
            Err(SignatureError::Mismatch)
        );
    }
}
