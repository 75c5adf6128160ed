//! AstrBot's config-routing patterns: three `:`-separated parts, each empty
//! (matches anything) or a case-sensitive shell glob (`*`, `?`, `[...]`).
//!
//! Matching is linear in practice (one backtrack point, as in classic
//! wildcard matching), so no pattern can make it explode, and
//! [`escape_glob`] turns a concrete UMO into a pattern that matches only
//! itself.

/// Whether a routing pattern matches a UMO.
pub fn umo_pattern_matches(pattern: &str, umo: &str) -> bool {
    let pattern_parts: Vec<&str> = pattern.splitn(3, ':').collect();
    let umo_parts: Vec<&str> = umo.splitn(3, ':').collect();
    if pattern_parts.len() != 3 || umo_parts.len() != 3 {
        return pattern == umo;
    }
    pattern_parts
        .iter()
        .zip(&umo_parts)
        .all(|(pattern, text)| pattern.is_empty() || glob_matches(pattern, text))
}

/// Escapes `*`, `?` and `[` so that a concrete UMO (whose user name or
/// session id may hold them) only ever matches itself.
pub fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '*' | '?' | '[' => {
                escaped.push('[');
                escaped.push(ch);
                escaped.push(']');
            }
            _ => escaped.push(ch),
        }
    }
    escaped
}

/// One element of a compiled glob.
#[derive(Debug)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class { negated: bool, members: Vec<char> },
}

/// fnmatch: `*` any run, `?` one character, `[abc]`/`[!abc]`/`[a-z]`.
/// On a mismatch only the latest `*` is retried one character further, so
/// the work is bounded by pattern length × text length.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let tokens = compile(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::AnyRun) => {
                star = Some((p, t));
                p += 1;
            }
            Some(token) if token_matches(token, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..]
        .iter()
        .all(|token| matches!(token, Token::AnyRun))
}

fn token_matches(token: &Token, ch: char) -> bool {
    match token {
        Token::Literal(literal) => *literal == ch,
        Token::AnyOne => true,
        Token::AnyRun => false,
        Token::Class { negated, members } => class_contains(members, ch) != *negated,
    }
}

fn compile(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        match chars[index] {
            '*' => tokens.push(Token::AnyRun),
            '?' => tokens.push(Token::AnyOne),
            '[' => match class_end(&chars[index..]) {
                Some(end) => {
                    let body = &chars[index + 1..index + end];
                    let (negated, members) = match body.first() {
                        Some('!') => (true, body[1..].to_vec()),
                        _ => (false, body.to_vec()),
                    };
                    tokens.push(Token::Class { negated, members });
                    index += end;
                }
                None => tokens.push(Token::Literal('[')),
            },
            literal => tokens.push(Token::Literal(literal)),
        }
        index += 1;
    }
    tokens
}

/// The offset of the `]` closing a class that starts at `pattern[0]`. A
/// `]` right after `[` or `[!` is a literal member, as in fnmatch.
fn class_end(pattern: &[char]) -> Option<usize> {
    let start = if pattern.get(1) == Some(&'!') { 3 } else { 2 };
    (start..pattern.len()).find(|&index| pattern[index] == ']')
}

fn class_contains(members: &[char], ch: char) -> bool {
    let mut index = 0;
    while index < members.len() {
        if index + 2 < members.len() && members[index + 1] == '-' {
            if members[index] <= ch && ch <= members[index + 2] {
                return true;
            }
            index += 3;
        } else {
            if members[index] == ch {
                return true;
            }
            index += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parts_and_globs_match() {
        let umo = "webchat:FriendMessage:webchat!alice!s1";
        assert!(umo_pattern_matches(umo, umo));
        assert!(umo_pattern_matches("webchat::", umo));
        assert!(umo_pattern_matches("::*alice*", umo));
        assert!(umo_pattern_matches("web?hat:[FG]*:", umo));
        assert!(!umo_pattern_matches("telegram::", umo));
        assert!(!umo_pattern_matches("webchat:[!F]*:", umo));
        assert!(umo_pattern_matches("::*!s[0-9]", umo));
    }

    #[test]
    fn escaped_umos_match_only_themselves() {
        let hostile = "webchat:FriendMessage:webchat!*!*";
        let pattern = format!("webchat:FriendMessage:{}", escape_glob("webchat!*!*"));
        assert!(umo_pattern_matches(&pattern, hostile));
        assert!(!umo_pattern_matches(
            &pattern,
            "webchat:FriendMessage:webchat!bob!s1"
        ));
        let odd = format!("a:b:{}", escape_glob("x[?]y"));
        assert!(umo_pattern_matches(&odd, "a:b:x[?]y"));
        assert!(!umo_pattern_matches(&odd, "a:b:x[a]y"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = format!("::{}Z", "*".repeat(40));
        let text = format!("a:b:{}", "x".repeat(5_000));
        let started = std::time::Instant::now();
        assert!(!umo_pattern_matches(&pattern, &text));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
