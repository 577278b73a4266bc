//! The findings view: server-rendered HTML pages (no JavaScript, no external assets) over
//! the same data as `/api/v1`. Everything that comes from an identity provider or the
//! configuration is hostile text and goes through [`esc`]; links are built with [`href`],
//! which encodes the query and escapes the result for the attribute.

pub mod pages;

use std::fmt::Write;

use crate::model::Timestamp;
use crate::state::BUILD;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link target: `path` plus the URL-encoded query, escaped for an attribute value.
/// Paths are relative (no leading `/`), so the view works behind a path prefix too.
pub fn href(path: &str, pairs: &[(&str, String)]) -> String {
    let mut s = path.to_string();
    if !pairs.is_empty() {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        s.push('?');
        s.push_str(&q);
    }
    esc(&s)
}

/// "3 min ago", "in 40 s", "2 days ago".
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let d = t - now;
    let secs = d.whole_seconds();
    let a = secs.unsigned_abs();
    let amount = if a < 60 {
        format!("{a} s")
    } else if a < 3600 {
        format!("{} min", a / 60)
    } else if a < 86_400 {
        format!("{} h", a / 3600)
    } else {
        let days = a / 86_400;
        format!("{days} day{}", if days == 1 { "" } else { "s" })
    };
    if secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// RFC 3339 to the second (sources may carry sub-second precision nobody needs to read).
pub fn ts(t: Timestamp) -> String {
    crate::model::format_ts(t.replace_nanosecond(0).unwrap_or(t))
}

/// A timestamp with its relative form as a tooltip-free second line.
pub fn when(t: Option<Timestamp>, now: Timestamp, none: &str) -> String {
    match t {
        Some(t) => format!(
            "<time datetime=\"{iso}\" title=\"{iso}\">{rel}</time>",
            iso = esc(&ts(t)),
            rel = esc(&relative(t, now))
        ),
        None => esc(none),
    }
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1c1c1c;background:#fafafa}\
header{background:#22303f;color:#fff;padding:.6em 1.5em;display:flex;gap:1.5em;align-items:center;flex-wrap:wrap}\
header a{color:#e8eef5;text-decoration:none}header a:hover{text-decoration:underline}\
header .brand{font-weight:600;color:#fff}\
main{padding:1em 1.5em;max-width:90em}\
h1{font-size:1.4em;margin:.4em 0}h2{font-size:1.15em;margin:1.2em 0 .4em}\
table{border-collapse:collapse;background:#fff;margin:.3em 0 1em}\
td,th{border:1px solid #d8dde3;padding:.25em .55em;text-align:left;vertical-align:top}\
th{background:#eef1f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.card{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:.6em 1em;margin:0 0 1em}\
.state-ok{color:#11772d;font-weight:600}.state-error{color:#b3261e;font-weight:600}.state-pending{color:#6b6b6b;font-weight:600}\
.sev{display:inline-block;border-radius:3px;padding:0 .4em;font-size:.9em;color:#fff}\
.sev-critical{background:#8e1b1b}.sev-high{background:#c4461b}.sev-medium{background:#a67800}.sev-low{background:#4f6b8a}\
.tag{display:inline-block;border:1px solid #aab4bf;border-radius:3px;padding:0 .3em;font-size:.85em;margin-right:.2em}\
.muted{color:#6b6b6b}.empty{color:#6b6b6b;font-style:italic}.error{color:#b3261e}\
.pass{color:#11772d;font-weight:600}.fail{color:#b3261e;font-weight:600}\
form.filter{display:flex;flex-wrap:wrap;gap:.6em;align-items:end;background:#fff;border:1px solid #d8dde3;padding:.6em;border-radius:6px}\
form.filter label{display:flex;flex-direction:column;font-size:.85em}\
nav.pages{margin:.5em 0}nav.pages a{margin-right:1em}\
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid>div{flex:1 1 22em}\
";

/// A whole page: header with navigation, then `body`.
pub fn page(title: &str, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 2048);
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<link rel=\"icon\" href=\"data:,\">\
<title>{t} – identity-posture-exporter</title><style>{STYLE}</style></head><body>\
<header><a class=\"brand\" href=\"./\">identity-posture-exporter</a>\
<a href=\"./\">Overview</a><a href=\"findings?excluded=false&amp;excepted=false\">Findings</a>\
<a href=\"compliance\">Compliance</a><a href=\"metrics\">/metrics</a>\
<a href=\"api/v1/sources\">API</a><span class=\"muted\" style=\"margin-left:auto\">{v} ({r})</span></header>\
<main>\n{body}\n</main></body></html>\n",
        t = esc(title),
        v = esc(BUILD.version),
        r = esc(BUILD.revision),
    );
    s
}

/// A severity badge.
pub fn severity(s: &str) -> String {
    format!("<span class=\"sev sev-{0}\">{0}</span>", esc(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let h = href("findings", &[("q", "a&b \"<x>".to_string())]);
        assert_eq!(h, "findings?q=a%26b+%22%3Cx%3E");
        assert!(!h.contains('"') && !h.contains('<'));
    }

    #[test]
    fn relative_times() {
        let now = time::macros::datetime!(2026-11-28 12:00 UTC);
        assert_eq!(relative(now - time::Duration::seconds(5), now), "5 s ago");
        assert_eq!(relative(now - time::Duration::minutes(2), now), "2 min ago");
        assert_eq!(relative(now + time::Duration::seconds(40), now), "in 40 s");
        assert_eq!(relative(now - time::Duration::days(1), now), "1 day ago");
        assert_eq!(relative(now - time::Duration::days(3), now), "3 days ago");
    }
}
