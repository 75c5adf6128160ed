//! AstrBot's config-routing patterns: three `:`-separated parts, each empty
//! (matches anything) or a case-sensitive shell glob (`*`, `?`, `[...]`).

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

/// A small fnmatch: `*` any run, `?` one character, `[abc]`/`[!abc]`/`[a-z]`.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    matches_from(&pattern, &text)
}

fn matches_from(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).any(|skip| matches_from(&pattern[1..], &text[skip..])),
        Some('?') => !text.is_empty() && matches_from(&pattern[1..], &text[1..]),
        Some('[') => match (text.first(), class_end(pattern)) {
            (Some(&ch), Some(end)) => {
                class_contains(&pattern[1..end], ch)
                    && matches_from(&pattern[end + 1..], &text[1..])
            }
            (Some(&ch), None) => ch == '[' && matches_from(&pattern[1..], &text[1..]),
            (None, _) => false,
        },
        Some(&literal) => text.first() == Some(&literal) && matches_from(&pattern[1..], &text[1..]),
    }
}

fn class_end(pattern: &[char]) -> Option<usize> {
    // A `]` right after `[` or `[!` is a literal member, as in fnmatch.
    let start = if pattern.get(1) == Some(&'!') { 3 } else { 2 };
    (start..pattern.len()).find(|&index| pattern[index] == ']')
}

fn class_contains(class: &[char], ch: char) -> bool {
    let (negated, members) = match class.first() {
        Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut found = false;
    let mut index = 0;
    while index < members.len() {
        if index + 2 < members.len() && members[index + 1] == '-' {
            found |= members[index] <= ch && ch <= members[index + 2];
            index += 3;
        } else {
            found |= members[index] == ch;
            index += 1;
        }
    }
    found != negated
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
    }
}
