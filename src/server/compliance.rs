//! The compliance report: for each framework, each control the checks map to
//! ([`crate::checks::catalog`]), whether it passes, and how many accounts fail it, from the
//! sources' last reports. Served as JSON and CSV by `/api/v1/compliance` and as HTML by the
//! findings view (`/compliance`).

use std::collections::{BTreeMap, HashSet};

use axum::response::Response;
use serde::Serialize;

use super::api::{bad, csv_response, ApiError};
use crate::checks::catalog::{self, Framework};
use crate::checks::CheckId;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct FrameworkResult {
    pub id: &'static str,
    pub title: &'static str,
    pub passed: usize,
    pub failed: usize,
    pub not_evaluated: usize,
    pub controls: Vec<ControlResult>,
}

#[derive(Debug, Serialize)]
pub struct ControlResult {
    pub id: &'static str,
    pub title: &'static str,
    pub checks: Vec<&'static str>,
    /// `pass`, `fail`, or `not_evaluated` (no source polled, or every mapped check disabled).
    pub status: &'static str,
    /// Distinct accounts with a counted finding of a mapped check, summed over sources.
    pub accounts_failing: u64,
    /// Counted tenant-level findings of the mapped checks.
    pub tenant_findings: u64,
    /// `accounts_failing` per source.
    pub sources: BTreeMap<String, u64>,
}

/// `None` or empty: every framework; otherwise the one named (400 if unknown).
pub fn frameworks_from(id: Option<&str>) -> Result<Vec<Framework>, ApiError> {
    match id.filter(|s| !s.is_empty()) {
        None => Ok(Framework::ALL.to_vec()),
        Some(id) => Framework::parse(id).map(|f| vec![f]).ok_or_else(|| {
            bad(format!(
                "unknown framework {id:?} (one of {})",
                Framework::ALL.map(Framework::id).join(", ")
            ))
        }),
    }
}

/// Per source: the accounts with a counted finding, per check, and counted tenant findings.
struct SourceFailures {
    name: String,
    accounts: BTreeMap<CheckId, HashSet<u32>>,
    tenant: BTreeMap<CheckId, u64>,
    enabled: [bool; crate::checks::N_CHECKS],
}

pub fn evaluate(state: &AppState, frameworks: &[Framework]) -> Vec<FrameworkResult> {
    let mut per_source = Vec::new();
    for s in &state.sources {
        let Some(r) = s.report.load_full() else {
            continue;
        };
        let mut sf = SourceFailures {
            name: s.name.clone(),
            accounts: BTreeMap::new(),
            tenant: BTreeMap::new(),
            enabled: CheckId::ALL.map(|c| r.policy.check(c).enabled),
        };
        for f in r.findings.iter().filter(|f| r.counts(f)) {
            match f.account {
                Some(a) => {
                    sf.accounts.entry(f.check).or_default().insert(a);
                }
                None => *sf.tenant.entry(f.check).or_default() += 1,
            }
        }
        per_source.push(sf);
    }
    frameworks
        .iter()
        .map(|&fw| {
            let controls: Vec<ControlResult> = catalog::framework_controls(fw)
                .into_iter()
                .map(|ctl| {
                    let checks = catalog::checks_for(&ctl);
                    let mut res = ControlResult {
                        id: ctl.id,
                        title: ctl.title,
                        checks: checks.iter().map(|c| c.as_str()).collect(),
                        status: "not_evaluated",
                        accounts_failing: 0,
                        tenant_findings: 0,
                        sources: BTreeMap::new(),
                    };
                    let mut evaluated = false;
                    for sf in &per_source {
                        evaluated |= checks.iter().any(|c| sf.enabled[*c as usize]);
                        let mut accts: HashSet<u32> = HashSet::new();
                        for c in &checks {
                            if let Some(set) = sf.accounts.get(c) {
                                accts.extend(set);
                            }
                            res.tenant_findings += sf.tenant.get(c).copied().unwrap_or(0);
                        }
                        res.accounts_failing += accts.len() as u64;
                        res.sources.insert(sf.name.clone(), accts.len() as u64);
                    }
                    res.status = if !evaluated {
                        "not_evaluated"
                    } else if res.accounts_failing > 0 || res.tenant_findings > 0 {
                        "fail"
                    } else {
                        "pass"
                    };
                    res
                })
                .collect();
            let n = |s: &str| controls.iter().filter(|c| c.status == s).count();
            FrameworkResult {
                id: fw.id(),
                title: fw.title(),
                passed: n("pass"),
                failed: n("fail"),
                not_evaluated: n("not_evaluated"),
                controls,
            }
        })
        .collect()
}

#[derive(Serialize)]
struct CsvRow<'a> {
    framework: &'a str,
    control: &'a str,
    title: &'a str,
    checks: String,
    status: &'a str,
    accounts_failing: u64,
    tenant_findings: u64,
}

/// The compliance report as CSV: one row per framework control.
pub fn csv(report: &[FrameworkResult]) -> Result<Response, ApiError> {
    let rows = report.iter().flat_map(|f| {
        f.controls.iter().map(move |c| CsvRow {
            framework: f.id,
            control: c.id,
            title: c.title,
            checks: c.checks.join(" "),
            status: c.status,
            accounts_failing: c.accounts_failing,
            tenant_findings: c.tenant_findings,
        })
    });
    csv_response(
        &[
            "framework",
            "control",
            "title",
            "checks",
            "status",
            "accounts_failing",
            "tenant_findings",
        ],
        rows,
    )
}
