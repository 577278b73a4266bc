//! The `/api/v1` views: source state, summary counts, per-account findings (JSON or CSV,
//! filtered, keyset-paginated so pages stay consistent across polls), and one account.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checks::{CheckId, Severity};
use crate::model::{AccountType, DataKind};
use crate::report::{Report, StoredFinding};
use crate::state::{AppState, SourceState};

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

/// An error answer: a status and a short message, never internals.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

pub async fn sources(State(state): State<Arc<AppState>>) -> Json<Value> {
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

#[derive(Serialize, Default)]
struct Counts {
    accounts: u64,
    active_accounts: u64,
    excluded_accounts: u64,
    compliant_accounts: u64,
    compliant_ratio: f64,
    checks: BTreeMap<&'static str, u64>,
    severities: BTreeMap<&'static str, u64>,
}

fn counts(reports: &[&Report]) -> Counts {
    let mut c = Counts::default();
    for ch in CheckId::ALL {
        c.checks.insert(ch.as_str(), 0);
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
        for ch in CheckId::ALL {
            let n = t.findings[ch as usize];
            *c.checks.entry(ch.as_str()).or_default() += n;
            *c.severities.entry(ch.severity().as_str()).or_default() += n;
        }
    }
    c.compliant_ratio = if c.active_accounts == 0 {
        1.0
    } else {
        c.compliant_accounts as f64 / c.active_accounts as f64
    };
    c
}

pub async fn summary(State(state): State<Arc<AppState>>) -> Json<Value> {
    let reports: Vec<(Arc<SourceState>, Option<Arc<Report>>)> = state
        .sources
        .iter()
        .map(|s| (s.clone(), s.report.load_full()))
        .collect();
    let mut per = Vec::new();
    let mut all = Vec::new();
    for (s, r) in &reports {
        let st = s.status();
        match r {
            Some(r) => {
                all.push(r.as_ref());
                per.push(json!({"source": s.name, "provider": s.provider, "up": st.up, "counts": counts(&[r.as_ref()])}));
            }
            None => per.push(
                json!({"source": s.name, "provider": s.provider, "up": st.up, "counts": null}),
            ),
        }
    }
    Json(json!({"overall": counts(&all), "sources": per}))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    source: Option<String>,
    check: Option<String>,
    severity: Option<String>,
    account_type: Option<String>,
    excluded: Option<bool>,
    format: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
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

/// Sort key of a stored finding (the order `Report::findings` is in).
fn key<'a>(
    r: &'a Report,
    f: &'a StoredFinding,
) -> (Option<&'a str>, Option<u32>, CheckId, Option<&'a str>) {
    (
        f.account.map(|i| r.accounts[i as usize].id.as_str()),
        f.account,
        f.finding.check,
        f.finding.subject.as_deref(),
    )
}

#[derive(Serialize)]
struct FindingRow<'a> {
    source: &'a str,
    provider: &'a str,
    scope: &'static str,
    account_id: Option<&'a str>,
    login: Option<&'a str>,
    display_name: Option<&'a str>,
    account_type: Option<&'static str>,
    status: Option<&'static str>,
    privileged: Option<bool>,
    excluded: bool,
    check: &'static str,
    severity: &'static str,
    subject: Option<&'a str>,
    credential_type: Option<&'static str>,
    days: Option<i64>,
    detail: String,
}

/// The CSV columns, in the order of [`FindingRow`]'s fields (and of its JSON keys).
const CSV_HEADER: [&str; 16] = [
    "source",
    "provider",
    "scope",
    "account_id",
    "login",
    "display_name",
    "account_type",
    "status",
    "privileged",
    "excluded",
    "check",
    "severity",
    "subject",
    "credential_type",
    "days",
    "detail",
];

impl FindingRow<'_> {
    /// The row as CSV cells (absent values are empty cells), for [`super::csv_safe`].
    fn csv_cells(&self) -> [String; 16] {
        let opt = |s: Option<&str>| s.unwrap_or("").to_string();
        let flag = |b: Option<bool>| b.map(|b| b.to_string()).unwrap_or_default();
        [
            self.source.to_string(),
            self.provider.to_string(),
            self.scope.to_string(),
            opt(self.account_id),
            opt(self.login),
            opt(self.display_name),
            opt(self.account_type),
            opt(self.status),
            flag(self.privileged),
            self.excluded.to_string(),
            self.check.to_string(),
            self.severity.to_string(),
            opt(self.subject),
            opt(self.credential_type),
            self.days.map(|d| d.to_string()).unwrap_or_default(),
            self.detail.clone(),
        ]
    }
}

fn row<'a>(s: &'a SourceState, r: &'a Report, f: &'a StoredFinding) -> FindingRow<'a> {
    let acct = f
        .account
        .map(|i| (&r.accounts[i as usize], r.meta[i as usize]));
    FindingRow {
        source: &s.name,
        provider: s.provider,
        scope: if acct.is_some() { "account" } else { "tenant" },
        account_id: acct.map(|(a, _)| a.id.as_str()),
        login: acct.map(|(a, _)| a.login.as_str()),
        display_name: acct.and_then(|(a, _)| a.display_name.as_deref()),
        account_type: acct.map(|(_, m)| m.account_type.as_str()),
        status: acct.map(|(a, _)| a.status.as_str()),
        privileged: acct.map(|(_, m)| m.privileged),
        excluded: acct.is_some_and(|(_, m)| m.excluded),
        check: f.finding.check.as_str(),
        severity: f.finding.check.severity().as_str(),
        subject: f.finding.subject.as_deref(),
        credential_type: f.finding.credential_type.map(|c| c.as_str()),
        days: f.finding.days,
        detail: f.finding.describe(),
    }
}

pub async fn findings(
    State(state): State<Arc<AppState>>,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| bad(format!("invalid query: {}", e.body_text())))?;
    let check = q
        .check
        .as_deref()
        .map(|c| CheckId::parse(c).ok_or_else(|| bad(format!("unknown check {c:?}"))))
        .transpose()?;
    let severity = q
        .severity
        .as_deref()
        .map(|c| Severity::parse(c).ok_or_else(|| bad(format!("unknown severity {c:?}"))))
        .transpose()?;
    let account_type = match q.account_type.as_deref() {
        None => None,
        Some("human") => Some(AccountType::Human),
        Some("service") => Some(AccountType::Service),
        Some(o) => {
            return Err(bad(format!(
                "unknown account_type {o:?} (human or service)"
            )))
        }
    };
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
    if let Some(name) = &q.source {
        if state.source(name).is_none() {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no source named {name:?}"),
            ));
        }
    }
    let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;

    let mut sources: Vec<&Arc<SourceState>> = state
        .sources
        .iter()
        .filter(|s| q.source.as_deref().is_none_or(|n| s.name == n))
        .collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));

    let mut reports = Vec::new();
    for s in sources {
        if let Some(c) = &cursor {
            if s.name < c.source {
                continue;
            }
        }
        if let Some(r) = s.report.load_full() {
            reports.push((s, r));
        }
    }

    let mut rows = Vec::new();
    let mut next = None;
    'outer: for (s, r) in &reports {
        let start = match &cursor {
            Some(c) if c.source == s.name => {
                let ck = CheckId::parse(&c.check).ok_or_else(|| bad("invalid cursor"))?;
                let ckey = (
                    c.account_id.as_deref(),
                    c.account_index,
                    ck,
                    c.subject.as_deref(),
                );
                r.findings.partition_point(|f| key(r, f) <= ckey)
            }
            _ => 0,
        };
        for f in &r.findings[start..] {
            if check.is_some_and(|c| f.finding.check != c)
                || severity.is_some_and(|sv| f.finding.check.severity() != sv)
            {
                continue;
            }
            let meta = f.account.map(|i| r.meta[i as usize]);
            if let Some(at) = account_type {
                if meta.is_none_or(|m| m.account_type != at) {
                    continue;
                }
            }
            if let Some(ex) = q.excluded {
                if meta.is_some_and(|m| m.excluded) != ex {
                    continue;
                }
            }
            if rows.len() == limit {
                let (last, index): &(FindingRow, Option<u32>) = rows.last().expect("limit >= 1");
                next = Some(Cursor {
                    source: last.source.to_string(),
                    account_id: last.account_id.map(str::to_string),
                    account_index: *index,
                    check: last.check.to_string(),
                    subject: last.subject.map(str::to_string),
                });
                break 'outer;
            }
            rows.push((row(s, r, f), f.account));
        }
    }
    let next = next.map(|c| encode_cursor(&c));
    let rows: Vec<FindingRow> = rows.into_iter().map(|(r, _)| r).collect();

    if csv {
        let mut w = super::csv_safe::Writer::new(Vec::new());
        let internal = |e: csv::Error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        w.write_record(CSV_HEADER).map_err(internal)?;
        for r in &rows {
            let cells = r.csv_cells();
            w.write_record(cells.iter().map(String::as_str))
                .map_err(internal)?;
        }
        let body = w
            .into_inner()
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let mut resp = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
        if let Some(n) = &next {
            if let Ok(v) = header::HeaderValue::try_from(n.as_str()) {
                resp.headers_mut().insert("x-next-cursor", v);
            }
        }
        return Ok(resp);
    }
    Ok(Json(json!({"findings": rows, "count": rows.len(), "next_cursor": next})).into_response())
}

pub async fn account(
    State(state): State<Arc<AppState>>,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let s = state
        .source(&source)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no source named {source:?}")))?;
    let r = s.report.load_full().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("source {source:?} has not completed a poll yet"),
        )
    })?;
    let idx = *r.index.get(&id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no account {id:?} in source {source:?}"),
        )
    })?;
    let meta = r.meta[idx as usize];
    let findings: Vec<FindingRow> = r
        .findings
        .iter()
        .filter(|f| f.account == Some(idx))
        .map(|f| row(s, &r, f))
        .collect();
    Ok(Json(json!({
        "source": s.name,
        "provider": s.provider,
        "account": r.accounts[idx as usize],
        "effective_account_type": meta.account_type.as_str(),
        "privileged": meta.privileged,
        "excluded": meta.excluded,
        "findings": findings,
    })))
}
