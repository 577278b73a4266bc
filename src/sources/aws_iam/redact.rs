//! Keeps AWS credentials out of everything the source says: the exact credentials in use are
//! replaced, and so is anything shaped like an access key id (`AKIA…`, `ASIA…`) or a secret
//! key or session token (a long base64 run), whatever the message came from.

/// Replaces `exact` secrets and credential-shaped tokens in `text`.
pub fn redact(text: &str, exact: &[&str]) -> String {
    let mut out = text.to_string();
    for s in exact {
        // Short strings would blank out ordinary words; real credentials are long.
        if s.len() >= 8 {
            out = out.replace(s, "[redacted]");
        }
    }
    shaped(&out)
}

fn is_b64(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')
}

/// Access key ids: `AKIA`/`ASIA` + 16 upper-case letters or digits, wherever they sit. Then
/// secret keys (40) and session tokens (hundreds): runs of 40 or more base64 characters that
/// mix upper case, lower case and digits (ARNs, paths and policy names are broken up by `:`,
/// `-`, `_`, `.`).
fn shaped(text: &str) -> String {
    let text = key_ids(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(is_b64) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let len = run.find(|c: char| !is_b64(c)).unwrap_or(run.len());
        let token = &run[..len];
        let mixed = token.bytes().any(|b| b.is_ascii_uppercase())
            && token.bytes().any(|b| b.is_ascii_lowercase())
            && token.bytes().any(|b| b.is_ascii_digit());
        if token.len() >= 40 && mixed {
            out.push_str("[redacted]");
        } else {
            out.push_str(token);
        }
        rest = &run[len..];
    }
    out.push_str(rest);
    out
}

fn key_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["AKIA", "ASIA"].iter().filter_map(|p| rest.find(p)).min() {
        let id = &rest[i..];
        let tail = id[4..]
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .count();
        if tail >= 16 {
            out.push_str(&rest[..i]);
            out.push_str("[redacted key id]");
            rest = &id[4 + tail..];
        } else {
            out.push_str(&rest[..i + 4]);
            rest = &id[4..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_never_survive() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let msg = format!(
            "Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/iam/aws4_request, secret {secret}, token FwoGZXIvYXdzEJr//////////wEaDOn0a2aJ5Lq8Q1Z3ZyKyAXl0cmFuc2ZlcjJ4c2lnbmF0dXJl"
        );
        let r = redact(&msg, &[]);
        assert!(!r.contains("AKIAIOSFODNN7EXAMPLE"), "{r}");
        assert!(!r.contains(secret), "{r}");
        assert!(!r.contains("FwoGZXIvYXdzEJr"), "{r}");
        assert!(r.contains("/20240101/us-east-1/iam/aws4_request"), "{r}");
        let r = redact("key ASIAXXXXXXXXXXXXXXXX used", &[]);
        assert_eq!(r, "key [redacted key id] used");
        assert_eq!(redact("the sekrit-value-1 leaked", &["sekrit-value-1"]), "the [redacted] leaked");
    }

    #[test]
    fn ordinary_text_is_kept() {
        for s in [
            "User: arn:aws:iam::123456789012:user/svc-deploy is not authorized to perform: iam:GetCredentialReport on resource: *",
            "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess",
            "AKIA is a prefix; ASIA too",
            "Rate exceeded",
        ] {
            assert_eq!(redact(s, &["x"]), s);
        }
    }
}
