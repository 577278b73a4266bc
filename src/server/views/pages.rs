//! The pages of the findings view: the posture overview (`/`), one source
//! (`/source?name=…`), the filtered, paged findings table (`/findings`), one account
//! (`/account?source=…&id=…` or `&login=…`) and the compliance report (`/compliance`).
//! Counts come from the same functions as `/api/v1/summary` and `/api/v1/findings`.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{esc, href, page, severity, when};
use crate::checks::catalog::{self, Framework};
use crate::checks::{CheckId, Severity};
use crate::model::{DataKind, Known};
use crate::report::Report;
use crate::server::api::{self, counts, select, Filter, FindingsQuery, Start};
use crate::server::{compliance, ServerState};
use crate::state::SourceState;

/// Rows per page of the findings table.
pub const PAGE_SIZE: usize = 50;

fn now() -> crate::model::Timestamp {
    time::OffsetDateTime::now_utc()
}

fn error_page(status: StatusCode, msg: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"./\">Back to the overview</a></p>",
        status.as_u16(),
        esc(msg)
    );
    (status, Html(page("Error", &body))).into_response()
}

fn api_error(e: api::ApiError) -> Response {
    error_page(e.0, &e.1)
}

/// The filter pairs every "counted" link carries: what `/metrics` counts.
fn counted(mut pairs: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    pairs.push(("excluded", "false".into()));
    pairs.push(("excepted", "false".into()));
    pairs
}

fn state_badge(state: &str) -> String {
    format!("<span class=\"state-{0}\">{0}</span>", esc(state))
}

/// The per-source block of the overview (and the head of the source page).
fn source_card(s: &SourceState, r: Option<&Report>, out: &mut String) {
    let st = s.status();
    let now = now();
    let _ = write!(
        out,
        "<section class=\"card source\" data-source=\"{n}\"><h2><a href=\"{link}\">{n}</a> \
<span class=\"muted\">({p})</span> {badge}</h2>\
<p>Last poll {last}, last success {succ}; next poll {next}. Interval {iv}.</p>",
        n = esc(&s.name),
        link = href("source", &[("name", s.name.clone())]),
        p = esc(s.provider),
        badge = state_badge(st.state()),
        last = when(st.last_attempt, now, "not yet"),
        succ = when(st.last_success, now, "never"),
        next = when(st.next_poll, now, "not scheduled"),
        iv = esc(&humantime::format_duration(s.interval).to_string()),
    );
    if let (Some(e), false) = (&st.last_error, st.up) {
        let _ = write!(out, "<p class=\"error\">Last error: {}</p>", esc(e));
    }
    let Some(r) = r else {
        out.push_str("<p class=\"empty\">No completed poll yet: nothing to show.</p></section>");
        return;
    };
    let c = counts(&[r]);
    let _ = write!(
        out,
        "<p><b>{}</b> accounts, <b>{}</b> active and judged, {} excluded; \
<b>{:.1} %</b> compliant (accounts with no finding).",
        c.accounts,
        c.active_accounts,
        c.excluded_accounts,
        c.compliant_ratio * 100.0
    );
    if r.history.tracked {
        let _ = write!(
            out,
            " Since the previous poll: <a href=\"{}\">{} new</a>, {} resolved findings.",
            href(
                "findings",
                &counted(vec![("source", s.name.clone()), ("new", "true".into())])
            ),
            c.new_findings,
            c.resolved_findings
        );
    }
    out.push_str("</p>");
    // Data availability.
    out.push_str("<p>Data: ");
    for d in DataKind::ALL {
        match r.availability.missing.get(&d) {
            None => {
                let _ = write!(out, "<span class=\"tag\">{} ✓</span>", d.as_str());
            }
            Some(why) => {
                let _ = write!(
                    out,
                    "<span class=\"tag error\" title=\"{w}\">{} unavailable: {w}</span>",
                    d.as_str(),
                    w = esc(why)
                );
            }
        }
    }
    out.push_str("</p>");
    // By severity.
    out.push_str("<p>By severity (accounts per check, summed): ");
    for sv in Severity::ALL {
        let n = c.severities.get(sv.as_str()).copied().unwrap_or(0);
        let _ = write!(
            out,
            "<a href=\"{}\">{} {}</a> &nbsp;",
            href(
                "findings",
                &counted(vec![
                    ("source", s.name.clone()),
                    ("severity", sv.as_str().into())
                ])
            ),
            severity(sv.as_str()),
            n
        );
    }
    out.push_str("</p>");
    // By check: the checks with findings, most accounts first.
    let mut rows: Vec<(CheckId, u64)> = CheckId::ALL
        .iter()
        .map(|c| (*c, r.tally.findings[*c as usize]))
        .filter(|(_, n)| *n > 0)
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if rows.is_empty() {
        out.push_str("<p>No counted findings: every judged account passes every check.</p>");
    } else {
        out.push_str("<table class=\"checks\"><tr><th>check</th><th>severity</th><th>accounts</th><th>findings</th></tr>");
        for (ck, n) in rows {
            let _ = write!(
                out,
                "<tr><td><a href=\"{h}\">{t}</a> <span class=\"muted\">{id}</span></td><td>{sv}</td>\
<td class=\"n\"><a href=\"{h}\">{n}</a></td><td class=\"n\">{f}</td></tr>",
                h = href(
                    "findings",
                    &counted(vec![
                        ("source", s.name.clone()),
                        ("check", ck.as_str().into())
                    ])
                ),
                t = esc(catalog::title(ck)),
                id = ck.as_str(),
                sv = severity(r.policy.severity(ck).as_str()),
                f = r.tally.finding_rows[ck as usize],
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

fn compliance_summary(state: &crate::state::AppState, out: &mut String) {
    let report = compliance::evaluate(state, &Framework::ALL);
    out.push_str("<section class=\"card\"><h2>Compliance</h2><table><tr><th>framework</th><th>controls passing</th><th>failing</th><th>not evaluated</th></tr>");
    for f in &report {
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"n pass\">{}</td><td class=\"n fail\">{}</td><td class=\"n\">{}</td></tr>",
            href("compliance", &[("framework", f.id.to_string())]),
            esc(f.title),
            f.passed,
            f.failed,
            f.not_evaluated
        );
    }
    out.push_str("</table></section>");
}

pub async fn overview(State(st): State<Arc<ServerState>>) -> Html<String> {
    let state = st.app();
    let mut body = String::from(
        "<h1>Identity posture</h1><p class=\"muted\">From each source's last background poll. \
Counts are of accounts (an account with two stale keys counts once); the findings table lists \
findings (one per credential or role). The same numbers are on <a href=\"metrics\">/metrics</a> \
and <a href=\"api/v1/summary\">/api/v1/summary</a>.</p>",
    );
    let reports: Vec<_> = state.sources.iter().map(|s| s.report.load_full()).collect();
    let all: Vec<&Report> = reports.iter().flatten().map(|r| r.as_ref()).collect();
    if state.sources.len() > 1 && !all.is_empty() {
        let c = counts(&all);
        let _ = write!(
            body,
            "<p>All sources: <b>{}</b> active accounts judged, <b>{:.1} %</b> compliant, \
<a href=\"{}\">{} accounts with a critical finding</a>.</p>",
            c.active_accounts,
            c.compliant_ratio * 100.0,
            href("findings", &counted(vec![("severity", "critical".into())])),
            c.severities.get("critical").copied().unwrap_or(0)
        );
    }
    body.push_str("<div class=\"grid\"><div>");
    for (s, r) in state.sources.iter().zip(&reports) {
        source_card(s, r.as_deref(), &mut body);
    }
    body.push_str("</div><div>");
    compliance_summary(&state, &mut body);
    body.push_str("</div></div>");
    Html(page("Overview", &body))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceQuery {
    pub name: String,
}

pub async fn source(
    State(st): State<Arc<ServerState>>,
    q: Result<Query<SourceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let state = st.app();
    let name = match q {
        Ok(Query(q)) => q.name,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let Some(s) = state.source(&name) else {
        return error_page(StatusCode::NOT_FOUND, &format!("no source named {name:?}"));
    };
    let r = s.report.load_full();
    let mut body = format!(
        "<p><a class=\"back\" href=\"./\">← Overview</a></p><h1>Source {}</h1>",
        esc(&s.name)
    );
    source_card(s, r.as_deref(), &mut body);
    if let Some(r) = &r {
        body.push_str("<h2>Every check</h2><table class=\"all-checks\"><tr><th>check</th><th>severity</th><th>enabled</th><th>accounts</th><th>findings</th><th>excepted accounts</th><th>controls</th></tr>");
        for ck in CheckId::ALL {
            let set = r.policy.check(ck);
            let controls: Vec<String> = catalog::controls(ck)
                .iter()
                .map(|c| format!("{} {}", c.framework.id(), c.id))
                .collect();
            let _ = write!(
                body,
                "<tr><td><a href=\"{h}\">{t}</a> <span class=\"muted\">{id}</span></td><td>{sv}</td><td>{en}</td>\
<td class=\"n\">{a}</td><td class=\"n\">{f}</td><td class=\"n\"><a href=\"{hx}\">{x}</a></td><td>{ctl}</td></tr>",
                h = href(
                    "findings",
                    &counted(vec![("source", s.name.clone()), ("check", ck.as_str().into())])
                ),
                hx = href(
                    "findings",
                    &[
                        ("source", s.name.clone()),
                        ("check", ck.as_str().into()),
                        ("excepted", "true".into())
                    ]
                ),
                t = esc(catalog::title(ck)),
                id = ck.as_str(),
                sv = severity(set.severity.as_str()),
                en = if set.enabled { "yes" } else { "<b>disabled</b>" },
                a = r.tally.findings[ck as usize],
                f = r.tally.finding_rows[ck as usize],
                x = r.tally.excepted[ck as usize],
                ctl = esc(&controls.join(", ")),
            );
        }
        body.push_str("</table>");
        body.push_str("<h2>Exceptions</h2>");
        if r.policy.exceptions.is_empty() {
            body.push_str(
                "<p class=\"muted\">No exceptions configured ([[policy.exceptions]]).</p>",
            );
        } else {
            body.push_str("<table class=\"exceptions\"><tr><th>check</th><th>account</th><th>reason</th><th>owner</th><th>expires</th></tr>");
            let now = now();
            for e in &r.policy.exceptions {
                let expired = e.expires <= now;
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{} ({})</td></tr>",
                    e.check.as_str(),
                    esc(&e.account),
                    esc(&e.reason),
                    esc(&e.owner),
                    if expired { " class=\"error\"" } else { "" },
                    esc(&super::ts(e.expires)),
                    if expired {
                        "expired: findings count again".to_string()
                    } else {
                        esc(&super::relative(e.expires, now))
                    }
                );
            }
            body.push_str("</table>");
        }
        if r.history.tracked {
            body.push_str("<h2>Resolved since the previous poll</h2>");
            if r.history.resolved.is_empty() {
                body.push_str("<p class=\"muted\">Nothing was resolved in the last poll.</p>");
            } else {
                body.push_str("<table class=\"resolved\"><tr><th>account</th><th>check</th><th>subject</th><th>first seen</th></tr>");
                let now = now();
                for f in &r.history.resolved {
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(f
                            .login
                            .as_deref()
                            .or(f.account_id.as_deref())
                            .unwrap_or("(tenant)")),
                        esc(&f.check),
                        esc(f.subject.as_deref().unwrap_or("")),
                        when(f.first_seen, now, "unknown"),
                    );
                }
                body.push_str("</table>");
            }
        }
    }
    Html(page(&format!("Source {}", s.name), &body)).into_response()
}

pub async fn findings(
    State(st): State<Arc<ServerState>>,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let state = st.app();
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let filter = match Filter::parse(&q, &state) {
        Ok(f) => f,
        Err(e) => return api_error(e),
    };
    let page_no = q.page.unwrap_or(1).max(1);
    let sel = match select(
        &state,
        &filter,
        Start::Offset((page_no - 1) * PAGE_SIZE),
        PAGE_SIZE,
    ) {
        Ok(s) => s,
        Err(e) => return api_error(e),
    };
    let mut body = String::from("<h1>Findings</h1>");
    filter_form(&state, &filter, &mut body);
    let pairs = filter.pairs();
    let export = |fmt: &str| {
        let mut p = pairs.clone();
        p.push(("format", fmt.to_string()));
        p.push(("limit", api::MAX_LIMIT.to_string()));
        href("api/v1/findings", &p)
    };
    let _ = write!(
        body,
        "<p class=\"summary\"><b class=\"total\">{}</b> findings on <b>{}</b> accounts match. \
Export the same filter: <a href=\"{}\">CSV</a> · <a href=\"{}\">JSON</a> (up to {} rows; the API pages on).</p>",
        sel.total,
        sel.accounts,
        export("csv"),
        export("json"),
        api::MAX_LIMIT
    );
    if sel.rows.is_empty() {
        body.push_str("<p class=\"empty\">No findings match this filter.</p>");
    } else {
        body.push_str("<table class=\"findings\"><tr><th>account</th><th>source</th><th>check</th><th>severity</th><th>what</th><th>first seen</th><th></th></tr>");
        let now = now();
        for (s, r, i) in &sel.rows {
            let f = &r.findings[*i];
            let rec = r.record(&s.name, s.provider, f);
            let who = match (rec.account_id, rec.login) {
                (Some(id), Some(login)) => format!(
                    "<a class=\"account\" href=\"{}\">{}</a>{}",
                    href(
                        "account",
                        &[("source", s.name.clone()), ("id", id.to_string())]
                    ),
                    esc(login),
                    rec.display_name
                        .map(|d| format!("<br><span class=\"muted\">{}</span>", esc(d)))
                        .unwrap_or_default()
                ),
                _ => "<i>tenant</i>".into(),
            };
            let mut tags = String::new();
            if rec.new {
                tags.push_str("<span class=\"tag\">new</span>");
            }
            if rec.privileged == Some(true) {
                tags.push_str("<span class=\"tag\">privileged</span>");
            }
            if rec.excluded {
                tags.push_str("<span class=\"tag\">excluded</span>");
            }
            if let Some(reason) = rec.exception_reason {
                let _ = write!(
                    tags,
                    "<span class=\"tag\" title=\"owner {} until {}\">excepted: {}</span>",
                    esc(rec.exception_owner.unwrap_or("")),
                    esc(rec.exception_expires.as_deref().unwrap_or("")),
                    esc(reason)
                );
            }
            let mut check_pairs = pairs.clone();
            check_pairs.retain(|(k, _)| *k != "check");
            check_pairs.push(("check", rec.check.to_string()));
            let _ = write!(
                body,
                "<tr><td>{who}</td><td>{src}</td><td><a href=\"{ch}\">{check}</a></td><td>{sv}</td><td>{detail}</td><td>{first}</td><td>{tags}</td></tr>",
                src = esc(&s.name),
                ch = href("findings", &check_pairs),
                check = esc(rec.check),
                sv = severity(rec.severity),
                detail = esc(&rec.detail),
                first = when(r.first_seen(f), now, "–"),
            );
        }
        body.push_str("</table>");
    }
    // Paging.
    let pages = (sel.total as usize).div_ceil(PAGE_SIZE).max(1);
    let link = |n: usize| {
        let mut p = pairs.clone();
        p.push(("page", n.to_string()));
        href("findings", &p)
    };
    let _ = write!(body, "<nav class=\"pages\">Page {page_no} of {pages} ");
    if page_no > 1 {
        let _ = write!(
            body,
            "<a rel=\"prev\" href=\"{}\">← previous</a>",
            link(page_no - 1)
        );
    }
    if page_no < pages {
        let _ = write!(
            body,
            "<a rel=\"next\" href=\"{}\">next →</a>",
            link(page_no + 1)
        );
    }
    body.push_str("</nav>");
    Html(page("Findings", &body)).into_response()
}

fn filter_form(state: &crate::state::AppState, f: &Filter, out: &mut String) {
    let opt = |value: &str, label: &str, selected: bool| {
        format!(
            "<option value=\"{}\"{}>{}</option>",
            esc(value),
            if selected { " selected" } else { "" },
            esc(label)
        )
    };
    out.push_str("<form class=\"filter\" method=\"get\" action=\"findings\">");
    let mut sources = opt("", "any", f.source.is_none());
    for s in &state.sources {
        sources.push_str(&opt(&s.name, &s.name, f.source.as_deref() == Some(&s.name)));
    }
    let _ = write!(
        out,
        "<label>source<select name=\"source\">{sources}</select></label>"
    );
    let mut checks = opt("", "any", f.check.is_none());
    for c in CheckId::ALL {
        checks.push_str(&opt(c.as_str(), c.as_str(), f.check == Some(c)));
    }
    let _ = write!(
        out,
        "<label>check<select name=\"check\">{checks}</select></label>"
    );
    let mut sevs = opt("", "any", f.severity.is_none());
    for s in Severity::ALL {
        sevs.push_str(&opt(s.as_str(), s.as_str(), f.severity == Some(s)));
    }
    let _ = write!(
        out,
        "<label>severity<select name=\"severity\">{sevs}</select></label>"
    );
    let types = format!(
        "{}{}{}",
        opt("", "any", f.account_type.is_none()),
        opt(
            "human",
            "human",
            f.account_type == Some(crate::model::AccountType::Human)
        ),
        opt(
            "service",
            "service",
            f.account_type == Some(crate::model::AccountType::Service)
        )
    );
    let _ = write!(
        out,
        "<label>account type<select name=\"account_type\">{types}</select></label>"
    );
    for (name, v) in [
        ("privileged", f.privileged),
        ("excluded", f.excluded),
        ("excepted", f.excepted),
        ("new", f.new),
    ] {
        let _ = write!(
            out,
            "<label>{name}<select name=\"{name}\">{}{}{}</select></label>",
            opt("", "any", v.is_none()),
            opt("true", "yes", v == Some(true)),
            opt("false", "no", v == Some(false))
        );
    }
    let _ = write!(
        out,
        "<label>login contains<input type=\"search\" name=\"q\" value=\"{}\"></label>\
<button type=\"submit\">Filter</button></form>",
        esc(f.q.as_deref().unwrap_or(""))
    );
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    pub source: Option<String>,
    pub id: Option<String>,
    pub login: Option<String>,
}

pub async fn account(
    State(st): State<Arc<ServerState>>,
    q: Result<Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let state = st.app();
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let Some(source) = q.source.as_deref() else {
        return error_page(StatusCode::BAD_REQUEST, "source is required");
    };
    let (s, r) = match api::source_report(&state, source) {
        Ok(x) => x,
        Err(e) => return api_error(e),
    };
    let wanted = match (q.id.as_deref(), q.login.as_deref()) {
        (Some(id), _) => id,
        (None, Some(login)) => login,
        (None, None) => return error_page(StatusCode::BAD_REQUEST, "id or login is required"),
    };
    let Some(idx) = api::find_account(&r, wanted) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("no account {wanted:?} in source {source:?}"),
        );
    };
    let Some(a) = r.account(idx) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("no account {wanted:?} in source {source:?}"),
        );
    };
    let a = &a;
    let m = r.meta[idx as usize];
    let now = now();
    let mut body = format!(
        "<p><a class=\"back\" href=\"{}\">← Findings of {}</a> · <a href=\"./\">Overview</a></p>\
<h1>{}</h1>",
        href("findings", &counted(vec![("source", s.name.clone())])),
        esc(&s.name),
        esc(&a.login)
    );
    let known_ts = |k: &Known<crate::model::Timestamp>, never: &str| match k {
        Known::Unknown => "<span class=\"muted\">unknown</span>".to_string(),
        Known::Never => esc(never),
        Known::At(t) => format!(
            "{} ({})",
            esc(&super::ts(*t)),
            esc(&super::relative(*t, now))
        ),
    };
    body.push_str("<h2>Attributes</h2><table class=\"attributes\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(body, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    };
    row("id", esc(&a.id));
    row("login", esc(&a.login));
    row("display name", esc(a.display_name.as_deref().unwrap_or("")));
    row(
        "account type",
        format!(
            "{}{}",
            m.account_type.as_str(),
            if m.account_type != a.account_type {
                " (service_account_patterns)"
            } else {
                ""
            }
        ),
    );
    row("status", a.status.as_str().into());
    row("privileged", if m.privileged { "yes" } else { "no" }.into());
    row(
        "excluded",
        if m.excluded {
            "yes (policy.exclude_accounts: listed, never counted)"
        } else {
            "no"
        }
        .into(),
    );
    row(
        "created",
        a.created
            .map(|t| esc(&super::ts(t)))
            .unwrap_or_else(|| "<span class=\"muted\">unknown</span>".into()),
    );
    row("last login", known_ts(&a.last_login, "never"));
    row(
        "terminated",
        a.terminated.map(|t| esc(&super::ts(t))).unwrap_or_default(),
    );
    if a.groups_unknown {
        row("groups", "unknown (could not be read)".to_string());
    } else {
        row("groups", esc(&a.groups.join(", ")));
    }
    for (k, v) in &a.attributes {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        row(k, esc(&v));
    }
    body.push_str("</table>");

    body.push_str("<h2>MFA factors</h2>");
    match &a.mfa {
        None => body.push_str("<p class=\"muted\">The source cannot read this account's MFA.</p>"),
        Some(mfa) => {
            if mfa.factors.is_empty() {
                body.push_str("<p>No factor enrolled.</p>");
            } else {
                body.push_str("<table class=\"factors\"><tr><th>type</th><th>status</th></tr>");
                for f in &mfa.factors {
                    let st = serde_json::to_value(f.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{}</td></tr>",
                        f.factor_type.as_str(),
                        esc(&st)
                    );
                }
                body.push_str("</table>");
            }
            if let Some(e) = mfa.enforced {
                let _ = write!(
                    body,
                    "<p>MFA enforced by the provider: {}</p>",
                    if e { "yes" } else { "no" }
                );
            }
        }
    }
    body.push_str("<h2>Credentials</h2>");
    match &a.credentials {
        None => body
            .push_str("<p class=\"muted\">The source cannot read this account's credentials.</p>"),
        Some(c) if c.is_empty() => body.push_str("<p>None.</p>"),
        Some(creds) => {
            body.push_str("<table class=\"credentials\"><tr><th>type</th><th>id</th><th>last rotated</th><th>expires</th><th>last used</th></tr>");
            for c in creds {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    c.credential_type.as_str(),
                    esc(&c.id),
                    known_ts(&c.last_rotated, "never"),
                    known_ts(&c.expires, "never"),
                    known_ts(&c.last_used, "never"),
                );
            }
            body.push_str("</table>");
        }
    }
    body.push_str("<h2>Roles</h2>");
    match &a.roles {
        None => {
            body.push_str("<p class=\"muted\">The source cannot read this account's roles.</p>")
        }
        Some(r) if r.is_empty() => body.push_str("<p>No administrative role.</p>"),
        Some(roles) => {
            body.push_str("<table class=\"roles\"><tr><th>role</th><th>last used</th></tr>");
            for ro in roles {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    esc(&ro.name),
                    known_ts(&ro.last_used, "never")
                );
            }
            body.push_str("</table>");
        }
    }
    body.push_str("<h2>Findings</h2>");
    let findings: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.account == Some(idx))
        .collect();
    if findings.is_empty() {
        body.push_str("<p>No findings: this account passes every check.</p>");
    } else {
        body.push_str("<table class=\"account-findings\"><tr><th>check</th><th>severity</th><th>what</th><th>first seen</th><th>remediation</th></tr>");
        for f in findings {
            let rec = r.record(&s.name, s.provider, f);
            let exc = rec
                .exception_reason
                .map(|reason| {
                    format!(
                        "<br><span class=\"tag\">excepted until {}: {} ({})</span>",
                        esc(rec.exception_expires.as_deref().unwrap_or("")),
                        esc(reason),
                        esc(rec.exception_owner.unwrap_or(""))
                    )
                })
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}<br><span class=\"muted\">{}</span></td><td>{}</td><td>{}{}</td><td>{}</td><td class=\"remediation\">{}</td></tr>",
                esc(catalog::title(f.check)),
                rec.check,
                severity(rec.severity),
                esc(&rec.detail),
                exc,
                when(r.first_seen(f), now, "–"),
                esc(rec.remediation),
            );
        }
        body.push_str("</table>");
    }
    Html(page(&a.login, &body)).into_response()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ComplianceViewQuery {
    pub framework: Option<String>,
    pub format: Option<String>,
}

pub async fn compliance_page(
    State(st): State<Arc<ServerState>>,
    q: Result<Query<ComplianceViewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let state = st.app();
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let frameworks = match compliance::frameworks_from(q.framework.as_deref()) {
        Ok(f) => f,
        Err(e) => return api_error(e),
    };
    let report = compliance::evaluate(&state, &frameworks);
    match q.format.as_deref() {
        None | Some("html") => {}
        Some("csv") => return compliance::csv(&report).unwrap_or_else(api_error),
        Some(o) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("unknown format {o:?} (html or csv)"),
            )
        }
    }
    let mut body = String::from("<h1>Compliance</h1><p class=\"muted\">Each control the checks give evidence for, from every source's last poll. A control fails when any counted finding of its checks is open; accounts are counted once per source.</p><p>");
    for f in Framework::ALL {
        let _ = write!(
            body,
            "<a href=\"{}\">{}</a> · ",
            href("compliance", &[("framework", f.id().to_string())]),
            esc(f.title())
        );
    }
    body.push_str("<a href=\"compliance\">all</a></p>");
    for f in &report {
        let csv = href(
            "compliance",
            &[("framework", f.id.to_string()), ("format", "csv".into())],
        );
        let _ = write!(
            body,
            "<section class=\"card framework\"><h2>{}</h2><p>{} passing, {} failing, {} not evaluated. <a href=\"{csv}\">CSV</a></p>\
<table><tr><th>control</th><th>title</th><th>status</th><th>accounts failing</th><th>checks</th></tr>",
            esc(f.title),
            f.passed,
            f.failed,
            f.not_evaluated
        );
        for c in &f.controls {
            let checks: Vec<String> = c
                .checks
                .iter()
                .map(|ck| {
                    format!(
                        "<a href=\"{}\">{}</a>",
                        href("findings", &counted(vec![("check", ck.to_string())])),
                        esc(ck)
                    )
                })
                .collect();
            let status_class = match c.status {
                "pass" => "pass",
                "fail" => "fail",
                _ => "muted",
            };
            let tenant = if c.tenant_findings > 0 {
                format!(" + {} tenant", c.tenant_findings)
            } else {
                String::new()
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"{status_class}\">{}</td><td class=\"n\">{}{tenant}</td><td>{}</td></tr>",
                esc(c.id),
                esc(c.title),
                esc(c.status),
                c.accounts_failing,
                checks.join(", ")
            );
        }
        body.push_str("</table></section>");
    }
    Html(page("Compliance", &body)).into_response()
}
