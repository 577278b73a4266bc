//! Lenient serde helpers for provider wire types: providers add fields, omit nulls and now and
//! then send the wrong type, so a surprising value becomes "unknown" instead of failing a page.
//! Every source's `wire.rs` uses these instead of writing its own.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Present-and-null → `Some(None)`; absent → `None` (with `#[serde(default)]`). Keeps
/// "unknown" (absent) apart from "never" (null).
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?))
}

/// A value that should be a string; anything else becomes `None`.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// A value that should be a boolean; `"true"`/`"false"` strings are read too, anything else
/// becomes `None`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

/// A list where `null` means empty.
pub fn null_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A list whose items are kept only where they decode: one malformed item is skipped (and
/// counted by the caller through the returned length difference), not the whole page.
pub fn skip_bad<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let raw = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

fn text_of(v: Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A text field from a provider that is loose about types (SSPM): strings trimmed (empty =
/// absent); numbers and booleans as text; anything else absent. ([`string`] is the strict one.)
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(text_of(Value::deserialize(d)?))
}

/// A loose boolean: `true`/`false`, also `"true"`/`"false"`/`"yes"`/`"no"` and `1`/`0`
/// (as strings or numbers); anything else `None`. ([`boolean`] is the stricter one.)
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    })
}

/// An integer count (a page's `total`): a non-negative number, or a string holding one.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A list of strings; other items (and a non-list) are dropped.
pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "nullable")]
        n: Option<Option<String>>,
        #[serde(default, deserialize_with = "string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "boolean")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "null_vec")]
        v: Vec<u8>,
        #[serde(default, deserialize_with = "skip_bad")]
        k: Vec<u8>,
    }

    #[test]
    fn surprises_become_unknown() {
        let t: T =
            serde_json::from_str(r#"{"n":null,"s":5,"b":"TRUE","v":null,"k":[1,"x",3]}"#).unwrap();
        assert_eq!(t.n, Some(None));
        assert_eq!(t.s, None);
        assert_eq!(t.b, Some(true));
        assert!(t.v.is_empty());
        assert_eq!(t.k, vec![1, 3]);
        let t: T = serde_json::from_str("{}").unwrap();
        assert_eq!(t.n, None);
    }
}
