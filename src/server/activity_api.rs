//! `/api/v1/activity`: the detections of the sign-in event streams (every source with
//! `activity = true`), newest first within each source, filtered by source, kind, severity,
//! account and whether still inside their window, keyset-paginated (a cursor names the last
//! detection of a page; detection ids only grow, so pages stay consistent across polls), as
//! JSON or CSV (through the shared CSV writer). Authenticated like `/api/v1/findings`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::{bad, csv_response, ApiError, DEFAULT_LIMIT, MAX_LIMIT};
use super::ServerState;
use crate::activity::detect::{Detection, Kind};
use crate::model::{format_ts, parse_ts, Severity};

#[derive(Debug, Default, Deserialize)]
pub struct ActivityQuery {
    pub source: Option<String>,
    pub kind: Option<String>,
    pub severity: Option<String>,
    /// `true`: only detections still inside their window; `false`: only closed ones.
    pub active: Option<bool>,
    /// An account id or login (case-insensitive).
    pub account: Option<String>,
    /// Only detections whose newest evidence is at or after this instant (RFC 3339).
    pub since: Option<String>,
    pub format: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// One row of the listing (JSON object and CSV row alike).
#[derive(Debug, Serialize)]
pub struct ActivityRecord {
    pub source: String,
    pub provider: String,
    pub id: u64,
    pub kind: &'static str,
    pub severity: &'static str,
    pub active: bool,
    pub account_id: Option<String>,
    pub login: Option<String>,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub detected_at: String,
    pub events: u64,
    pub escalated: bool,
    pub evidence: String,
}

impl ActivityRecord {
    pub const COLUMNS: [&'static str; 16] = [
        "source",
        "provider",
        "id",
        "kind",
        "severity",
        "active",
        "account_id",
        "login",
        "ip",
        "country",
        "first_seen",
        "last_seen",
        "detected_at",
        "events",
        "escalated",
        "evidence",
    ];
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    source: String,
    id: u64,
}

fn encode(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode(s: &str) -> Result<Cursor, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("invalid cursor"))
}

pub async fn activity(
    State(s): State<Arc<ServerState>>,
    q: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let state = s.app();
    let Query(q) = q.map_err(|e| bad(format!("invalid query: {}", e.body_text())))?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(o) => return Err(bad(format!("unknown format {o:?} (json or csv)"))),
    };
    if let Some(n) = &q.source {
        if !state.sources.iter().any(|s| &s.name == n) {
            return Err(ApiError(
                axum::http::StatusCode::NOT_FOUND,
                format!("no source named {n:?}"),
            ));
        }
    }
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(Kind::parse(k).ok_or_else(|| {
            bad(format!(
                "unknown kind {k:?} (one of {})",
                Kind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    let severity = match q.severity.as_deref() {
        None => None,
        Some(x) => Some(
            Severity::ALL
                .iter()
                .copied()
                .find(|s| s.as_str() == x)
                .ok_or_else(|| bad(format!("unknown severity {x:?}")))?,
        ),
    };
    let since = match q.since.as_deref() {
        None => None,
        Some(t) => {
            Some(parse_ts(t).map_err(|_| bad(format!("since: not an RFC 3339 time: {t:?}")))?)
        }
    };
    let cursor = q.cursor.as_deref().map(decode).transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);

    let mut sources: Vec<_> = state
        .sources
        .iter()
        .filter(|s| q.source.as_deref().is_none_or(|n| s.name == n))
        .collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rows: Vec<ActivityRecord> = Vec::new();
    let mut total = 0u64;
    let mut more = false;
    let mut streams = Vec::new();
    for src in sources {
        let Some(snap) = src.activity.snapshot.load_full() else {
            continue;
        };
        streams.push(json!({
            "source": src.name,
            "provider": src.provider,
            "up": snap.up,
            "evaluated_at": format_ts(snap.evaluated_at),
            "unavailable": snap.unavailable,
            "last_error": snap.last_error,
            "event_lag_seconds": snap.lag_seconds,
        }));
        let matches = |d: &Detection| {
            kind.is_none_or(|k| d.kind == k)
                && severity.is_none_or(|s| d.severity == s)
                && since.is_none_or(|t| d.last_seen >= t)
                && q.active
                    .is_none_or(|a| d.active(snap.evaluated_at, &snap.policy) == a)
                && q.account.as_deref().is_none_or(|a| {
                    d.account_id.as_deref() == Some(a)
                        || d.login
                            .as_deref()
                            .is_some_and(|l| l.eq_ignore_ascii_case(a))
                })
        };
        // Newest first.
        for d in snap.detections.iter().rev().filter(|d| matches(d)) {
            total += 1;
            if let Some(c) = &cursor {
                if src.name.as_str() < c.source.as_str() || (src.name == c.source && d.id >= c.id) {
                    continue;
                }
            }
            if rows.len() >= limit {
                more = true;
                continue;
            }
            rows.push(ActivityRecord {
                source: src.name.clone(),
                provider: src.provider.to_string(),
                id: d.id,
                kind: d.kind.as_str(),
                severity: d.severity.as_str(),
                active: d.active(snap.evaluated_at, &snap.policy),
                account_id: d.account_id.clone(),
                login: d.login.clone(),
                ip: d.ip.clone(),
                country: d.country.clone(),
                first_seen: format_ts(d.first_seen),
                last_seen: format_ts(d.last_seen),
                detected_at: format_ts(d.detected_at),
                events: d.events,
                escalated: d.escalated,
                evidence: d.evidence.clone(),
            });
        }
    }
    let next_cursor = more.then(|| rows.last()).flatten().map(|r| {
        encode(&Cursor {
            source: r.source.clone(),
            id: r.id,
        })
    });
    if csv {
        let mut resp = csv_response(&ActivityRecord::COLUMNS, &rows)?;
        let h = resp.headers_mut();
        if let Some(n) = &next_cursor {
            if let Ok(v) = header::HeaderValue::try_from(n.as_str()) {
                h.insert("x-next-cursor", v);
            }
        }
        h.insert("x-total-count", header::HeaderValue::from(total));
        return Ok(resp);
    }
    Ok(Json(json!({
        "detections": rows,
        "count": rows.len(),
        "total": total,
        "next_cursor": next_cursor,
        "streams": streams,
    }))
    .into_response())
}
