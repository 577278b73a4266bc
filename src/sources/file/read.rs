//! The `file` source's reader: the normalised model from disk, as a JSON object
//! (`{"accounts": [...], "tenant": {...}}`) or as NDJSON (one account per line).
//! Both forms are streamed (never held as one string); errors name the file, the line or
//! account index, and the field.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::model::{Account, Known, TenantFacts, Timestamp};
use crate::sources::{ErrorKind, SourceError};

/// An NDJSON line longer than this is an error, not an allocation of unbounded size.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A file that does not hold the format.
fn bad(msg: String) -> SourceError {
    SourceError::new(ErrorKind::Decode, msg)
}

/// A file that cannot be read.
fn io_error(msg: String) -> SourceError {
    SourceError::new(ErrorKind::Transport, msg)
}

/// Moves every timestamp of an account by `d` (for `time_anchor`).
pub fn shift_account(a: &mut Account, d: time::Duration) {
    let sh = |t: &mut Timestamp| *t += d;
    let shk = |k: &mut Known<Timestamp>| {
        if let Known::At(t) = k {
            *t += d
        }
    };
    if let Some(t) = a.created.as_mut() {
        sh(t)
    }
    if let Some(t) = a.terminated.as_mut() {
        sh(t)
    }
    shk(&mut a.last_login);
    for c in a.credentials.iter_mut().flatten() {
        shk(&mut c.last_rotated);
        shk(&mut c.expires);
        shk(&mut c.last_used);
    }
    for r in a.roles.iter_mut().flatten() {
        shk(&mut r.last_used);
    }
}

/// Reads a file in either form, calling `f` per account (`f` returns false to stop early).
pub fn read_path(
    path: &Path,
    f: &mut dyn FnMut(Account) -> bool,
) -> Result<TenantFacts, SourceError> {
    let file = File::open(path)
        .map_err(|e| io_error(format!("{}: cannot open: {e}", path.display())))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let ndjson = match path.extension().and_then(|e| e.to_str()) {
        Some("ndjson" | "jsonl") => true,
        _ => looks_like_ndjson(&mut reader)
            .map_err(|e| io_error(format!("{}: cannot read: {e}", path.display())))?,
    };
    if ndjson {
        read_ndjson(reader, path, f)
    } else {
        read_object(reader, path, f)
    }
}

/// Object form starts with `{` followed by the key `accounts` or `tenant`; anything else that
/// starts with `{` is NDJSON (its first key is an account field).
fn looks_like_ndjson<R: Read>(r: &mut BufReader<R>) -> std::io::Result<bool> {
    let buf = r.fill_buf()?;
    let mut it = buf
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF);
    if it.next() != Some(&b'{') {
        return Ok(false); // let the object reader produce a proper error
    }
    let rest: Vec<u8> = it
        .skip_while(|b| b.is_ascii_whitespace())
        .take(12)
        .copied()
        .collect();
    Ok(!(rest.starts_with(b"\"accounts\"")
        || rest.starts_with(b"\"tenant\"")
        || rest.starts_with(b"}")))
}

/// Skips a UTF-8 byte-order mark at the start (PowerShell's `Out-File` writes one).
fn skip_bom<R: Read>(r: &mut BufReader<R>, path: &Path) -> Result<(), SourceError> {
    let buf = r
        .fill_buf()
        .map_err(|e| io_error(format!("{}: cannot read: {e}", path.display())))?;
    if buf.starts_with(b"\xEF\xBB\xBF") {
        r.consume(3);
    }
    Ok(())
}

/// How many bad NDJSON lines an error message quotes; the rest are counted.
const MAX_REPORTED_LINES: usize = 10;

/// NDJSON: one account per line; blank lines are skipped. A bad line fails the poll, but the
/// file is read to its end first so that one error names every bad line (up to
/// [`MAX_REPORTED_LINES`], the rest counted): an export with many broken lines is fixed in
/// one round, not one line per poll. After the first bad line no account is delivered.
pub fn read_ndjson<R: Read>(
    mut reader: BufReader<R>,
    path: &Path,
    f: &mut dyn FnMut(Account) -> bool,
) -> Result<TenantFacts, SourceError> {
    skip_bom(&mut reader, path)?;
    let mut line = Vec::with_capacity(4096);
    let mut lineno = 0u64;
    let mut bad_lines = 0u64;
    let mut reported: Vec<String> = Vec::new();
    let mut note = |bad_lines: &mut u64, lineno: u64, err: String| {
        *bad_lines += 1;
        if reported.len() < MAX_REPORTED_LINES {
            reported.push(format!("line {lineno}: {err}"));
        }
    };
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| {
                io_error(format!(
                    "{}: line {}: read error: {e}",
                    path.display(),
                    lineno + 1
                ))
            })?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if line.len() > MAX_LINE_BYTES {
            return Err(bad(format!(
                "{}: line {lineno}: longer than {} MiB (one account per line expected)",
                path.display(),
                MAX_LINE_BYTES >> 20
            )));
        }
        let text = trim_ascii(&line);
        if text.is_empty() {
            continue;
        }
        // One UTF-8 check of the whole line, then the `str` reader, which does not check
        // each string again (measurably faster than `from_slice` on a million lines).
        let parsed = match std::str::from_utf8(text) {
            Ok(t) => serde_json::from_str(t),
            Err(_) => serde_json::from_slice(text),
        };
        let account: Account = match parsed {
            Ok(a) => a,
            Err(_) => {
                // Slow path only on error: re-parse with path tracking to name the field.
                let mut de = serde_json::Deserializer::from_slice(text);
                let err = match serde_path_to_error::deserialize::<_, Account>(&mut de) {
                    Ok(_) => "unexpected parse failure".to_string(),
                    Err(e) => describe(e.path().to_string(), e.inner()),
                };
                note(&mut bad_lines, lineno, err);
                continue;
            }
        };
        if let Err(e) = validate_account(&account) {
            note(&mut bad_lines, lineno, e);
            continue;
        }
        if bad_lines == 0 && !f(account) {
            break;
        }
    }
    match bad_lines {
        0 => Ok(TenantFacts::default()),
        1 => Err(bad(format!("{}: {}", path.display(), reported[0]))),
        n => {
            let more = n - reported.len() as u64;
            Err(bad(format!(
                "{}: {n} bad lines, none of the file used: {}{}",
                path.display(),
                reported.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            )))
        }
    }
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn describe(path: String, e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde_json appends " at line L column C"; keep it, it helps find the spot.
    if path.is_empty() || path == "." {
        msg
    } else {
        format!("field `{path}`: {msg}")
    }
}

/// Semantic checks serde cannot express.
fn validate_account(a: &Account) -> Result<(), String> {
    if a.id.is_empty() {
        return Err("field `id`: must not be empty".into());
    }
    if a.login.is_empty() {
        return Err(format!(
            "account {:?}: field `login`: must not be empty",
            a.id
        ));
    }
    Ok(())
}

/// Object form, streamed with a `DeserializeSeed` so accounts are handed on one at a time.
pub fn read_object<R: Read>(
    mut reader: BufReader<R>,
    path: &Path,
    f: &mut dyn FnMut(Account) -> bool,
) -> Result<TenantFacts, SourceError> {
    skip_bom(&mut reader, path)?;
    let mut state = ObjectState {
        f,
        tenant: TenantFacts::default(),
        index: 0,
        semantic: None,
        stopped: false,
        saw_accounts: false,
    };
    let mut track = serde_path_to_error::Track::new();
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = {
        let tracked = serde_path_to_error::Deserializer::new(&mut de, &mut track);
        DocSeed(&mut state).deserialize(tracked)
    };
    let p = path.display();
    if let Some(e) = state.semantic.take() {
        return Err(bad(format!(
            "{p}: accounts[{}]: {e}",
            state.index
        )));
    }
    match result {
        Ok(()) => {}
        Err(_) if state.stopped => {}
        Err(e) => {
            let field = track.path().to_string();
            let msg = if field.is_empty() || field == "." {
                e.to_string()
            } else {
                format!("field `{field}`: {e}")
            };
            return Err(bad(format!("{p}: {msg}")));
        }
    }
    if !state.stopped {
        de.end()
            .map_err(|e| bad(format!("{p}: trailing data after the document: {e}")))?;
        if !state.saw_accounts {
            return Err(bad(format!(
                "{p}: no `accounts` array (expected {{\"accounts\": [...]}} or NDJSON)"
            )));
        }
    }
    Ok(state.tenant)
}

struct ObjectState<'f> {
    f: &'f mut dyn FnMut(Account) -> bool,
    tenant: TenantFacts,
    index: usize,
    semantic: Option<String>,
    stopped: bool,
    saw_accounts: bool,
}

struct DocSeed<'a, 'f>(&'a mut ObjectState<'f>);

impl<'de> DeserializeSeed<'de> for DocSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with an `accounts` array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "accounts" => {
                    self.0.saw_accounts = true;
                    map.next_value_seed(AccountsSeed(self.0))?;
                    if self.0.stopped {
                        return Err(serde::de::Error::custom("stopped"));
                    }
                }
                "tenant" => self.0.tenant = map.next_value()?,
                // Tolerate metadata keys (`generated`, `$schema` …) in the object form.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct AccountsSeed<'a, 'f>(&'a mut ObjectState<'f>);

impl<'de> DeserializeSeed<'de> for AccountsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AccountsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of accounts")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(a) = seq.next_element::<Account>()? {
            if let Err(e) = validate_account(&a) {
                self.0.semantic = Some(e.clone());
                return Err(serde::de::Error::custom(e));
            }
            self.0.index += 1;
            if !(self.0.f)(a) {
                self.0.stopped = true;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Reads a whole file into memory (tests, `check-config`).
pub fn read_all(path: &Path) -> Result<(Vec<Account>, TenantFacts), SourceError> {
    let mut v = Vec::new();
    let t = read_path(path, &mut |a| {
        v.push(a);
        true
    })?;
    Ok((v, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn write(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        (dir, p)
    }

    const A1: &str = r#"{"id":"1","login":"a@x","account_type":"human","status":"active","last_login":null,"mfa":{"factors":[]}}"#;
    const A2: &str = r#"{"id":"2","login":"b@x","account_type":"service","status":"disabled","created":"2024-01-02T03:04:05Z"}"#;

    #[test]
    fn absent_is_unknown_and_null_is_never() {
        let (_d, p) = write("a.ndjson", &format!("{A1}\n\n{A2}\n"));
        let (accts, _) = read_all(&p).unwrap();
        assert_eq!(accts.len(), 2);
        assert_eq!(accts[0].last_login, Known::Never);
        assert_eq!(accts[1].last_login, Known::Unknown);
        assert!(accts[0].mfa.is_some() && accts[1].mfa.is_none());
        // And it round-trips: Never serialises as null, Unknown is left out.
        let s0 = serde_json::to_string(&accts[0]).unwrap();
        let s1 = serde_json::to_string(&accts[1]).unwrap();
        assert!(s0.contains("\"last_login\":null"), "{s0}");
        assert!(!s1.contains("last_login"), "{s1}");
    }

    #[test]
    fn object_form_and_ndjson_agree() {
        let (_d1, p1) = write("a.ndjson", &format!("{A1}\n{A2}\n"));
        let (_d2, p2) = write(
            "a.json",
            &format!(
                "{{\n \"accounts\": [{A1},\n{A2}], \"tenant\": {{\"mfa_policy_gaps\": [\"x\"]}}}}"
            ),
        );
        let (n, _) = read_all(&p1).unwrap();
        let (o, t) = read_all(&p2).unwrap();
        assert_eq!(n, o);
        assert_eq!(t.mfa_policy_gaps, Some(vec!["x".to_string()]));
        // NDJSON detection without the extension.
        let (_d3, p3) = write("a.json", &format!("{A1}\n{A2}\n"));
        assert_eq!(read_all(&p3).unwrap().0, n);
    }

    #[test]
    fn every_bad_ndjson_line_is_named_up_to_a_cap() {
        let body: String = (1..=15)
            .map(|i| format!("{{\"id\":\"{i}\",\"login\":\"\",\"account_type\":\"human\",\"status\":\"active\"}}\n{A1}\n"))
            .collect();
        let (_d, p) = write("many.ndjson", &format!("{A1}\nnot json\n{body}"));
        let e = read_all(&p).unwrap_err().to_string();
        assert!(e.contains("many.ndjson: 16 bad lines, none of the file used"), "{e}");
        assert!(e.contains("line 2: "), "{e}");
        assert!(e.contains("line 3: "), "{e}");
        assert!(e.contains("; and 6 more"), "{e}");
        assert_eq!(e.matches("; line ").count(), MAX_REPORTED_LINES - 1, "{e}");
        // Nothing is delivered after the first bad line.
        let mut seen = 0;
        let r = read_ndjson(
            BufReader::new(std::fs::File::open(&p).unwrap()),
            &p,
            &mut |_| {
                seen += 1;
                true
            },
        );
        assert!(r.is_err());
        assert_eq!(seen, 1);
    }

    #[test]
    fn ndjson_error_names_file_line_and_field() {
        let bad = r#"{"id":"3","login":"c@x","account_type":"human","status":"active","mfa":{"factors":[{"type":"webauthn","status":"active","since":"sleepy"}]}}"#;
        let (_d, p) = write("x.ndjson", &format!("{A1}\n{bad}\n"));
        let e = read_all(&p).unwrap_err().to_string();
        assert!(e.contains("x.ndjson: line 2"), "{e}");
        assert!(e.contains("mfa.factors[0]"), "{e}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named() {
        let (_d, p) = write("x.ndjson", &format!("{A1}\n"));
        let mut body = std::fs::read(&p).unwrap();
        body.extend_from_slice(
            b"{\"id\":\"4\",\"login\":\"caf\xe9@x\",\"account_type\":\"human\",\"status\":\"active\"}\n",
        );
        std::fs::write(&p, body).unwrap();
        let e = read_all(&p).unwrap_err().to_string();
        assert!(e.contains("x.ndjson: line 2"), "{e}");
        assert!(e.contains("login"), "{e}");
        assert!(e.contains("invalid unicode"), "{e}");
    }

    #[test]
    fn object_error_names_index_and_field() {
        let bad = r#"{"id":"3","login":"c@x","account_type":"robot","status":"active"}"#;
        let (_d, p) = write("x.json", &format!("{{\"accounts\":[{A1},{bad}]}}"));
        let e = read_all(&p).unwrap_err().to_string();
        assert!(e.contains("x.json"), "{e}");
        assert!(e.contains("accounts[1].account_type"), "{e}");
    }

    #[test]
    fn truncated_and_garbage_files_are_errors() {
        let (_d, p) = write("t.json", &format!("{{\"accounts\":[{A1},{{\"id\":"));
        assert!(read_all(&p).unwrap_err().to_string().contains("t.json"));
        let (_d, p) = write("g.json", "not json at all");
        assert!(read_all(&p).is_err());
        let (_d, p) = write("e.json", "{\"accounts\": 5}");
        assert!(read_all(&p).unwrap_err().to_string().contains("accounts"));
        let (_d, p) = write("m.json", "{\"accounts\": [], \"x\": 1}\n");
        assert!(read_all(&p).unwrap().0.is_empty());
        let (_d, p) = write("m.json", "{\"tenant\": {}}");
        assert!(read_all(&p)
            .unwrap_err()
            .to_string()
            .contains("no `accounts`"));
        let e = read_all(Path::new("/nonexistent/file.json")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/file.json"));
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let (_d, p) = write(
            "x.ndjson",
            &format!("{A1}\n{}", "x".repeat(MAX_LINE_BYTES + 10)),
        );
        let e = read_all(&p).unwrap_err().to_string();
        assert!(e.contains("line 2: longer than 16 MiB"), "{e}");
    }

    #[test]
    fn empty_login_is_rejected() {
        let (_d, p) = write(
            "x.ndjson",
            r#"{"id":"1","login":"","account_type":"human","status":"active"}"#,
        );
        assert!(read_all(&p).unwrap_err().to_string().contains("login"));
    }
}
