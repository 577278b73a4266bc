//! The `file` source's sign-in event stream: `events_path` holds events in the normalised
//! [`SignInEvent`] format (NDJSON, or `{"events": [...]}`), replayed in time. The cursor
//! remembers when the replay started (with `time_anchor`, every event is shifted by
//! `replay start − anchor`, so events dated after the anchor appear as time passes), the
//! newest event handed on and the ids at that instant; an event that cannot be read is
//! counted as unparsable, never a failed poll.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::activity::event::SignInEvent;
use crate::model::Timestamp;
use crate::sources::{ErrorKind, SourceError};

/// Where the replay stands (persisted with the engine's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayCursor {
    #[serde(with = "time::serde::rfc3339")]
    pub replay_start: Timestamp,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub newest: Option<Timestamp>,
    /// Ids of the events at `newest` already handed on.
    #[serde(default)]
    pub ids: Vec<String>,
}

/// One read of the file: the events to hand on, the lines that could not be read, and
/// whether events dated later than now are waiting.
#[derive(Debug, Default)]
pub struct Replay {
    pub events: Vec<SignInEvent>,
    pub unparsable: Vec<String>,
    pub waiting: bool,
    pub cursor: Option<ReplayCursor>,
}

/// An NDJSON line (or array item) longer than this is skipped as unparsable.
const MAX_EVENT_BYTES: usize = 64 << 10;

fn io_error(path: &Path, e: std::io::Error) -> SourceError {
    SourceError::new(
        ErrorKind::Transport,
        format!("{}: cannot read the event stream: {e}", path.display()),
    )
}

/// Every event in the file, in file order; unreadable ones as `Err(why)`.
pub fn read_events(path: &Path) -> Result<Vec<Result<SignInEvent, String>>, SourceError> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let first = reader
        .fill_buf()
        .map_err(|e| io_error(path, e))?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    let mut out = Vec::new();
    if first == Some(b'{') && !looks_like_event_line(&mut reader, path)? {
        // `{"events": [...]}`: the whole document (bounded by the file, read once).
        let mut text = Vec::new();
        reader
            .read_to_end(&mut text)
            .map_err(|e| io_error(path, e))?;
        #[derive(Deserialize)]
        struct Doc {
            events: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(&text).map_err(|e| {
            SourceError::new(
                ErrorKind::Decode,
                format!(
                    "{}: not an event stream (NDJSON, or {{\"events\": [...]}}): {e}",
                    path.display()
                ),
            )
        })?;
        for (i, v) in doc.events.into_iter().enumerate() {
            out.push(
                serde_json::from_value::<SignInEvent>(v)
                    .map_err(|e| format!("{}: events[{i}]: {e}", path.display())),
            );
        }
        return Ok(out);
    }
    let mut line = Vec::with_capacity(1024);
    let mut n = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_EVENT_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error(path, e))?;
        if read == 0 {
            break;
        }
        n += 1;
        if line.len() > MAX_EVENT_BYTES && !line.ends_with(b"\n") {
            out.push(Err(format!(
                "{}: line {n}: longer than {} KiB",
                path.display(),
                MAX_EVENT_BYTES >> 10
            )));
            // Skip the rest of the overlong line.
            let mut rest = Vec::new();
            reader
                .read_until(b'\n', &mut rest)
                .map_err(|e| io_error(path, e))?;
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        out.push(
            serde_json::from_slice::<SignInEvent>(text)
                .map_err(|e| format!("{}: line {n}: {e}", path.display())),
        );
    }
    Ok(out)
}

/// `{` followed by `"events"` is the object form; any other object is an NDJSON event.
fn looks_like_event_line<R: Read>(r: &mut BufReader<R>, path: &Path) -> Result<bool, SourceError> {
    let buf = r.fill_buf().map_err(|e| io_error(path, e))?;
    let rest: Vec<u8> = buf
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .skip(1)
        .skip_while(|b| b.is_ascii_whitespace())
        .take(8)
        .copied()
        .collect();
    Ok(!rest.starts_with(b"\"events\""))
}

/// Picks the events to hand on from `all`, at `now`, reading nothing before `since`.
pub fn replay(
    all: Vec<Result<SignInEvent, String>>,
    cursor: Option<ReplayCursor>,
    anchor: Option<Timestamp>,
    now: Timestamp,
    since: Timestamp,
) -> Replay {
    let mut c = cursor.unwrap_or(ReplayCursor {
        replay_start: now,
        newest: None,
        ids: Vec::new(),
    });
    let shift = anchor.map(|a| c.replay_start - a);
    let mut out = Replay::default();
    for e in all {
        let mut e = match e {
            Ok(e) => e,
            Err(why) => {
                out.unparsable.push(why);
                continue;
            }
        };
        if let Some(d) = shift {
            e.time += d;
        }
        if e.time > now {
            out.waiting = true;
            continue;
        }
        if e.time < since {
            continue;
        }
        match c.newest {
            Some(n) if e.time < n => continue,
            Some(n) if e.time == n && c.ids.contains(&e.id) => continue,
            _ => {}
        }
        out.events.push(e);
    }
    out.events.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    if let Some(last) = out.events.last().map(|e| e.time) {
        if c.newest != Some(last) {
            c.ids.clear();
        }
        c.newest = Some(last);
        c.ids.extend(
            out.events
                .iter()
                .filter(|e| e.time == last)
                .map(|e| e.id.clone()),
        );
        c.ids.sort();
        c.ids.dedup();
    }
    out.cursor = Some(c);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::event::Outcome;
    use time::macros::datetime;
    use time::Duration;

    const ANCHOR: Timestamp = datetime!(2026-11-28 00:00 UTC);

    fn ev(id: &str, t: Timestamp) -> Result<SignInEvent, String> {
        Ok(SignInEvent::new(id, t, Outcome::Success))
    }

    #[test]
    fn replays_in_time_once_each() {
        let start = datetime!(2030-01-01 12:00 UTC);
        let all = || {
            vec![
                ev("a", ANCHOR - Duration::minutes(10)),
                ev("b", ANCHOR - Duration::minutes(10)),
                ev("later", ANCHOR + Duration::seconds(30)),
                ev("ancient", ANCHOR - Duration::days(3)),
                Err("x.ndjson: line 5: bad".to_string()),
            ]
        };
        let since = start - Duration::days(1);
        let r = replay(all(), None, Some(ANCHOR), start, since);
        let ids: Vec<&str> = r.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "shifted to the replay start; the old one is out of look-back");
        assert_eq!(r.events[0].time, start - Duration::minutes(10));
        assert!(r.waiting);
        assert_eq!(r.unparsable.len(), 1);
        // The next poll, 40 s later: only the event whose time has come.
        let r2 = replay(all(), r.cursor, Some(ANCHOR), start + Duration::seconds(40), since);
        let ids: Vec<&str> = r2.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["later"]);
        assert!(!r2.waiting);
        let r3 = replay(all(), r2.cursor, Some(ANCHOR), start + Duration::seconds(80), since);
        assert!(r3.events.is_empty());
    }

    #[test]
    fn reads_ndjson_and_the_object_form() {
        let dir = tempfile::tempdir().unwrap();
        let line = r#"{"id":"1","time":"2026-11-27T10:00:00Z","login":"a@x","result":"failure"}"#;
        let p = dir.path().join("e.ndjson");
        std::fs::write(&p, format!("{line}\n\nnot json\n{line}\n")).unwrap();
        let v = read_events(&p).unwrap();
        assert_eq!(v.len(), 3);
        assert!(v[1].as_ref().unwrap_err().contains("line 3"));
        let p = dir.path().join("e.json");
        std::fs::write(&p, format!("{{\"events\": [{line}, {{\"id\": 5}}]}}")).unwrap();
        let v = read_events(&p).unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok() && v[1].is_err());
        assert!(read_events(&dir.path().join("missing")).is_err());
    }
}
