//! Finding history: when each finding was first seen, which findings are new in a poll and
//! which were resolved since the previous one. Kept in the [`Store`] (table
//! `finding_history`, one entry per open finding; `finding_history_meta`, one per source),
//! so it survives restarts when `[storage] state_dir` is set. Applied by the poller to each
//! report it retains, in one atomic write per poll.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::checks::Severity;
use crate::model::Timestamp;
use crate::report::{Report, ResolvedFinding, StoredFinding};
use crate::store::{Batch, Store};

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
        f.finding.check.as_str(),
        f.finding.subject.as_deref().unwrap_or("")
    )
}

fn severity_index(s: &str) -> Option<usize> {
    Severity::ALL.iter().position(|x| x.as_str() == s)
}

/// Stamps `report`'s findings with their first sighting and fills `report.history`, then
/// records this poll in `store`. A store write that fails is logged; the report is still
/// right for this poll.
pub fn apply(store: &Store, source: &str, report: &mut Report) {
    let Some(now) = report.evaluated_at else {
        return;
    };
    let prefix = format!("{source}{SEP}");
    let mut previous: HashMap<String, Entry> = store
        .scan::<Entry>(TABLE, &prefix, VERSION)
        .into_iter()
        .collect();
    let meta: Option<Meta> = store.get(META, source, VERSION);
    let mut batch = Batch::default();
    let mut summary = crate::report::HistorySummary {
        tracked: true,
        ..Default::default()
    };
    let keys: Vec<String> = report
        .findings
        .iter()
        .map(|f| key(source, report, f))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let f = &report.findings[i];
        let counted = report.counts(f);
        let excluded = f.account.is_some_and(|a| report.meta[a as usize].excluded);
        let severity = report.policy.severity(f.finding.check);
        let first_seen = match previous.remove(k) {
            Some(e) => e.first_seen.unwrap_or(now),
            None => {
                batch.put(
                    TABLE,
                    k,
                    VERSION,
                    &Entry {
                        first_seen: Some(now),
                        login: f.account.map(|a| report.accounts[a as usize].login.clone()),
                        severity: severity.as_str().to_string(),
                        excluded,
                    },
                );
                if !excluded {
                    summary.new += 1;
                    summary.new_by_severity[severity as usize] += 1;
                }
                now
            }
        };
        if counted && severity == Severity::Critical {
            summary.oldest_open_critical = Some(
                summary
                    .oldest_open_critical
                    .map_or(first_seen, |o| o.min(first_seen)),
            );
        }
        report.findings[i].first_seen = Some(first_seen);
    }
    let last_poll = meta.as_ref().and_then(|m| m.last_poll);
    let mut resolved: Vec<ResolvedFinding> = Vec::new();
    let mut gone: Vec<(String, Entry)> = previous.into_iter().collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, e) in gone {
        batch.delete(TABLE, &k);
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
    batch.put(
        META,
        source,
        VERSION,
        &Meta {
            last_poll: Some(now),
            resolved: resolved.clone(),
        },
    );
    summary.resolved = resolved;
    report.history = summary;
    if let Err(e) = store.write(batch) {
        tracing::warn!(source, error = %e, "cannot record finding history; this poll's history is not kept");
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
            .find(|f| r2.account_id(f) == "a" && f.finding.check == CheckId::MfaMissing)
            .unwrap();
        assert_eq!(a.first_seen, Some(t1), "still first seen at the first poll");
        assert!(!r2.is_new(a));
    }
}
