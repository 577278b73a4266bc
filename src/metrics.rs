//! Prometheus exposition (README "Metrics"). Built off the serving path: after every poll the whole
//! body is encoded once from the sources' last reports and stored; a scrape serves those
//! bytes plus the cheap `process_*` metrics. Every label combination that can occur is
//! emitted (zero-filled) once a source has a report, so alerts never see gaps.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};

use crate::checks::{CheckId, Severity};
use crate::model::{AccountType, CredentialType, DataKind, Status};
use crate::report::{Report, DORMANT_REASONS, FUTURE_FIELDS, OVERPRIV_REASONS};
use crate::state::{AppState, SourceState, BUILD};

const POLL_NOTE: &str = " Value from the last background poll, not computed at scrape time.";
const PRIV: [&str; 2] = ["false", "true"];

/// A family being assembled: a gauge (or counter) with fixed label names.
struct Family {
    name: &'static str,
    help: String,
    labels: Vec<&'static str>,
    counter: bool,
    samples: Vec<(Vec<String>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &str, labels: &[&'static str]) -> Family {
        Family {
            name,
            help: format!("{}.{POLL_NOTE}", help.trim_end_matches('.')),
            labels: labels.to_vec(),
            counter: false,
            samples: Vec::new(),
        }
    }
    fn counter(mut self) -> Family {
        self.counter = true;
        self
    }
    fn add(&mut self, values: Vec<String>, v: f64) {
        self.samples.push((values, v));
    }
}

/// All families, in a stable order, keyed by name.
struct Families(BTreeMap<&'static str, Family>);

impl Families {
    fn get(&mut self, name: &'static str) -> &mut Family {
        self.0.get_mut(name).expect("family declared")
    }
    fn declare(&mut self, f: Family) {
        self.0.insert(f.name, f);
    }
}

fn families() -> Families {
    let mut f = Families(BTreeMap::new());
    let sp = ["source", "provider"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        sp.iter().chain(extra.iter()).copied().collect()
    };
    let g = |n, h, l: &[&'static str]| Family::new(n, h, &with(l));
    f.declare(g(
        "identity_posture_accounts",
        "Accounts by account type and status (all statuses, excluded accounts included)",
        &["account_type", "status"],
    ));
    f.declare(g("identity_posture_active_accounts", "Active (active or locked), non-excluded accounts the checks judge, by account type: the denominator for coverage ratios", &["account_type"]));
    f.declare(g(
        "identity_posture_accounts_without_mfa",
        "Active, non-excluded accounts with no active MFA factor",
        &["account_type", "privileged"],
    ));
    f.declare(g("identity_posture_accounts_weak_mfa", "Active, non-excluded accounts whose active MFA factors are all weak (policy.weak_mfa_factors)", &["account_type", "privileged"]));
    f.declare(g("identity_posture_accounts_phishing_resistant_mfa", "Active, non-excluded accounts with at least one phishing-resistant factor (webauthn, smart_card)", &["account_type", "privileged"]));
    f.declare(g("identity_posture_accounts_mfa_unknown", "Active, non-excluded accounts whose MFA state the source could not read (not counted as with or without MFA; subtract from active accounts for coverage ratios)", &["account_type", "privileged"]));
    f.declare(g("identity_posture_dormant_accounts", "Dormant accounts by reason: inactive (no recent login), never_logged_in, terminated (leave date passed, account still exists)", &["account_type", "privileged", "reason"]));
    f.declare(g("identity_posture_unrotated_credentials", "Accounts holding a credential of this type older than its maximum age (each account counted once per type)", &["account_type", "credential_type"]));
    f.declare(g(
        "identity_posture_expired_credentials",
        "Accounts holding an expired credential of this type that is still present",
        &["account_type", "credential_type"],
    ));
    f.declare(g("identity_posture_expiring_credentials", "Accounts holding a credential of this type that expires within policy.expiring_within_days", &["account_type", "credential_type"]));
    f.declare(g(
        "identity_posture_overprivileged_accounts",
        "Over-privileged accounts by reason",
        &["account_type", "reason"],
    ));
    f.declare(g("identity_posture_privileged_accounts", "Active accounts holding an administrative role, by role (at most 20 roles per source, the rest summed as other)", &["role"]));
    f.declare(g(
        "identity_posture_super_admins",
        "Active accounts holding a super-admin role (policy.super_admin_roles)",
        &[],
    ));
    f.declare(g(
        "identity_posture_excluded_accounts",
        "Accounts matched by policy.exclude_accounts: counted, never flagged",
        &[],
    ));
    f.declare(g("identity_posture_findings", "Findings by check and severity (accounts with at least one finding of the check; tenant checks count 1 per finding)", &["check", "severity"]));
    f.declare(g(
        "identity_posture_source_duplicate_accounts",
        "Accounts the source returned more than once (same id) in the last poll; each is counted once",
        &[],
    ));
    f.declare(g(
        "identity_posture_compliant_accounts_ratio",
        "Share of active, non-excluded accounts with no finding (0..1)",
        &[],
    ));
    f.declare(g(
        "identity_posture_source_up",
        "1 if the last poll of the source succeeded, 0 if it failed or has not run",
        &[],
    ));
    f.declare(g(
        "identity_posture_source_last_success_timestamp_seconds",
        "Unix time of the last successful poll",
        &[],
    ));
    f.declare(g(
        "identity_posture_source_poll_duration_seconds",
        "Duration of the last poll",
        &[],
    ));
    f.declare(g(
        "identity_posture_source_interval_seconds",
        "Configured poll interval of the source",
        &[],
    ));
    f.declare(g("identity_posture_source_polls_total", "Polls started", &[]).counter());
    f.declare(
        g(
            "identity_posture_source_poll_failures_total",
            "Polls that failed",
            &[],
        )
        .counter(),
    );
    f.declare(g("identity_posture_future_timestamps", "Timestamps more than a day after the poll's clock, by field (created, last_login, last_rotated, last_used): bad data or a wrong clock; the checks treat them as now", &["field"]));
    f.declare(g(
        "identity_posture_source_data_available",
        "1 if the source could read this class of data, 0 if not (see /api/v1/sources for why)",
        &["data"],
    ));
    f.declare(
        g(
            "identity_posture_source_api_requests_total",
            "Upstream API requests by HTTP status class (or error for transport failures)",
            &["code"],
        )
        .counter(),
    );
    f.declare(
        g(
            "identity_posture_source_rate_limited_total",
            "Upstream responses that were rate limited (HTTP 429)",
            &[],
        )
        .counter(),
    );
    f.declare(Family::new(
        "identity_posture_exporter_build_info",
        "Build information; value is always 1",
        &["version", "revision"],
    ));
    f.declare(Family::new(
        "identity_posture_exporter_web_info",
        "The exporter's server.external_url, for absolute links in alerts; value is always 1",
        &["external_url"],
    ));
    f.declare(g(
        "identity_posture_excepted_accounts",
        "Accounts whose findings of this check are all covered by policy.exceptions (counted here, not in identity_posture_findings)",
        &["check"],
    ));
    f.declare(g(
        "identity_posture_exceptions_expiring",
        "Exceptions (policy.exceptions) that apply to the source and expire within 14 days",
        &[],
    ));
    f.declare(g(
        "identity_posture_factors_unrecognized_status",
        "MFA factors whose status the model does not know (read as not active)",
        &[],
    ));
    f.declare(g(
        "identity_posture_findings_new",
        "Findings (per credential, not accounts) first seen in the last poll, excluded accounts left out",
        &["severity"],
    ));
    f.declare(g(
        "identity_posture_findings_resolved",
        "Findings (per credential, not accounts) open in the poll before the last and gone in the last",
        &["severity"],
    ));
    f.declare(g(
        "identity_posture_oldest_open_critical_finding_age_seconds",
        "Age, at the last poll, of the oldest critical finding still open and counted (0 when there is none)",
        &[],
    ));
    f
}

/// Re-encodes the metrics from every source's current state and stores them for scrapes.
pub fn refresh(app: &AppState) {
    app.metrics
        .store(Arc::new(render(&app.sources, app.external_url.as_deref())));
}

/// Exceptions expiring within this many days are counted in
/// `identity_posture_exceptions_expiring`.
pub const EXCEPTION_WARNING_DAYS: i64 = 14;

/// Encodes every metric except `process_*` for the given sources.
pub fn render(sources: &[Arc<SourceState>], external_url: Option<&str>) -> Vec<u8> {
    let mut fams = families();
    let mut dynamic: BTreeMap<&'static str, Family> = BTreeMap::new();
    fams.get("identity_posture_exporter_build_info")
        .add(vec![BUILD.version.into(), BUILD.revision.into()], 1.0);
    if let Some(u) = external_url {
        fams.get("identity_posture_exporter_web_info")
            .add(vec![u.to_string()], 1.0);
    }
    for s in sources {
        let base = || vec![s.name.clone(), s.provider.to_string()];
        let lv = |extra: &[&str]| -> Vec<String> {
            let mut v = base();
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        let st = s.status();
        let report = s.report.load_full();
        fams.get("identity_posture_source_up")
            .add(base(), f64::from(u8::from(st.up)));
        fams.get("identity_posture_source_polls_total")
            .add(base(), st.polls as f64);
        fams.get("identity_posture_source_poll_failures_total")
            .add(base(), st.failures as f64);
        fams.get("identity_posture_source_interval_seconds")
            .add(base(), s.interval.as_secs_f64());
        fams.get("identity_posture_source_rate_limited_total")
            .add(base(), s.stats.rate_limited() as f64);
        if let Some(t) = st.last_success {
            fams.get("identity_posture_source_last_success_timestamp_seconds")
                .add(base(), t.unix_timestamp_nanos() as f64 / 1e9);
        }
        if let Some(d) = st.last_duration_seconds {
            fams.get("identity_posture_source_poll_duration_seconds")
                .add(base(), d);
        }
        let mut reqs = s.stats.api_requests();
        // The usual classes exist from the start (0 for a file source, which makes no
        // requests), so rate() and dashboards never see a gap.
        for code in ["2xx", "3xx", "4xx", "429", "5xx", "error"] {
            reqs.entry(code.to_string()).or_insert(0);
        }
        let fam = fams.get("identity_posture_source_api_requests_total");
        for (code, n) in &reqs {
            fam.add(lv(&[code]), *n as f64);
        }
        let Some(r) = report else { continue };
        add_report(&mut fams, &mut dynamic, &r, &lv);
    }
    add_activity(&mut fams, &mut dynamic, sources);
    let reg = Registry::new();
    for f in fams.0.into_values().chain(dynamic.into_values()) {
        if f.samples.is_empty() {
            continue;
        }
        if let Err(e) = register(&reg, f) {
            tracing::error!(error = %e, "cannot build metric family");
        }
    }
    let mut buf = Vec::with_capacity(64 * 1024);
    if let Err(e) = TextEncoder::new().encode(&reg.gather(), &mut buf) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    buf
}

/// The activity families (sign-in counters, detections) of the sources whose event stream
/// has been read; `identity_posture_source_data_available{data="activity"}` joins that family.
fn add_activity(
    fams: &mut Families,
    dynamic: &mut BTreeMap<&'static str, Family>,
    sources: &[Arc<SourceState>],
) {
    let snaps: Vec<_> = sources
        .iter()
        .filter_map(|s| Some((s, s.activity.snapshot.load_full()?)))
        .collect();
    let list: Vec<(&str, &str, &crate::activity::Snapshot)> = snaps
        .iter()
        .map(|(s, snap)| (s.name.as_str(), s.provider, snap.as_ref()))
        .collect();
    for f in crate::activity::metrics::families(&list) {
        if let Some(existing) = fams.0.get_mut(f.name) {
            existing.samples.extend(f.samples);
            continue;
        }
        let labels: Vec<&'static str> = ["source", "provider"]
            .into_iter()
            .chain(f.labels.iter().copied())
            .collect();
        let mut fam = Family::new(f.name, f.help, &labels);
        fam.counter = f.counter;
        fam.samples = f.samples;
        dynamic.insert(f.name, fam);
    }
}

fn register(reg: &Registry, f: Family) -> prometheus::Result<()> {
    let opts = Opts::new(f.name, f.help.clone());
    if f.counter {
        let c = prometheus::CounterVec::new(opts, &f.labels)?;
        for (lv, v) in &f.samples {
            let refs: Vec<&str> = lv.iter().map(String::as_str).collect();
            c.with_label_values(&refs).inc_by(*v);
        }
        reg.register(Box::new(c) as Box<dyn Collector>)
    } else {
        let g = GaugeVec::new(opts, &f.labels)?;
        for (lv, v) in &f.samples {
            let refs: Vec<&str> = lv.iter().map(String::as_str).collect();
            g.with_label_values(&refs).set(*v);
        }
        reg.register(Box::new(g))
    }
}

fn add_report(
    fams: &mut Families,
    dynamic: &mut BTreeMap<&'static str, Family>,
    r: &Report,
    lv: &dyn Fn(&[&str]) -> Vec<String>,
) {
    let t = &r.tally;
    for at in AccountType::ALL {
        let a = at as usize;
        let ats = at.as_str();
        for st in Status::ALL {
            fams.get("identity_posture_accounts")
                .add(lv(&[ats, st.as_str()]), t.accounts[a][st as usize] as f64);
        }
        fams.get("identity_posture_active_accounts")
            .add(lv(&[ats]), t.active[a] as f64);
        for (p, ps) in PRIV.iter().enumerate() {
            fams.get("identity_posture_accounts_without_mfa")
                .add(lv(&[ats, ps]), t.without_mfa[a][p] as f64);
            fams.get("identity_posture_accounts_weak_mfa")
                .add(lv(&[ats, ps]), t.weak_mfa[a][p] as f64);
            fams.get("identity_posture_accounts_phishing_resistant_mfa")
                .add(lv(&[ats, ps]), t.phishing_resistant_mfa[a][p] as f64);
            fams.get("identity_posture_accounts_mfa_unknown")
                .add(lv(&[ats, ps]), t.mfa_unknown[a][p] as f64);
            for (ri, reason) in DORMANT_REASONS.iter().enumerate() {
                fams.get("identity_posture_dormant_accounts")
                    .add(lv(&[ats, ps, reason]), t.dormant[a][p][ri] as f64);
            }
        }
        for ct in CredentialType::ALL {
            let c = ct as usize;
            let l = lv(&[ats, ct.as_str()]);
            fams.get("identity_posture_unrotated_credentials")
                .add(l.clone(), t.unrotated[a][c] as f64);
            fams.get("identity_posture_expired_credentials")
                .add(l.clone(), t.expired[a][c] as f64);
            fams.get("identity_posture_expiring_credentials")
                .add(l, t.expiring[a][c] as f64);
        }
        for (ri, reason) in OVERPRIV_REASONS.iter().enumerate() {
            fams.get("identity_posture_overprivileged_accounts")
                .add(lv(&[ats, reason]), t.overprivileged[a][ri] as f64);
        }
    }
    let mut roles = t.role_labels();
    if !roles.iter().any(|(n, _)| n == "other") {
        // Always present, so `sum by (source)` never has a gap when a source has no admin.
        roles.push(("other".into(), 0));
    }
    for (role, n) in roles {
        fams.get("identity_posture_privileged_accounts")
            .add(lv(&[&role]), n as f64);
    }
    fams.get("identity_posture_super_admins")
        .add(lv(&[]), t.super_admins as f64);
    fams.get("identity_posture_excluded_accounts")
        .add(lv(&[]), t.excluded as f64);
    fams.get("identity_posture_source_duplicate_accounts")
        .add(lv(&[]), t.duplicates as f64);
    for c in CheckId::ALL {
        fams.get("identity_posture_findings").add(
            lv(&[c.as_str(), r.policy.severity(c).as_str()]),
            t.findings[c as usize] as f64,
        );
        fams.get("identity_posture_excepted_accounts")
            .add(lv(&[c.as_str()]), t.excepted[c as usize] as f64);
    }
    if let Some(now) = r.evaluated_at {
        let soon = now + time::Duration::days(EXCEPTION_WARNING_DAYS);
        let expiring = r
            .policy
            .exceptions
            .iter()
            .filter(|e| e.expires > now && e.expires <= soon)
            .count();
        fams.get("identity_posture_exceptions_expiring")
            .add(lv(&[]), expiring as f64);
    }
    fams.get("identity_posture_factors_unrecognized_status")
        .add(lv(&[]), t.factors_unrecognized as f64);
    let h = &r.history;
    if h.tracked {
        for s in Severity::ALL {
            fams.get("identity_posture_findings_new")
                .add(lv(&[s.as_str()]), h.new_by_severity[s as usize] as f64);
            fams.get("identity_posture_findings_resolved")
                .add(lv(&[s.as_str()]), h.resolved_by_severity[s as usize] as f64);
        }
        let age = match (h.oldest_open_critical, r.evaluated_at) {
            (Some(first), Some(now)) => (now - first).as_seconds_f64().max(0.0),
            _ => 0.0,
        };
        fams.get("identity_posture_oldest_open_critical_finding_age_seconds")
            .add(lv(&[]), age);
    }
    fams.get("identity_posture_compliant_accounts_ratio")
        .add(lv(&[]), t.compliant_ratio());
    for (field, n) in FUTURE_FIELDS.iter().zip(t.future_timestamps) {
        fams.get("identity_posture_future_timestamps")
            .add(lv(&[field]), n as f64);
    }
    for d in DataKind::ALL {
        fams.get("identity_posture_source_data_available").add(
            lv(&[d.as_str()]),
            f64::from(u8::from(r.availability.is_available(d))),
        );
    }
    for g in &r.gauges {
        let fam = dynamic.entry(g.name).or_insert_with(|| {
            let mut labels = vec!["source", "provider"];
            labels.extend(g.labels.iter().map(|(k, _)| *k));
            Family::new(g.name, g.help, &labels)
        });
        let names: Vec<&str> = g.labels.iter().map(|(k, _)| *k).collect();
        if fam.labels[2..] != names[..] {
            tracing::warn!(
                metric = g.name,
                "inconsistent labels in a source gauge; sample dropped"
            );
            continue;
        }
        let vals: Vec<&str> = g.labels.iter().map(|(_, v)| v.as_str()).collect();
        fam.add(lv(&vals), g.value);
    }
}

/// Process metrics (`process_*`), gathered at scrape time: they are cheap (one read of
/// /proc/self) and must be current.
pub fn process_metrics() -> Vec<u8> {
    let mut buf = Vec::new();
    #[cfg(target_os = "linux")]
    {
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        let _ = TextEncoder::new().encode(&pc.collect(), &mut buf);
        // The prometheus crate rounds CPU time down to whole seconds, which shows a quiet
        // exporter as using none: put the exact figure from /proc/self/stat in its place.
        if let Some(cpu) = cpu_seconds() {
            buf = replace_sample(&buf, "process_cpu_seconds_total", cpu);
        }
    }
    buf
}

/// User + system CPU seconds of this process, from `/proc/self/stat`.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (tck > 0).then(|| (utime + stime) / tck as f64)
}

/// Replaces the value of the unlabelled sample `name` in exposition text.
fn replace_sample(text: &[u8], name: &str, value: f64) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        match line.strip_prefix(name) {
            Some(rest) if rest.starts_with(' ') => out.push_str(&format!("{name} {value}")),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// The Prometheus text format content type (exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_exact_not_whole_seconds() {
        // Burn a little CPU so the figure is above zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i.wrapping_mul(i));
        }
        std::hint::black_box(x);
        let text = String::from_utf8(process_metrics()).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("process_cpu_seconds_total "))
            .unwrap();
        let v: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
        assert!(v > 0.0, "{line}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        assert!(text.contains("process_resident_memory_bytes"));
    }

    #[test]
    fn replace_sample_touches_only_that_series() {
        let t = b"# HELP a x\n# TYPE a counter\na 1\nab 2\n";
        let out = String::from_utf8(replace_sample(t, "a", 0.25)).unwrap();
        assert_eq!(out, "# HELP a x\n# TYPE a counter\na 0.25\nab 2\n");
    }
}
