//! Python's conversions as AstrBot applies them to request values (`str()`,
//! `int()`, truthiness), so that edge cases answer the way they do there.

use serde_json::{Map, Value};

/// The request body as a JSON object; anything else reads as `{}`, like
/// AstrBot's lenient `request.json or {}`.
pub fn object_body(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Whether a body is absent or unusable: AstrBot's admin handlers answer
/// such bodies with "缺少配置数据".
pub fn is_empty_body(body: &Map<String, Value>) -> bool {
    body.is_empty()
}

/// Python's `str(value)` for JSON values.
pub fn to_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

/// Python's `int(value)`: integers, truncated floats, booleans, and strings
/// of an integer with surrounding whitespace, an optional sign and `_`
/// digit separators.
pub fn to_int(value: &Value) -> Option<i64> {
    match value {
        Value::Bool(flag) => Some(i64::from(*flag)),
        Value::Number(number) => number.as_i64().or_else(|| {
            let float = number.as_f64()?;
            (float.is_finite() && float.abs() < 9.2e18).then_some(float.trunc() as i64)
        }),
        Value::String(text) => parse_int(text),
        _ => None,
    }
}

/// Python's `int(str)`.
pub fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !valid {
        return None;
    }
    let number: i64 = digits.replace('_', "").parse().ok()?;
    Some(sign * number)
}

/// Python truthiness.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_conversion_follows_python() {
        assert_eq!(to_int(&json!(7)), Some(7));
        assert_eq!(to_int(&json!(7.9)), Some(7));
        assert_eq!(to_int(&json!(true)), Some(1));
        assert_eq!(to_int(&json!(" 7 ")), Some(7));
        assert_eq!(to_int(&json!("-3")), Some(-3));
        assert_eq!(to_int(&json!("1_000")), Some(1000));
        assert_eq!(to_int(&json!("1.5")), None);
        assert_eq!(to_int(&json!("abc")), None);
        assert_eq!(to_int(&json!("")), None);
        assert_eq!(to_int(&json!([1])), None);
    }

    #[test]
    fn str_and_truthiness_follow_python() {
        assert_eq!(to_str(&json!(null)), "None");
        assert_eq!(to_str(&json!(12)), "12");
        assert_eq!(to_str(&json!(false)), "False");
        assert!(!truthy(&json!("")));
        assert!(!truthy(&json!(0)));
        assert!(truthy(&json!("false")));
        assert!(truthy(&json!([0])));
    }
}
