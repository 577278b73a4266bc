//! Policy analysis, pure: which IAM policies grant admin power — `AdministratorAccess`,
//! `IAMFullAccess`, the configured `admin_policies`, or any document with an `Allow` of
//! action `*` on resource `*` — and the URL-decoding IAM applies to policy documents.

use std::borrow::Cow;

use serde_json::Value;

/// AWS-managed policies that are admin power by name (the role name is the policy name).
pub const ADMINISTRATOR_ACCESS: &str = "AdministratorAccess";
pub const IAM_FULL_ACCESS: &str = "IAMFullAccess";
/// AWS-managed policies live under this ARN prefix (`arn:aws:iam::aws:policy/…`, and the
/// same in the `aws-cn` and `aws-us-gov` partitions).
const AWS_MANAGED_ACCOUNT: &str = ":iam::aws:policy/";

/// Whether an ARN names an AWS-managed policy (its document is AWS's, not the customer's).
pub fn is_aws_managed(arn: &str) -> bool {
    arn.starts_with("arn:") && arn.contains(AWS_MANAGED_ACCOUNT)
}

/// The names (and ARNs) that make a policy admin power without reading its document.
#[derive(Debug, Clone, Default)]
pub struct AdminNames {
    extra: Vec<String>,
}

impl AdminNames {
    pub fn new(admin_policies: &[String]) -> AdminNames {
        AdminNames {
            extra: admin_policies.to_vec(),
        }
    }

    /// `AdministratorAccess`, `IAMFullAccess`, or a configured name or ARN. IAM policy names
    /// are unique ignoring case, so they are compared that way; ARNs exactly.
    pub fn is_admin(&self, name: &str, arn: Option<&str>) -> bool {
        name.eq_ignore_ascii_case(ADMINISTRATOR_ACCESS)
            || name.eq_ignore_ascii_case(IAM_FULL_ACCESS)
            || self.extra.iter().any(|e| {
                if e.starts_with("arn:") {
                    arn == Some(e.as_str())
                } else {
                    e.eq_ignore_ascii_case(name)
                }
            })
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986) — inline policies everywhere, managed
/// policy versions on AWS (moto sends those raw). Percent-decoding raw JSON changes nothing
/// unless it holds a literal `%`, so documents that already parse as JSON are kept as they
/// are. Never form-decoding: `+` is a literal plus in a policy.
pub fn decode_document(raw: &str) -> Cow<'_, str> {
    let t = raw.trim_start();
    if t.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(raw).is_ok() {
        return Cow::Borrowed(raw);
    }
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
}

/// A string or a list of strings (IAM's `Action`, `Resource`); `None` for anything else.
fn strings(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// Whether a (decoded) policy document allows every action on every resource: a statement
/// with `"Effect": "Allow"`, an `Action` that is or contains `*` (or `*:*`) and a `Resource`
/// that is or contains `*`. Conditions do not change the verdict (an admin grant behind an
/// MFA or IP condition is still an admin grant); `NotAction`/`NotResource` statements are
/// not `*` on `*`. Deny statements are not subtracted: a policy that allows everything and
/// denies a little is still admin power. An unreadable document is an error naming why.
pub fn allows_star_on_star(document: &str) -> Result<bool, String> {
    let doc: Value =
        serde_json::from_str(document).map_err(|e| format!("not a JSON policy document: {e}"))?;
    let Some(obj) = doc.as_object() else {
        return Err("the policy document is not a JSON object".into());
    };
    let statements: Vec<&Value> = match obj.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(_) => return Err("\"Statement\" is neither an object nor a list".into()),
        None => return Err("the policy document has no \"Statement\"".into()),
    };
    for st in statements {
        let Some(st) = st.as_object() else {
            return Err("a statement is not a JSON object".into());
        };
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let all_actions = st
            .get("Action")
            .and_then(strings)
            .is_some_and(|a| a.iter().any(|a| matches!(a.trim(), "*" | "*:*")));
        let all_resources = st
            .get("Resource")
            .and_then(strings)
            .is_some_and(|r| r.iter().any(|r| r.trim() == "*"));
        if all_actions && all_resources {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_on_star_in_every_spelling() {
        for doc in [
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            r#"{"Statement":{"Effect":"Allow","Action":["s3:GetObject","*"],"Resource":["arn:aws:s3:::b/*","*"]}}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*:*","Resource":"*"}]}"#,
            // A condition does not make an admin grant harmless.
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#,
            // Allow everything, deny a little: still admin power.
            r#"{"Statement":[{"Effect":"Deny","Action":"iam:*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ] {
            assert_eq!(allows_star_on_star(doc), Ok(true), "{doc}");
        }
    }

    #[test]
    fn not_star_on_star() {
        for doc in [
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::bucket/*"}]}"#,
            r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
            // PowerUserAccess-like: everything but IAM.
            r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*","NotResource":"arn:aws:s3:::x"}]}"#,
            // Effect is case-sensitive in IAM: "allow" is not a valid Allow.
            r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#,
            r#"{"Statement":[]}"#,
            // IAMFullAccess's document: iam:* on *, not * on * (admin by name instead).
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","organizations:DescribeAccount"],"Resource":"*"}]}"#,
        ] {
            assert_eq!(allows_star_on_star(doc), Ok(false), "{doc}");
        }
    }

    #[test]
    fn hostile_documents_are_errors() {
        for doc in [
            "",
            "not json",
            "[]",
            r#"{"Version":"2012-10-17"}"#,
            r#"{"Statement":"*"}"#,
            r#"{"Statement":["*"]}"#,
        ] {
            assert!(allows_star_on_star(doc).is_err(), "{doc:?}");
        }
        // Wrong types inside a statement are simply not a grant.
        assert_eq!(
            allows_star_on_star(r#"{"Statement":[{"Effect":"Allow","Action":7,"Resource":{"a":1}}]}"#),
            Ok(false)
        );
    }

    #[test]
    fn documents_are_percent_decoded_once() {
        // GetUserPolicy / GetGroupPolicy (and GetPolicyVersion on AWS): URL-encoded.
        let enc = "%7B%22Version%22%3A%20%222012-10-17%22%2C%20%22Statement%22%3A%20%5B%7B%22Effect%22%3A%20%22Allow%22%2C%20%22Action%22%3A%20%22%2A%22%2C%20%22Resource%22%3A%20%22%2A%22%7D%5D%7D";
        let dec = decode_document(enc);
        assert!(dec.starts_with("{\"Version\": \"2012-10-17\""), "{dec}");
        assert_eq!(allows_star_on_star(&dec), Ok(true));
        // GetPolicyVersion on moto: raw JSON, kept as it is — even with a literal % and +.
        let raw = r#"{"Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::a%20b+c/*"}]}"#;
        assert_eq!(decode_document(raw), raw);
        // `+` is not a space.
        assert_eq!(decode_document("a+b%2Bc"), "a+b+c");
    }

    #[test]
    fn admin_by_name_or_arn() {
        let n = AdminNames::new(&[
            "OrgAdmin".into(),
            "arn:aws:iam::123456789012:policy/BreakGlass".into(),
        ]);
        assert!(n.is_admin("AdministratorAccess", Some("arn:aws:iam::aws:policy/AdministratorAccess")));
        assert!(n.is_admin("iamfullaccess", None));
        assert!(n.is_admin("orgadmin", None), "names ignore case");
        assert!(n.is_admin("BreakGlass", Some("arn:aws:iam::123456789012:policy/BreakGlass")));
        assert!(!n.is_admin("BreakGlass", Some("arn:aws:iam::999999999999:policy/BreakGlass")));
        assert!(!n.is_admin("ReadOnlyAccess", Some("arn:aws:iam::aws:policy/ReadOnlyAccess")));
        assert!(is_aws_managed("arn:aws:iam::aws:policy/ReadOnlyAccess"));
        assert!(is_aws_managed("arn:aws-us-gov:iam::aws:policy/job-function/ViewOnlyAccess"));
        assert!(!is_aws_managed("arn:aws:iam::123456789012:policy/StarStar"));
    }
}
