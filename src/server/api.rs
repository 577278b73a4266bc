//! The `/api/v1` views: source state, summary counts, per-account findings (JSON or CSV,
//! filtered, keyset-paginated so pages stay consistent across polls, with the total for the
//! filter), one account, and compliance per framework. The findings filter and selection
//! here also feed the HTML findings view, so both always list the same findings.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ServerState;
use crate::checks::{CheckId, Severity};
use crate::model::{AccountType, DataKind};
use crate::report::{FindingRecord, Report, StoredFinding};
use crate::state::{AppState, SourceState};

pub const DEFAULT_LIMIT: usize = 1000;
pub const MAX_LIMIT: usize = 10_000;

/// An error answer: a status and a short message, never internals.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

pub fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "cannot render response");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

/// Every CSV the server produces goes through here, and so through [`super::csv_safe`]:
/// every cell quoted, formula cells neutralised (the one place cells are sanitised).
pub fn csv_response<T: Serialize>(
    columns: &[&str],
    rows: impl IntoIterator<Item = T>,
) -> Result<Response, ApiError> {
    let mut w = super::csv_safe::Writer::new(Vec::new());
    w.write_record(columns.iter().copied()).map_err(internal)?;
    for r in rows {
        w.serialize_record(columns, &r).map_err(internal)?;
    }
    let body = w.into_inner().map_err(internal)?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}

pub async fn sources(State(s): State<Arc<ServerState>>) -> Json<Value> {
    let state = s.app();
    let list: Vec<Value> = state.sources.iter().map(|s| source_json(s)).collect();
    Json(json!({ "sources": list }))
}

fn source_json(s: &SourceState) -> Value {
    let st = s.status();
    let r = s.report.load_full();
    let state = st.state();
    let mut available = serde_json::Map::new();
    let mut missing = serde_json::Map::new();
    if let Some(r) = &r {
        for d in DataKind::ALL {
            available.insert(d.as_str().into(), r.availability.is_available(d).into());
        }
        for (d, why) in &r.availability.missing {
            missing.insert(d.as_str().into(), why.clone().into());
        }
    }
    json!({
        "name": s.name,
        "provider": s.provider,
        "state": state,
        "interval_seconds": s.interval.as_secs_f64(),
        "polls": st.polls,
        "failures": st.failures,
        "consecutive_failures": st.consecutive_failures,
        "polling": st.polling,
        "last_attempt": st.last_attempt.map(crate::model::format_ts),
        "last_success": st.last_success.map(crate::model::format_ts),
        "next_poll": st.next_poll.map(crate::model::format_ts),
        "last_duration_seconds": st.last_duration_seconds,
        "last_error": st.last_error,
        "last_error_at": st.last_error_at.map(crate::model::format_ts),
        "evaluated_at": r.as_ref().and_then(|r| r.evaluated_at).map(crate::model::format_ts),
        "accounts": r.as_ref().map(|r| r.tally.accounts.iter().flatten().sum::<u64>()),
        "active_accounts": r.as_ref().map(|r| r.tally.active[0] + r.tally.active[1]),
        "data_available": available,
        "data_missing": missing,
        "api_requests": s.stats.api_requests(),
        "rate_limited": s.stats.rate_limited(),
    })
}

/// The counts of one source or of all: the numbers behind `/metrics`, the landing page and
/// `/api/v1/summary`, computed once here.
#[derive(Serialize, Default, Debug, Clone)]
pub struct Counts {
    pub accounts: u64,
    pub active_accounts: u64,
    pub excluded_accounts: u64,
    pub compliant_accounts: u64,
    pub compliant_ratio: f64,
    /// Per check: accounts with a counted finding (= `identity_posture_findings`).
    pub checks: BTreeMap<&'static str, u64>,
    /// Per severity: the `checks` numbers summed by each check's severity.
    pub severities: BTreeMap<&'static str, u64>,
    /// Per check: counted findings (an account with two stale keys has two) = the `total`
    /// of `/api/v1/findings?check=…&excluded=false&excepted=false`.
    pub findings: BTreeMap<&'static str, u64>,
    /// Per check: accounts whose findings of the check are all covered by exceptions.
    pub excepted: BTreeMap<&'static str, u64>,
    /// Checks turned off by policy (for at least one of the counted sources).
    pub disabled_checks: Vec<&'static str>,
    /// Findings first seen in the last poll, and findings gone since the one before.
    pub new_findings: u64,
    pub resolved_findings: u64,
}

pub fn counts(reports: &[&Report]) -> Counts {
    let mut c = Counts::default();
    for ch in CheckId::ALL {
        c.checks.insert(ch.as_str(), 0);
        c.findings.insert(ch.as_str(), 0);
        c.excepted.insert(ch.as_str(), 0);
    }
    for s in Severity::ALL {
        c.severities.insert(s.as_str(), 0);
    }
    for r in reports {
        let t = &r.tally;
        c.accounts += t.accounts.iter().flatten().sum::<u64>();
        c.active_accounts += t.active[0] + t.active[1];
        c.excluded_accounts += t.excluded;
        c.compliant_accounts += t.compliant;
        c.new_findings += r.history.new;
        c.resolved_findings += r.history.resolved.len() as u64;
        for ch in CheckId::ALL {
            let i = ch as usize;
            *c.checks.entry(ch.as_str()).or_default() += t.findings[i];
            *c.findings.entry(ch.as_str()).or_default() += t.finding_rows[i];
            *c.excepted.entry(ch.as_str()).or_default() += t.excepted[i];
            *c.severities
                .entry(r.policy.severity(ch).as_str())
                .or_default() += t.findings[i];
            if !r.policy.check(ch).enabled && !c.disabled_checks.contains(&ch.as_str()) {
                c.disabled_checks.push(ch.as_str());
            }
        }
    }
    c.compliant_ratio = if c.active_accounts == 0 {
        1.0
    } else {
        c.compliant_accounts as f64 / c.active_accounts as f64
    };
    c
}

pub async fn summary(State(s): State<Arc<ServerState>>) -> Json<Value> {
    let state = s.app();
    let mut per = Vec::new();
    let mut all = Vec::new();
    for s in &state.sources {
        let st = s.status();
        match s.report.load_full() {
            Some(r) => {
                per.push(json!({"source": s.name, "provider": s.provider, "up": st.up, "counts": counts(&[r.as_ref()])}));
                all.push(r);
            }
            None => per.push(
                json!({"source": s.name, "provider": s.provider, "up": st.up, "counts": null}),
            ),
        }
    }
    let refs: Vec<&Report> = all.iter().map(|r| r.as_ref()).collect();
    Json(json!({
        "units": {
            "checks": "accounts (tenant checks: findings)",
            "severities": "accounts",
            "findings": "findings",
            "excepted": "accounts",
        },
        "overall": counts(&refs),
        "sources": per,
    }))
}

/// The findings filter, as the API and the view take it from the query string.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    pub source: Option<String>,
    pub check: Option<String>,
    pub severity: Option<String>,
    pub account_type: Option<String>,
    pub privileged: Option<bool>,
    pub excluded: Option<bool>,
    pub excepted: Option<bool>,
    /// Only findings first seen in the latest poll.
    pub new: Option<bool>,
    /// Case-insensitive substring of the login (or display name).
    pub q: Option<String>,
    pub format: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Page number (HTML view only; the API pages with `cursor`).
    pub page: Option<usize>,
}

/// A parsed, validated filter.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub source: Option<String>,
    pub check: Option<CheckId>,
    pub severity: Option<Severity>,
    pub account_type: Option<AccountType>,
    pub privileged: Option<bool>,
    pub excluded: Option<bool>,
    pub excepted: Option<bool>,
    pub new: Option<bool>,
    pub q: Option<String>,
}

impl Filter {
    pub fn parse(q: &FindingsQuery, state: &AppState) -> Result<Filter, ApiError> {
        let check = q
            .check
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| CheckId::parse(c).ok_or_else(|| bad(format!("unknown check {c:?}"))))
            .transpose()?;
        let severity = q
            .severity
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| Severity::parse(c).ok_or_else(|| bad(format!("unknown severity {c:?}"))))
            .transpose()?;
        let account_type = match q.account_type.as_deref() {
            None | Some("") => None,
            Some("human") => Some(AccountType::Human),
            Some("service") => Some(AccountType::Service),
            Some(o) => {
                return Err(bad(format!(
                    "unknown account_type {o:?} (human or service)"
                )))
            }
        };
        let source = q.source.clone().filter(|s| !s.is_empty());
        if let Some(name) = &source {
            if state.source(name).is_none() {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("no source named {name:?}"),
                ));
            }
        }
        Ok(Filter {
            source,
            check,
            severity,
            account_type,
            privileged: q.privileged,
            excluded: q.excluded,
            excepted: q.excepted,
            new: q.new,
            q: q.q
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase),
        })
    }

    /// No filter but the source: every finding matches.
    pub fn is_all(&self) -> bool {
        self.check.is_none()
            && self.severity.is_none()
            && self.account_type.is_none()
            && self.privileged.is_none()
            && self.excluded.is_none()
            && self.excepted.is_none()
            && self.new.is_none()
            && self.q.is_none()
    }

    pub fn matches(&self, r: &Report, f: &StoredFinding) -> bool {
        if self.check.is_some_and(|c| f.check != c)
            || self
                .severity
                .is_some_and(|sv| r.policy.severity(f.check) != sv)
            || self.excepted.is_some_and(|e| f.excepted.is_some() != e)
            || self.new.is_some_and(|n| r.is_new(f) != n)
        {
            return false;
        }
        let meta = f.account.and_then(|i| r.meta(i));
        if let Some(at) = self.account_type {
            if meta.is_none_or(|m| m.account_type != at) {
                return false;
            }
        }
        if let Some(p) = self.privileged {
            if meta.is_none_or(|m| m.privileged != p) {
                return false;
            }
        }
        if let Some(ex) = self.excluded {
            if meta.is_some_and(|m| m.excluded) != ex {
                return false;
            }
        }
        if let Some(q) = &self.q {
            let Some(a) = f.account.and_then(|i| r.accounts.head(i)) else {
                return false;
            };
            let hit = a.login.to_lowercase().contains(q)
                || a.display_name.is_some_and(|d| d.to_lowercase().contains(q));
            if !hit {
                return false;
            }
        }
        true
    }

    /// The filter as query-string pairs (for links and exports of the same filter).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(s) = &self.source {
            v.push(("source", s.clone()));
        }
        if let Some(c) = self.check {
            v.push(("check", c.as_str().to_string()));
        }
        if let Some(s) = self.severity {
            v.push(("severity", s.as_str().to_string()));
        }
        if let Some(a) = self.account_type {
            v.push(("account_type", a.as_str().to_string()));
        }
        for (k, b) in [
            ("privileged", self.privileged),
            ("excluded", self.excluded),
            ("excepted", self.excepted),
            ("new", self.new),
        ] {
            if let Some(b) = b {
                v.push((k, b.to_string()));
            }
        }
        if let Some(q) = &self.q {
            v.push(("q", q.clone()));
        }
        v
    }
}

/// Keyset position: the last item of the previous page.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    source: String,
    account_id: Option<String>,
    account_index: Option<u32>,
    check: String,
    subject: Option<String>,
}

fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(s: &str) -> Result<Cursor, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("invalid cursor"))
}

type Key<'a> = (Option<&'a str>, Option<u32>, CheckId, Option<&'a str>);

/// Sort key of a stored finding (the order `Report::findings` is in).
fn key<'a>(r: &'a Report, f: &'a StoredFinding) -> Key<'a> {
    (
        f.account.map(|i| r.accounts.id(i)),
        f.account,
        f.check,
        r.subject(f),
    )
}

/// Where a page starts.
pub enum Start {
    /// Keyset cursor (the API).
    Cursor(Option<String>),
    /// Skip this many matches (the HTML view's page numbers).
    Offset(usize),
}

/// One page of matching findings, with the totals for the whole filter.
pub struct Selection {
    /// (source, report, index into `report.findings`).
    pub rows: Vec<(Arc<SourceState>, Arc<Report>, usize)>,
    /// Findings matching the filter, all pages.
    pub total: u64,
    /// Distinct accounts among them (tenant findings count one each).
    pub accounts: u64,
    pub next_cursor: Option<String>,
}

impl Selection {
    pub fn records(&self) -> impl Iterator<Item = FindingRecord<'_>> {
        self.rows
            .iter()
            .map(|(s, r, i)| r.record(&s.name, s.provider, &r.findings[*i]))
    }
}

/// Selects one page of the findings matching `filter`, in (source, account id, check,
/// subject) order, and counts every match.
pub fn select(
    state: &AppState,
    filter: &Filter,
    start: Start,
    limit: usize,
) -> Result<Selection, ApiError> {
    let cursor = match &start {
        Start::Cursor(c) => c.as_deref().map(decode_cursor).transpose()?,
        Start::Offset(_) => None,
    };
    let cursor_check = cursor
        .as_ref()
        .map(|c| CheckId::parse(&c.check).ok_or_else(|| bad("invalid cursor")))
        .transpose()?;
    let skip = match start {
        Start::Offset(n) => n,
        Start::Cursor(_) => 0,
    };
    let mut sources: Vec<&Arc<SourceState>> = state
        .sources
        .iter()
        .filter(|s| filter.source.as_deref().is_none_or(|n| s.name == n))
        .collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));

    let mut sel = Selection {
        rows: Vec::new(),
        total: 0,
        accounts: 0,
        next_cursor: None,
    };
    let mut matched = 0usize;
    let mut more = false;
    let all = filter.is_all();
    for s in sources {
        let Some(r) = s.report.load_full() else {
            continue;
        };
        // Totals for the whole filter. Without a filter they were counted with the report.
        if all {
            sel.total += r.findings.len() as u64;
            sel.accounts += r.finding_accounts();
        } else {
            // Findings are sorted by account: an account's findings are next to each other.
            let mut last_account = None;
            for f in r.findings.iter().filter(|f| filter.matches(&r, f)) {
                sel.total += 1;
                match f.account {
                    Some(a) => {
                        if last_account != Some(a) {
                            last_account = Some(a);
                            sel.accounts += 1;
                        }
                    }
                    None => sel.accounts += 1,
                }
            }
        }
        if more {
            continue;
        }
        // The page: findings are in key order, so a cursor is found by binary search.
        let begin = match (&cursor, cursor_check) {
            (Some(c), Some(ck)) => {
                if s.name.as_str() < c.source.as_str() {
                    continue;
                }
                if s.name == c.source {
                    let ckey: Key = (
                        c.account_id.as_deref(),
                        c.account_index,
                        ck,
                        c.subject.as_deref(),
                    );
                    r.findings.partition_point(|f| key(&r, f) <= ckey)
                } else {
                    0
                }
            }
            _ => 0,
        };
        for (i, f) in r.findings.iter().enumerate().skip(begin) {
            if !filter.matches(&r, f) {
                continue;
            }
            matched += 1;
            if matched <= skip {
                continue;
            }
            if sel.rows.len() < limit {
                sel.rows.push((s.clone(), r.clone(), i));
            } else {
                more = true;
                break;
            }
        }
    }
    if more {
        if let Some((s, r, i)) = sel.rows.last() {
            let f = &r.findings[*i];
            sel.next_cursor = Some(encode_cursor(&Cursor {
                source: s.name.clone(),
                account_id: f.account.map(|a| r.accounts.id(a).to_string()),
                account_index: f.account,
                check: f.check.as_str().to_string(),
                subject: r.subject(f).map(str::to_string),
            }));
        }
    }
    Ok(sel)
}

pub async fn findings(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let state = s.app();
    let Query(q) = q.map_err(|e| bad(format!("invalid query: {}", e.body_text())))?;
    let filter = Filter::parse(&q, &state)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(o) => return Err(bad(format!("unknown format {o:?} (json or csv)"))),
    };
    // `limit=0` is a mistake, not a request for one finding (or none): say so. Above the
    // maximum the page is capped (documented), as before.
    let limit = match q.limit {
        Some(0) => return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}"))),
        Some(n) => n.min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    let sel = select(&state, &filter, Start::Cursor(q.cursor.clone()), limit)?;
    if csv {
        let mut resp = csv_response(&FindingRecord::COLUMNS, sel.records())?;
        let h = resp.headers_mut();
        if let Some(n) = &sel.next_cursor {
            if let Ok(v) = header::HeaderValue::try_from(n.as_str()) {
                h.insert("x-next-cursor", v);
            }
        }
        h.insert("x-total-count", header::HeaderValue::from(sel.total));
        return Ok(resp);
    }
    let rows: Vec<FindingRecord> = sel.records().collect();
    Ok(Json(json!({
        "findings": rows,
        "count": rows.len(),
        "total": sel.total,
        "accounts": sel.accounts,
        "unit": "findings",
        "next_cursor": sel.next_cursor,
    }))
    .into_response())
}

/// Finds an account by id, or else by login (case-insensitive).
pub fn find_account(r: &Report, id_or_login: &str) -> Option<u32> {
    r.find_id(id_or_login)
        .or_else(|| r.accounts.find_login(id_or_login))
}

/// The source and its last report, or a 404 that says which is missing.
pub fn source_report(
    state: &AppState,
    source: &str,
) -> Result<(Arc<SourceState>, Arc<Report>), ApiError> {
    let s = state
        .source(source)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no source named {source:?}")))?;
    let r = s.report.load_full().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("source {source:?} has not completed a poll yet"),
        )
    })?;
    Ok((s.clone(), r))
}

pub async fn account(
    State(st): State<Arc<ServerState>>,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let state = st.app();
    let (s, r) = source_report(&state, &source)?;
    let idx = find_account(&r, &id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no account {id:?} in source {source:?}"),
        )
    })?;
    let (Some(meta), Some(account)) = (r.meta(idx), r.account(idx)) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no account {id:?} in source {source:?}"),
        ));
    };
    let findings: Vec<FindingRecord> = r
        .findings
        .iter()
        .filter(|f| f.account == Some(idx))
        .map(|f| r.record(&s.name, s.provider, f))
        .collect();
    Ok(Json(json!({
        "source": s.name,
        "provider": s.provider,
        "account": account,
        "effective_account_type": meta.account_type.as_str(),
        "privileged": meta.privileged,
        "excluded": meta.excluded,
        "findings": findings,
    })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ComplianceQuery {
    pub framework: Option<String>,
    pub format: Option<String>,
}

pub async fn compliance(
    State(st): State<Arc<ServerState>>,
    q: Result<Query<ComplianceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let state = st.app();
    let Query(q) = q.map_err(|e| bad(format!("invalid query: {}", e.body_text())))?;
    let frameworks = super::compliance::frameworks_from(q.framework.as_deref())?;
    let report = super::compliance::evaluate(&state, &frameworks);
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(json!({ "frameworks": report })).into_response()),
        Some("csv") => super::compliance::csv(&report),
        Some(o) => Err(bad(format!("unknown format {o:?} (json or csv)"))),
    }
}
