//! Finding history: when each finding was first seen, which findings are new in a poll and
//! which were resolved since the previous one. Kept in the [`Store`] (table
//! `finding_history`, one entry per open finding; `finding_history_meta`, one per source),
//! so it survives restarts when `[storage] state_dir` is set. Applied by the poller to each
//! report it retains, in one atomic write per poll.

use serde::{Deserialize, Serialize};

use crate::checks::Severity;
use crate::model::Timestamp;
use crate::report::{Report, ResolvedFinding, StoredFinding};
use crate::store::Store;

const TABLE: &str = "finding_history";
const META: &str = "finding_history_meta";
const VERSION: u16 = 1;
/// At most this many resolved findings are kept for "resolved since last poll".
pub const MAX_RESOLVED: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(with = "crate::model::opt_rfc3339")]
    first_seen: Option<Timestamp>,
    login: Option<String>,
    severity: String,
    /// On an excluded account (then not counted as new or resolved).
    excluded: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    #[serde(with = "crate::model::opt_rfc3339")]
    last_poll: Option<Timestamp>,
    resolved: Vec<ResolvedFinding>,
}

const SEP: char = '\u{1f}';

fn key(source: &str, r: &Report, f: &StoredFinding) -> String {
    format!(
        "{source}{SEP}{}{SEP}{}{SEP}{}",
        r.account_id(f),
        f.check.as_str(),
        r.subject(f).unwrap_or("")
    )
}

fn severity_index(s: &str) -> Option<usize> {
    Severity::ALL.iter().position(|x| x.as_str() == s)
}

/// The key of finding `f` after the `{source}{SEP}` prefix, as bytes.
fn key_bytes<'a>(r: &'a Report, f: &StoredFinding) -> impl Iterator<Item = u8> + 'a {
    let sep = [SEP as u8];
    r.account_id(f)
        .bytes()
        .chain(sep)
        .chain(f.check.as_str().bytes())
        .chain(sep)
        .chain(r.subject(f).unwrap_or("").bytes())
}

/// A finding not in the store: new, first seen now.
fn new_finding(
    w: &mut crate::store::Writer<'_>,
    source: &str,
    now: Timestamp,
    report: &Report,
    i: usize,
    summary: &mut crate::report::HistorySummary,
) -> Result<Timestamp, String> {
    let f = report.findings[i];
    let excluded = f
        .account
        .and_then(|a| report.meta(a))
        .is_some_and(|m| m.excluded);
    let severity = report.policy.severity(f.check);
    w.put(
        TABLE,
        &key(source, report, &f),
        VERSION,
        &Entry {
            first_seen: Some(now),
            login: f.account.map(|a| report.accounts.login(a).to_string()),
            severity: severity.as_str().to_string(),
            excluded,
        },
    )?;
    if !excluded {
        summary.new += 1;
        summary.new_by_severity[severity as usize] += 1;
    }
    Ok(now)
}

/// Records finding `i`'s first sighting.
fn stamp(
    report: &mut Report,
    i: usize,
    first_seen: Timestamp,
    summary: &mut crate::report::HistorySummary,
) {
    let f = report.findings[i];
    if report.counts(&f) && report.policy.severity(f.check) == Severity::Critical {
        summary.oldest_open_critical = Some(
            summary
                .oldest_open_critical
                .map_or(first_seen, |o| o.min(first_seen)),
        );
    }
    report.set_first_seen(i, first_seen);
}

/// The report's findings in key order (indexes into `findings`).
///
/// A report lists its findings by account id, then check, then subject; the key orders
/// checks by their name instead. So the order is found by sorting each account's few
/// findings by check name and subject, then confirmed with one pass over neighbours; only
/// if that fails (an id holding bytes below the separator) is everything sorted by key.
fn key_order(r: &Report) -> Vec<u32> {
    let mut order: Vec<u32> = (0..r.findings.len() as u32).collect();
    let by_name = |a: &u32, b: &u32| {
        let (x, y) = (&r.findings[*a as usize], &r.findings[*b as usize]);
        x.check
            .as_str()
            .cmp(y.check.as_str())
            .then_with(|| r.subject(x).unwrap_or("").cmp(r.subject(y).unwrap_or("")))
    };
    for run in order
        .chunk_by_mut(|a, b| r.findings[*a as usize].account == r.findings[*b as usize].account)
    {
        run.sort_by(by_name);
    }
    let key = |i: u32| key_bytes(r, &r.findings[i as usize]);
    if order.windows(2).all(|w| key(w[0]).le(key(w[1]))) {
        return order;
    }
    order.sort_by(|a, b| key(*a).cmp(key(*b)));
    order
}

/// [`apply`], given the source's previous report. With the store in memory (no
/// `storage.state_dir`), the previous report already holds every open finding with its first
/// sighting, so history is worked out from it, and the store keeps only the per-source
/// summary: a million open findings are not held twice. With the store on disk (history
/// survives restarts), the stored entries are used as in [`apply`].
pub fn apply_with_previous(
    store: &Store,
    source: &str,
    report: &mut Report,
    previous: Option<&Report>,
) {
    if store.path().is_some() {
        return apply(store, source, report);
    }
    let Some(now) = report.evaluated_at else {
        return;
    };
    let meta: Option<Meta> = store.get(META, source, VERSION);
    let last_poll = meta.as_ref().and_then(|m| m.last_poll);
    let mut summary = crate::report::HistorySummary {
        tracked: true,
        ..Default::default()
    };
    let mut resolved: Vec<ResolvedFinding> = Vec::new();
    let new_order = key_order(report);
    let old_order = previous.map(key_order).unwrap_or_default();
    let (mut i, mut j) = (0usize, 0usize);
    loop {
        let ord = match (new_order.get(i), old_order.get(j), previous) {
            (Some(&a), Some(&b), Some(prev)) => key_bytes(report, &report.findings[a as usize])
                .cmp(key_bytes(prev, &prev.findings[b as usize])),
            (Some(_), _, _) => std::cmp::Ordering::Less,
            (None, Some(_), Some(_)) => std::cmp::Ordering::Greater,
            _ => break,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let idx = new_order[i] as usize;
                let f = report.findings[idx];
                let excluded = f
                    .account
                    .and_then(|a| report.meta(a))
                    .is_some_and(|m| m.excluded);
                if !excluded {
                    let severity = report.policy.severity(f.check);
                    summary.new += 1;
                    summary.new_by_severity[severity as usize] += 1;
                }
                stamp(report, idx, now, &mut summary);
                i += 1;
            }
            std::cmp::Ordering::Equal => {
                let idx = new_order[i] as usize;
                let first_seen = previous
                    .and_then(|p| p.first_seen(&p.findings[old_order[j] as usize]))
                    .unwrap_or(now);
                stamp(report, idx, first_seen, &mut summary);
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Greater => {
                // In the previous poll, not in this one: resolved.
                if let Some(prev) = previous {
                    let f = prev.findings[old_order[j] as usize];
                    let excluded = f
                        .account
                        .and_then(|a| prev.meta(a))
                        .is_some_and(|m| m.excluded);
                    if !excluded {
                        let severity = prev.policy.severity(f.check);
                        summary.resolved_by_severity[severity as usize] += 1;
                        if resolved.len() < MAX_RESOLVED {
                            let account_id = f.account.map(|a| prev.accounts.id(a).to_string());
                            resolved.push(ResolvedFinding {
                                account_id,
                                login: f.account.map(|a| prev.accounts.login(a).to_string()),
                                check: f.check.as_str().to_string(),
                                severity: severity.as_str().to_string(),
                                subject: prev
                                    .subject(&f)
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_string),
                                first_seen: prev.first_seen(&f),
                                last_seen: last_poll,
                            });
                        }
                    }
                }
                j += 1;
            }
        }
    }
    let written = store.update::<Entry, _>(META, source, VERSION, |_, w| {
        w.put(
            META,
            source,
            VERSION,
            &Meta {
                last_poll: Some(now),
                resolved: resolved.clone(),
            },
        )
    });
    if let Err(e) = written {
        tracing::warn!(source, error = %e, "cannot record finding history; this poll's history is not kept");
    }
    summary.resolved = resolved;
    report.history = summary;
}

/// Stamps `report`'s findings with their first sighting and fills `report.history`, then
/// records this poll in `store`. A store write that fails is logged; the report is still
/// right for this poll.
///
/// The findings (in key order) are merged with the stored entries (read in key order as a
/// stream), and the changes are written in the same pass: memory does not grow with the
/// number of findings beyond one index per finding.
pub fn apply(store: &Store, source: &str, report: &mut Report) {
    let Some(now) = report.evaluated_at else {
        return;
    };
    let prefix = format!("{source}{SEP}");
    let meta: Option<Meta> = store.get(META, source, VERSION);
    let order = key_order(report);
    let last_poll = meta.as_ref().and_then(|m| m.last_poll);
    let result = store.update::<Entry, _>(TABLE, &prefix, VERSION, |entries, w| {
        let mut summary = crate::report::HistorySummary {
            tracked: true,
            ..Default::default()
        };
        let mut resolved: Vec<ResolvedFinding> = Vec::new();
        let mut next = 0usize;
        for (k, entry) in entries {
            let stored = k.as_bytes().get(prefix.len()..).unwrap_or_default();
            // Findings before this stored key are new.
            while let Some(&i) = order.get(next) {
                let i = i as usize;
                let ord = key_bytes(report, &report.findings[i]).cmp(stored.iter().copied());
                match ord {
                    std::cmp::Ordering::Less => {
                        let t = new_finding(w, source, now, report, i, &mut summary)?;
                        stamp(report, i, t, &mut summary);
                        next += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        let t = match &entry {
                            Some(e) => e.first_seen.unwrap_or(now),
                            // Another version: as if absent (rewritten below).
                            None => new_finding(w, source, now, report, i, &mut summary)?,
                        };
                        stamp(report, i, t, &mut summary);
                        next += 1;
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            let matched = next > 0
                && order.get(next - 1).is_some_and(|&i| {
                    key_bytes(report, &report.findings[i as usize]).eq(stored.iter().copied())
                });
            if matched {
                continue;
            }
            // Stored, and not found in this poll: resolved.
            let Some(e) = entry else { continue };
            w.delete(TABLE, &k)?;
            if e.excluded {
                continue;
            }
            if let Some(i) = severity_index(&e.severity) {
                summary.resolved_by_severity[i] += 1;
            }
            if resolved.len() < MAX_RESOLVED {
                let mut parts = k.splitn(4, SEP).skip(1);
                let account_id = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
                let check = parts.next().unwrap_or("").to_string();
                let subject = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
                resolved.push(ResolvedFinding {
                    account_id,
                    login: e.login,
                    check,
                    severity: e.severity,
                    subject,
                    first_seen: e.first_seen,
                    last_seen: last_poll,
                });
            }
        }
        while let Some(&i) = order.get(next) {
            let t = new_finding(w, source, now, report, i as usize, &mut summary)?;
            stamp(report, i as usize, t, &mut summary);
            next += 1;
        }
        w.put(
            META,
            source,
            VERSION,
            &Meta {
                last_poll: Some(now),
                resolved: resolved.clone(),
            },
        )?;
        summary.resolved = resolved;
        Ok(summary)
    });
    match result {
        Ok(summary) => report.history = summary,
        Err(e) => {
            tracing::warn!(source, error = %e, "cannot record finding history; this poll's history is not kept");
            // The poll is still right: every finding first seen now, as without history.
            for i in 0..report.findings.len() {
                report.set_first_seen(i, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testutil::*;
    use crate::checks::CheckId;
    use crate::config::Policy;
    use crate::model::*;
    use crate::report::ReportBuilder;
    use crate::sources::PollOutput;

    fn report(at: Timestamp, accounts: Vec<Account>) -> Report {
        let mut b = ReportBuilder::new(Policy::default(), at, true);
        for a in accounts {
            b.add(a);
        }
        b.finish(PollOutput::default())
    }

    fn no_mfa(login: &str) -> Account {
        let mut a = active(login);
        a.mfa = Some(Mfa::default());
        a
    }

    #[test]
    fn first_seen_new_and_resolved_across_polls() {
        let store = Store::in_memory();
        let t1 = NOW;
        let mut r1 = report(t1, vec![no_mfa("a"), no_mfa("b")]);
        apply(&store, "s", &mut r1);
        // Two accounts without MFA, plus too few super admins (a tenant finding).
        assert_eq!(r1.history.new, 3);
        assert!(r1.findings.iter().all(|f| r1.is_new(f)));

        let t2 = NOW + time::Duration::hours(1);
        let mut r2 = report(t2, vec![no_mfa("a"), active("b"), no_mfa("c")]);
        apply(&store, "s", &mut r2);
        assert_eq!(r2.history.new, 1, "c is new");
        assert_eq!(r2.history.resolved.len(), 1, "b got MFA");
        let gone = &r2.history.resolved[0];
        assert_eq!(gone.account_id.as_deref(), Some("b"));
        assert_eq!(gone.check, "mfa.missing");
        assert_eq!(gone.last_seen, Some(t1));
        let a = r2
            .findings
            .iter()
            .find(|f| r2.account_id(f) == "a" && f.check == CheckId::MfaMissing)
            .unwrap();
        assert_eq!(
            r2.first_seen(a),
            Some(t1),
            "still first seen at the first poll"
        );
        assert!(!r2.is_new(a));
    }

    /// The quick key order (each account's findings by check name, confirmed in one pass)
    /// is the order a full sort by key gives, also when ids hold bytes below the separator
    /// or are prefixes of one another (where the quick order is refused and it falls back).
    #[test]
    fn key_order_is_the_full_sort_by_key() {
        let (mut accounts, _) = crate::demo::generate(&crate::demo::DemoOptions {
            accounts: 400,
            seed: 3,
            now: NOW,
        });
        let full = |r: &Report| {
            let mut o: Vec<u32> = (0..r.findings.len() as u32).collect();
            o.sort_by(|a, b| {
                key_bytes(r, &r.findings[*a as usize]).cmp(key_bytes(r, &r.findings[*b as usize]))
            });
            o
        };
        let r = report(NOW, accounts.clone());
        let most = r
            .findings
            .chunk_by(|a, b| a.account == b.account)
            .map(|run| run.len())
            .max();
        assert!(most >= Some(3), "some accounts have several findings");
        // The report's order (checks in declaration order) is not the key order.
        assert_ne!(
            key_order(&r),
            (0..r.findings.len() as u32).collect::<Vec<_>>()
        );
        assert_eq!(key_order(&r), full(&r));
        for id in ["ab", "ab\u{1}c", "ab\u{1f}", "ab c", ""] {
            let mut a = no_mfa(&format!("odd{}", id.len()));
            a.id = format!("{}{id}", accounts[0].id);
            a.last_login = Known::Never;
            accounts.push(a);
        }
        let r = report(NOW, accounts);
        assert_eq!(key_order(&r), full(&r));
    }

    /// In memory, history comes from the previous report instead of stored entries: the
    /// same first sightings, new and resolved findings, over three polls.
    #[test]
    fn history_from_the_previous_report_matches_the_stored_history() {
        let polls = [
            vec![no_mfa("a"), no_mfa("b"), active("d")],
            vec![no_mfa("a"), active("b"), no_mfa("c")],
            vec![active("a"), no_mfa("b"), no_mfa("c"), no_mfa("e")],
        ];
        let (stored, memory) = (Store::in_memory(), Store::in_memory());
        let mut previous: Option<Report> = None;
        for (n, accounts) in polls.iter().enumerate() {
            let t = NOW + time::Duration::hours(n as i64);
            let mut a = report(t, accounts.clone());
            apply(&stored, "s", &mut a);
            let mut b = report(t, accounts.clone());
            apply_with_previous(&memory, "s", &mut b, previous.as_ref());
            assert_eq!(a.history.new, b.history.new, "poll {n}");
            assert_eq!(a.history.resolved, b.history.resolved, "poll {n}");
            assert_eq!(a.history.new_by_severity, b.history.new_by_severity);
            assert_eq!(
                a.history.resolved_by_severity,
                b.history.resolved_by_severity
            );
            assert_eq!(
                a.history.oldest_open_critical,
                b.history.oldest_open_critical
            );
            let stamps = |r: &Report| -> Vec<_> {
                r.findings
                    .iter()
                    .map(|f| (r.account_id(f).to_string(), f.check, r.first_seen(f)))
                    .collect()
            };
            assert_eq!(stamps(&a), stamps(&b), "poll {n}");
            previous = Some(b);
        }
        assert!(previous.unwrap().history.resolved.len() == 1);
    }
}
