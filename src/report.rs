//! One poll's result: accounts go in (as an [`AccountSink`]), checks run on each as it
//! arrives, and a [`Report`] comes out with the counts behind every gauge and, when
//! retained, the accounts and findings behind the API. `collect` does not retain, so a
//! million-account file is counted in constant memory.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::checks::{self, CheckId, Ctx, Finding, MfaClass, N_CHECKS};
use crate::config::Policy;
use crate::model::{
    Account, AccountType, CredentialType, DataAvailability, FactorStatus, Known, Status, Timestamp,
};
use crate::retained::{Head, Retained, RetainedBuilder};
use crate::sources::{AccountSink, PollOutput, SourceGauge};

pub const DORMANT_REASONS: [&str; 3] = ["inactive", "never_logged_in", "terminated"];
pub const OVERPRIV_REASONS: [&str; 4] = [
    "role_not_allowed",
    "unused",
    "no_mfa",
    "service_account_admin",
];

/// The timestamp fields counted in `identity_posture_future_timestamps{field}`.
pub const FUTURE_FIELDS: [&str; 4] = ["created", "last_login", "last_rotated", "last_used"];

/// A timestamp later than this after the poll's clock counts as "in the future". The slack
/// keeps clock skew and logins that happen while a long poll runs out of the count.
pub const FUTURE_SLACK: time::Duration = time::Duration::days(1);

/// At most this many distinct roles per source in `identity_posture_privileged_accounts`.
pub const MAX_ROLE_LABELS: usize = 20;

type ByTypePriv = [[u64; 2]; 2];
type ByTypeCred = [[u64; 7]; 2];

/// The counts behind the posture gauges. Indexes: account type (human 0, service 1),
/// privileged (false 0, true 1), status, reason and credential type in their `ALL` order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub accounts: [[u64; 6]; 2],
    /// Active, non-excluded accounts (what the checks judge), per account type.
    pub active: [u64; 2],
    pub without_mfa: ByTypePriv,
    pub weak_mfa: ByTypePriv,
    pub phishing_resistant_mfa: ByTypePriv,
    /// Active, non-excluded accounts whose MFA state the source could not read: coverage
    /// ratios divide by `active - mfa_unknown`, so unknown is never counted as covered.
    pub mfa_unknown: ByTypePriv,
    pub dormant: [[[u64; 3]; 2]; 2],
    pub unrotated: ByTypeCred,
    pub expired: ByTypeCred,
    pub expiring: ByTypeCred,
    pub overprivileged: [[u64; 4]; 2],
    /// Active accounts per role (excluded ones too: they really hold the role).
    pub privileged_roles: HashMap<String, u64>,
    pub super_admins: u64,
    pub excluded: u64,
    /// Accounts the source returned more than once in the poll (by id): counted once.
    pub duplicates: u64,
    /// Per check: non-excluded accounts with at least one finding of the check that no
    /// exception covers (tenant checks: 1 per finding). `identity_posture_findings`.
    pub findings: [u64; N_CHECKS],
    /// Per check: the findings themselves (an account with two stale keys has two), same
    /// filter as `findings`. What `/api/v1/findings` lists for `excluded=false&excepted=false`.
    pub finding_rows: [u64; N_CHECKS],
    /// Per check: non-excluded accounts whose findings of the check an exception covers
    /// (and that have no uncovered one).
    pub excepted: [u64; N_CHECKS],
    /// Active, non-excluded accounts with no finding (excepted findings do not count).
    pub compliant: u64,
    /// MFA factors, on any account, whose status the model does not know (not active).
    pub factors_unrecognized: u64,
    /// Accounts whose roles were known (tenant admin-count checks need roles).
    pub roles_known: u64,
    /// Timestamps more than [`FUTURE_SLACK`] after the poll's clock, per [`FUTURE_FIELDS`]
    /// (every account, excluded or not). The checks treat them as "now".
    pub future_timestamps: [u64; 4],
    /// The first such timestamp seen, for the log line: (account id, field).
    pub future_example: Option<(String, &'static str)>,
}

impl Tally {
    pub fn compliant_ratio(&self) -> f64 {
        let checked = self.active[0] + self.active[1];
        if checked == 0 {
            1.0
        } else {
            self.compliant as f64 / checked as f64
        }
    }

    /// Roles for the gauge: the 20 most held by name, the rest summed as `other`.
    pub fn role_labels(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .privileged_roles
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if v.len() > MAX_ROLE_LABELS {
            let rest: u64 = v[MAX_ROLE_LABELS - 1..].iter().map(|x| x.1).sum();
            v.truncate(MAX_ROLE_LABELS - 1);
            v.push(("other".into(), rest));
        }
        v.sort();
        v
    }
}

/// Per-account facts kept beside the account for the API.
#[derive(Debug, Clone, Copy)]
pub struct AccountMeta {
    pub account_type: AccountType,
    pub excluded: bool,
    pub privileged: bool,
}

/// A finding and the account it belongs to (`None` for tenant findings), as a report keeps
/// it: 28 bytes, its subject interned in the report's symbols (see [`Report::subject`]).
#[derive(Debug, Clone, Copy)]
pub struct StoredFinding {
    pub account: Option<u32>,
    pub check: CheckId,
    pub credential_type: Option<CredentialType>,
    /// The exception covering it: an index into the report's `policy.exceptions`.
    pub excepted: Option<u16>,
    /// `i32::MIN`: none (ages in days always fit: timestamps end at year 9999).
    days: i32,
    /// A symbol of the report's accounts, or `u32::MAX`: none.
    subject: u32,
    /// An index into the report's `times`, or `u32::MAX`: not stamped by history yet.
    first_seen: u32,
}

const NONE: u32 = u32::MAX;

impl StoredFinding {
    fn new(account: Option<u32>, f: &Finding, subject: u32, excepted: Option<u16>) -> Self {
        StoredFinding {
            account,
            check: f.check,
            credential_type: f.credential_type,
            excepted,
            days: f.days.map_or(i32::MIN, |d| {
                d.clamp(i64::from(i32::MIN + 1), i64::from(i32::MAX)) as i32
            }),
            subject,
            first_seen: NONE,
        }
    }

    pub fn days(&self) -> Option<i64> {
        (self.days != i32::MIN).then_some(i64::from(self.days))
    }
}

/// A finding's fields, borrowed: what [`FindingRecord`] is made from.
#[derive(Debug, Clone, Copy)]
pub struct FindingRef<'a> {
    pub check: CheckId,
    pub subject: Option<&'a str>,
    pub credential_type: Option<CredentialType>,
    pub days: Option<i64>,
}

impl<'a> From<&'a Finding> for FindingRef<'a> {
    fn from(f: &'a Finding) -> Self {
        FindingRef {
            check: f.check,
            subject: f.subject.as_deref(),
            credential_type: f.credential_type,
            days: f.days,
        }
    }
}

/// The result of one successful poll of one source.
#[derive(Debug, Default)]
pub struct Report {
    pub evaluated_at: Option<Timestamp>,
    /// The policy the poll was judged by: severities, disabled checks, exceptions.
    pub policy: Policy,
    pub tally: Tally,
    pub availability: DataAvailability,
    pub gauges: Vec<SourceGauge>,
    /// Retained accounts, compact (empty when not retaining).
    pub accounts: Retained,
    pub meta: Vec<AccountMeta>,
    /// Sorted by account id, then check; tenant findings first.
    pub findings: Vec<StoredFinding>,
    /// The distinct first sightings of the findings (`StoredFinding::first_seen` indexes it).
    times: Vec<Timestamp>,
    /// `times` → index, while history stamps the findings (a long history has many).
    time_index: HashMap<Timestamp, u32>,
    /// Accounts with at least one finding, plus one per tenant finding.
    finding_accounts: u64,
    /// What finding history says about this poll (filled in by [`crate::history`]).
    pub history: HistorySummary,
}

/// Finding history as of one poll.
#[derive(Debug, Default, Clone)]
pub struct HistorySummary {
    /// History was applied (the report retained its findings).
    pub tracked: bool,
    /// Findings first seen in this poll (excluded accounts' findings left out).
    pub new: u64,
    /// Findings of the previous poll that are gone in this one.
    pub resolved: Vec<ResolvedFinding>,
    /// First sighting of the oldest counted critical finding still open.
    pub oldest_open_critical: Option<Timestamp>,
    /// New findings by severity (`Severity::ALL` order), for the per-poll gauges.
    pub new_by_severity: [u64; 4],
    /// Resolved findings by severity.
    pub resolved_by_severity: [u64; 4],
}

/// A finding that was open in the previous poll and is not any more.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedFinding {
    pub account_id: Option<String>,
    pub login: Option<String>,
    pub check: String,
    pub severity: String,
    pub subject: Option<String>,
    #[serde(with = "crate::model::opt_rfc3339")]
    pub first_seen: Option<Timestamp>,
    #[serde(with = "crate::model::opt_rfc3339")]
    pub last_seen: Option<Timestamp>,
}

impl Report {
    pub fn account_id(&self, f: &StoredFinding) -> &str {
        f.account.map(|i| self.accounts.id(i)).unwrap_or("")
    }

    /// Accounts with at least one finding, plus one per tenant finding (what
    /// `/api/v1/findings` reports as `accounts` without a filter).
    pub fn finding_accounts(&self) -> u64 {
        self.finding_accounts
    }

    /// Account `i`, decoded.
    pub fn account(&self, i: u32) -> Option<Account> {
        self.accounts.get(i)
    }

    /// The index of the account with this id.
    pub fn find_id(&self, id: &str) -> Option<u32> {
        self.accounts.find_id(id)
    }

    /// What the finding is about inside the account (a credential id, a role name).
    pub fn subject(&self, f: &StoredFinding) -> Option<&str> {
        (f.subject != NONE).then(|| self.accounts.symbols().get(f.subject))
    }

    /// When the finding was first seen (finding history); the poll's time when it is new.
    pub fn first_seen(&self, f: &StoredFinding) -> Option<Timestamp> {
        self.times.get(f.first_seen as usize).copied()
    }

    /// Stamps finding `i` as first seen at `t` (finding history).
    pub fn set_first_seen(&mut self, i: usize, t: Timestamp) {
        let idx = match self.time_index.get(&t) {
            Some(p) => *p,
            None => {
                self.times.push(t);
                let p = (self.times.len() - 1) as u32;
                self.time_index.insert(t, p);
                p
            }
        };
        if let Some(f) = self.findings.get_mut(i) {
            f.first_seen = idx;
        }
    }

    /// The finding's fields, borrowed from the report.
    pub fn finding_ref<'a>(&'a self, f: &StoredFinding) -> FindingRef<'a> {
        FindingRef {
            check: f.check,
            subject: self.subject(f),
            credential_type: f.credential_type,
            days: f.days(),
        }
    }

    /// The finding as the checks made it.
    pub fn finding(&self, f: &StoredFinding) -> Finding {
        Finding {
            check: f.check,
            subject: self.subject(f).map(Into::into),
            credential_type: f.credential_type,
            days: f.days(),
        }
    }

    /// One finding in the shape the API, the findings view and `collect --format json` share
    /// (docs/api.md).
    pub fn record<'a>(
        &'a self,
        source: &'a str,
        provider: &'a str,
        f: &'a StoredFinding,
    ) -> FindingRecord<'a> {
        let acct = f
            .account
            .and_then(|i| Some((self.accounts.head(i)?, *self.meta.get(i as usize)?)));
        let exception = f
            .excepted
            .and_then(|i| self.policy.exceptions.get(usize::from(i)));
        FindingRecord::new(
            source,
            provider,
            acct,
            self.finding_ref(f),
            exception,
            &self.policy,
            self.first_seen(f),
            self.is_new(f),
        )
    }

    /// First seen in this poll (history has no earlier sighting).
    pub fn is_new(&self, f: &StoredFinding) -> bool {
        let first = self.first_seen(f);
        first.is_some() && first == self.evaluated_at
    }

    /// The account's type, exclusion and privilege.
    pub fn meta(&self, i: u32) -> Option<AccountMeta> {
        self.meta.get(i as usize).copied()
    }

    /// Whether a finding counts (not on an excluded account, not covered by an exception).
    pub fn counts(&self, f: &StoredFinding) -> bool {
        f.excepted.is_none()
            && !f
                .account
                .is_some_and(|i| self.meta(i).is_some_and(|m| m.excluded))
    }
}

/// One finding as every surface shows it. Flat, so CSV and JSON carry the same columns
/// (the CSV header is [`FindingRecord::COLUMNS`]).
#[derive(Debug, serde::Serialize)]
pub struct FindingRecord<'a> {
    pub source: &'a str,
    pub provider: &'a str,
    /// `account` or `tenant`.
    pub scope: &'static str,
    pub account_id: Option<&'a str>,
    pub login: Option<&'a str>,
    pub display_name: Option<&'a str>,
    /// Effective type (`service_account_patterns` applied).
    pub account_type: Option<&'static str>,
    pub status: Option<&'static str>,
    pub privileged: Option<bool>,
    /// The account matches `policy.exclude_accounts`: listed, never counted.
    pub excluded: bool,
    /// An exception covers the finding: listed with its reason, counted as excepted.
    pub excepted: bool,
    pub exception_reason: Option<&'a str>,
    pub exception_owner: Option<&'a str>,
    pub exception_expires: Option<String>,
    pub check: &'static str,
    pub severity: &'static str,
    pub subject: Option<&'a str>,
    pub credential_type: Option<&'static str>,
    pub days: Option<i64>,
    /// When the finding was first seen (kept across restarts with `[storage] state_dir`).
    pub first_seen: Option<String>,
    /// First seen in the latest poll.
    pub new: bool,
    pub detail: String,
    pub remediation: &'static str,
}

impl<'a> FindingRecord<'a> {
    /// The record of finding `f` (on `acct`, or a tenant finding), covered by `exception`,
    /// with its severity from `policy`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        source: &'a str,
        provider: &'a str,
        acct: Option<(Head<'a>, AccountMeta)>,
        f: FindingRef<'a>,
        exception: Option<&'a crate::config::Exception>,
        policy: &Policy,
        first_seen: Option<Timestamp>,
        new: bool,
    ) -> FindingRecord<'a> {
        FindingRecord {
            source,
            provider,
            scope: if acct.is_some() { "account" } else { "tenant" },
            account_id: acct.map(|(a, _)| a.id),
            login: acct.map(|(a, _)| a.login),
            display_name: acct.and_then(|(a, _)| a.display_name),
            account_type: acct.map(|(_, m)| m.account_type.as_str()),
            status: acct.map(|(a, _)| a.status.as_str()),
            privileged: acct.map(|(_, m)| m.privileged),
            excluded: acct.is_some_and(|(_, m)| m.excluded),
            excepted: exception.is_some(),
            exception_reason: exception.map(|e| e.reason.as_str()),
            exception_owner: exception.map(|e| e.owner.as_str()),
            exception_expires: exception.map(|e| crate::model::format_ts(e.expires)),
            check: f.check.as_str(),
            severity: policy.severity(f.check).as_str(),
            subject: f.subject,
            credential_type: f.credential_type.map(|c| c.as_str()),
            days: f.days,
            first_seen: first_seen.map(crate::model::format_ts),
            new,
            detail: checks::describe(f.check, f.subject, f.credential_type, f.days),
            remediation: checks::catalog::remediation(f.check, provider),
        }
    }

    pub const COLUMNS: [&'static str; 23] = [
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
        "excepted",
        "exception_reason",
        "exception_owner",
        "exception_expires",
        "check",
        "severity",
        "subject",
        "credential_type",
        "days",
        "first_seen",
        "new",
        "detail",
        "remediation",
    ];
}

/// One account's findings as the checks produced them, handed to a [`FindingsHook`].
pub struct AccountFindings<'a> {
    pub account: &'a Account,
    pub meta: AccountMeta,
    /// Sorted by check, then subject (the order the retained report lists them in).
    pub findings: &'a [Finding],
    /// Parallel to `findings`: the exception covering each, an index into `policy.exceptions`.
    pub excepted: &'a [Option<u16>],
    pub policy: &'a Policy,
    /// The poll's clock.
    pub now: Timestamp,
}

impl AccountFindings<'_> {
    /// The findings in the shared shape ([`FindingRecord`]) as a single poll without history
    /// shows them: first seen at the poll's time, and new.
    pub fn records<'b>(
        &'b self,
        source: &'b str,
        provider: &'b str,
    ) -> impl Iterator<Item = FindingRecord<'b>> + 'b {
        self.findings.iter().zip(self.excepted).map(move |(f, e)| {
            let exception = e.and_then(|i| self.policy.exceptions.get(usize::from(i)));
            FindingRecord::new(
                source,
                provider,
                Some((Head::of(self.account), self.meta)),
                f.into(),
                exception,
                self.policy,
                Some(self.now),
                true,
            )
        })
    }
}

/// Called with every account that has findings, as they are produced, for output that
/// streams instead of retaining (`collect --format json`).
pub type FindingsHook = Box<dyn FnMut(&AccountFindings<'_>) + Send>;

/// Runs the checks over accounts as they arrive and counts them.
pub struct ReportBuilder {
    policy: Policy,
    now: Timestamp,
    retain: bool,
    hook: Option<FindingsHook>,
    tally: Tally,
    scratch: Vec<Finding>,
    /// Parallel to `scratch`: the exception covering each finding.
    scratch_excepted: Vec<Option<u16>>,
    accounts: RetainedBuilder,
    meta: Vec<AccountMeta>,
    findings: Vec<StoredFinding>,
    /// Accounts seen, and how many carried each data class (`DataKind::ALL` order): data
    /// availability is worked out here once for every source.
    seen: u64,
    carried: [u64; 4],
    /// Hashes of the ids pushed so far: a provider returning an account twice (or a file
    /// holding a duplicate id) must not count it twice. The keys are already SipHash
    /// values, so the set itself uses the cheap Fx hasher on them.
    ids: rustc_hash::FxHashSet<u64>,
    /// `max_accounts_per_poll`; past it accounts are dropped and the poll is stopped.
    max_accounts: u64,
    limit_hit: Arc<tokio::sync::Notify>,
    overflowed: bool,
}

impl AccountSink for ReportBuilder {
    fn push(&mut self, account: Account) {
        self.add(account);
    }
}

impl ReportBuilder {
    /// `retain` keeps accounts and findings for the API; without it only counts are kept.
    pub fn new(policy: Policy, now: Timestamp, retain: bool) -> ReportBuilder {
        ReportBuilder {
            policy,
            now,
            retain,
            hook: None,
            tally: Tally::default(),
            scratch: Vec::with_capacity(16),
            scratch_excepted: Vec::with_capacity(16),
            accounts: RetainedBuilder::new(now),
            meta: Vec::new(),
            findings: Vec::new(),
            seen: 0,
            carried: [0; 4],
            ids: rustc_hash::FxHashSet::default(),
            max_accounts: u64::MAX,
            limit_hit: Arc::new(tokio::sync::Notify::new()),
            overflowed: false,
        }
    }

    /// Sets the [`FindingsHook`].
    pub fn with_hook(mut self, hook: FindingsHook) -> ReportBuilder {
        self.hook = Some(hook);
        self
    }

    /// Sizes the builder for about as many accounts and findings as `previous` (the
    /// source's last report) had, plus a sixteenth: a large organisation's buffers are then
    /// allocated once, not doubled (each doubling holds the old and the new buffer at once,
    /// while the previous report is still held too). Without retaining only the id set is
    /// sized.
    pub fn with_size_hint(mut self, previous: &Report) -> ReportBuilder {
        let more = |n: usize| n + n / 16;
        let accounts = previous.tally.accounts.iter().flatten().sum::<u64>() as usize;
        self.ids.reserve(more(accounts));
        if self.retain {
            let n = previous.accounts.len();
            self.accounts
                .reserve(more(n), more(previous.accounts.data_len()));
            self.meta.reserve(more(n));
            self.findings.reserve(more(previous.findings.len()));
        }
        self
    }

    /// Stops taking accounts after `max` (see [`ReportBuilder::limit_hit`]).
    pub fn with_max_accounts(mut self, max: u64) -> ReportBuilder {
        self.max_accounts = max;
        self
    }

    /// Notified once when more accounts arrive than `max_accounts_per_poll` allows: the
    /// poller stops the poll (a provider inventing accounts would otherwise never end).
    pub fn limit_hit(&self) -> Arc<tokio::sync::Notify> {
        self.limit_hit.clone()
    }

    /// Whether more accounts came than the limit allows.
    pub fn over_limit(&self) -> bool {
        self.overflowed
    }

    /// De-duplicates by id and enforces the account limit; `false` = not counted.
    fn admit(&mut self, a: &Account) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        a.id.hash(&mut h);
        if !self.ids.insert(h.finish()) {
            self.tally.duplicates += 1;
            return false;
        }
        if self.ids.len() as u64 > self.max_accounts {
            if !self.overflowed {
                self.overflowed = true;
                self.limit_hit.notify_one();
            }
            return false;
        }
        true
    }

    pub fn add(&mut self, a: Account) {
        if !self.admit(&a) {
            return;
        }
        let v = self.evaluate(&a);
        let meta = AccountMeta {
            account_type: v.account_type,
            excluded: v.excluded,
            privileged: v.privileged,
        };
        if let Some(hook) = &mut self.hook {
            if !self.scratch.is_empty() {
                hook(&AccountFindings {
                    account: &a,
                    meta,
                    findings: &self.scratch,
                    excepted: &self.scratch_excepted,
                    policy: &self.policy,
                    now: self.now,
                });
            }
        }
        if self.retain {
            let idx = self.accounts.push(&a);
            for (f, excepted) in self.scratch.drain(..).zip(self.scratch_excepted.drain(..)) {
                let subject = match &f.subject {
                    Some(s) => self.accounts.subject(s),
                    None => NONE,
                };
                self.findings
                    .push(StoredFinding::new(Some(idx), &f, subject, excepted));
            }
            self.meta.push(meta);
        }
    }

    /// Runs the checks on one account and counts it, without keeping it (the benchmark
    /// measures this).
    pub fn evaluate(&mut self, a: &Account) -> checks::Verdict {
        self.seen += 1;
        self.carried[0] += u64::from(!a.last_login.is_unknown());
        self.carried[1] += u64::from(a.mfa.is_some());
        self.carried[2] += u64::from(a.credentials.is_some());
        self.carried[3] += u64::from(a.roles.is_some());
        self.scratch.clear();
        let ctx = Ctx {
            policy: &self.policy,
            now: self.now,
        };
        let v = checks::evaluate_account(a, &ctx, &mut self.scratch);
        let p = &self.policy;
        self.scratch.retain(|f| p.check(f.check).enabled);
        if self.hook.is_some() {
            // The hook sees an account's findings in the order a retained report lists them.
            self.scratch.sort_by(|x, y| {
                x.check
                    .cmp(&y.check)
                    .then_with(|| x.subject.cmp(&y.subject))
            });
        }
        self.scratch_excepted.clear();
        for f in &self.scratch {
            let e = if p.exceptions.is_empty() {
                None
            } else {
                p.exception_for(f.check, &a.login, &a.id, self.now)
            };
            self.scratch_excepted.push(e);
        }
        count(
            &mut self.tally,
            a,
            &v,
            &self.scratch,
            &self.scratch_excepted,
            p,
        );
        count_future(&mut self.tally, a, self.now + FUTURE_SLACK);
        v
    }

    /// Adds the tenant checks and freezes the report.
    pub fn finish(mut self, mut out: PollOutput) -> Report {
        // The id set is not needed any more: free it before the sorts below.
        drop(std::mem::take(&mut self.ids));
        out.availability.settle(self.seen, &self.carried);
        let super_admins = (self.tally.roles_known > 0
            && !out.tenant.no_super_admin_role
            && out.availability.is_available(crate::model::DataKind::Roles))
        .then_some(self.tally.super_admins);
        let mut tenant = checks::tenant::check(super_admins, &out.tenant, &self.policy);
        tenant.retain(|f| self.policy.check(f.check).enabled);
        let tenant: Vec<StoredFinding> = tenant
            .into_iter()
            .map(|f| {
                let excepted = self.policy.exception_for(f.check, "", "", self.now);
                let c = f.check as usize;
                if excepted.is_some() {
                    self.tally.excepted[c] += 1;
                } else {
                    self.tally.findings[c] += 1;
                    self.tally.finding_rows[c] += 1;
                }
                let subject = match &f.subject {
                    Some(s) => self.accounts.subject(s),
                    None => NONE,
                };
                StoredFinding::new(None, &f, subject, excepted)
            })
            .collect();
        let accounts = self.accounts.finish();
        // Accounts in id order, then each account's findings by check and subject: the
        // rank of each account in id order makes the sort compare integers.
        let mut rank = vec![0u32; accounts.len()];
        for (r, i) in accounts.by_id().iter().enumerate() {
            rank[*i as usize] = r as u32;
        }
        let syms = accounts.symbols();
        let subj = |f: &StoredFinding| (f.subject != NONE).then(|| syms.get(f.subject));
        self.findings.sort_by(|x, y| {
            let rx = x.account.map(|i| rank[i as usize]);
            let ry = y.account.map(|i| rank[i as usize]);
            rx.cmp(&ry)
                .then(x.check.cmp(&y.check))
                .then_with(|| subj(x).cmp(&subj(y)))
        });
        drop(rank);
        // Tenant findings first, moved in front in place (no second copy of the findings).
        let mut findings = std::mem::take(&mut self.findings);
        findings.splice(0..0, tenant);
        findings.shrink_to_fit();
        self.meta.shrink_to_fit();
        let mut finding_accounts = 0u64;
        let mut last = None;
        for f in &findings {
            if f.account.is_none() || f.account != last {
                finding_accounts += 1;
            }
            last = f.account;
        }
        Report {
            evaluated_at: Some(self.now),
            policy: self.policy,
            tally: self.tally,
            availability: out.availability,
            gauges: out.gauges,
            accounts,
            meta: self.meta,
            findings,
            times: Vec::new(),
            time_index: HashMap::new(),
            finding_accounts,
            history: HistorySummary::default(),
        }
    }
}

/// One warning per poll of a source whose data has timestamps in the future.
pub fn log_future_timestamps(source: &str, t: &Tally) {
    let total: u64 = t.future_timestamps.iter().sum();
    if total == 0 {
        return;
    }
    let [created, last_login, last_rotated, last_used] = t.future_timestamps;
    let (example_account, example_field) = t
        .future_example
        .as_ref()
        .map(|(id, f)| (id.as_str(), *f))
        .unwrap_or(("", ""));
    tracing::warn!(
        source,
        total,
        created,
        last_login,
        last_rotated,
        last_used,
        example_account,
        example_field,
        "timestamps more than a day in the future (bad source data or a wrong clock); the checks treat them as now"
    );
}

/// Counts the account's timestamps that lie after `limit`.
fn count_future(t: &mut Tally, a: &Account, limit: Timestamp) {
    let at = |k: &Known<Timestamp>| matches!(k, Known::At(x) if *x > limit);
    let mut n = [
        u64::from(a.created.is_some_and(|c| c > limit)),
        u64::from(at(&a.last_login)),
        0,
        0,
    ];
    for c in a.credentials.iter().flatten() {
        n[2] += u64::from(at(&c.last_rotated));
        n[3] += u64::from(at(&c.last_used));
    }
    for r in a.roles.iter().flatten() {
        n[3] += u64::from(at(&r.last_used));
    }
    if n == [0; 4] {
        return;
    }
    for (total, k) in t.future_timestamps.iter_mut().zip(n) {
        *total += k;
    }
    if t.future_example.is_none() {
        let field = FUTURE_FIELDS[n.iter().position(|k| *k > 0).unwrap_or(0)];
        t.future_example = Some((a.id.clone(), field));
    }
}

/// Adds one evaluated account to the counts. `excepted` is parallel to `findings`.
fn count(
    t: &mut Tally,
    a: &Account,
    v: &checks::Verdict,
    findings: &[Finding],
    excepted: &[Option<u16>],
    p: &Policy,
) {
    let ty = v.account_type as usize;
    let pr = usize::from(v.privileged);
    t.accounts[ty][a.status as usize] += 1;
    if let Some(m) = &a.mfa {
        t.factors_unrecognized += m
            .factors
            .iter()
            .filter(|f| f.status == FactorStatus::Unrecognized)
            .count() as u64;
    }
    if a.roles.is_some() {
        t.roles_known += 1;
    }
    if v.excluded {
        t.excluded += 1;
    }
    if v.checked {
        for r in a.roles.iter().flatten() {
            match t.privileged_roles.get_mut(r.name.as_str()) {
                Some(n) => *n += 1,
                None => {
                    t.privileged_roles.insert(r.name.clone(), 1);
                }
            }
        }
        if a.roles
            .iter()
            .flatten()
            .any(|r| checks::tenant::is_super_admin_role(p, &r.name))
        {
            t.super_admins += 1;
        }
    }
    if v.excluded {
        return;
    }
    if v.checked {
        t.active[ty] += 1;
        if excepted.iter().all(Option::is_some) {
            t.compliant += 1;
        }
        match v.mfa {
            MfaClass::None => t.without_mfa[ty][pr] += 1,
            MfaClass::Weak => t.weak_mfa[ty][pr] += 1,
            MfaClass::PhishingResistant => t.phishing_resistant_mfa[ty][pr] += 1,
            MfaClass::Unknown => t.mfa_unknown[ty][pr] += 1,
            MfaClass::Strong => {}
        }
    }
    // Accounts count once per check, per credential type and per reason. An account counts
    // as excepted for a check only when every finding of that check is excepted.
    let mut seen_checks = 0u32;
    let mut seen_excepted = 0u32;
    let mut seen_cred = [0u8; 3];
    for (f, ex) in findings.iter().zip(excepted) {
        let bit = 1u32 << (f.check as u32);
        if ex.is_some() {
            seen_excepted |= bit;
            continue;
        }
        let first = seen_checks & bit == 0;
        seen_checks |= bit;
        t.finding_rows[f.check as usize] += 1;
        if first {
            t.findings[f.check as usize] += 1;
        }
        let cred_slot = match f.check {
            CheckId::CredentialUnrotated => Some((0, &mut t.unrotated)),
            CheckId::CredentialExpired => Some((1, &mut t.expired)),
            CheckId::CredentialExpiring => Some((2, &mut t.expiring)),
            _ => None,
        };
        if let (Some((slot, arr)), Some(ct)) = (cred_slot, f.credential_type) {
            let cb = 1u8 << (ct as u8);
            if seen_cred[slot] & cb == 0 {
                seen_cred[slot] |= cb;
                arr[ty][ct as usize] += 1;
            }
        }
        if !first {
            continue;
        }
        match f.check {
            CheckId::DormantInactive => t.dormant[ty][pr][0] += 1,
            CheckId::DormantNeverLoggedIn => t.dormant[ty][pr][1] += 1,
            CheckId::DormantTerminated => t.dormant[ty][pr][2] += 1,
            CheckId::PrivilegeRoleNotAllowed => t.overprivileged[ty][0] += 1,
            CheckId::PrivilegeUnused => t.overprivileged[ty][1] += 1,
            CheckId::PrivilegeNoMfa => t.overprivileged[ty][2] += 1,
            CheckId::PrivilegeServiceAccountAdmin => t.overprivileged[ty][3] += 1,
            _ => {}
        }
    }
    let only_excepted = seen_excepted & !seen_checks;
    for c in CheckId::ALL {
        if only_excepted & (1u32 << (c as u32)) != 0 {
            t.excepted[c as usize] += 1;
        }
    }
}

/// Status and credential type helpers for renderers.
pub fn status_name(i: usize) -> &'static str {
    Status::ALL[i].as_str()
}
pub fn credential_name(i: usize) -> &'static str {
    CredentialType::ALL[i].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testutil::*;
    use crate::checks::Severity;
    use crate::model::*;

    fn policy(toml: &str) -> Policy {
        let raw: crate::config::RawPolicy = figment::Figment::new()
            .merge(<figment::providers::Toml as figment::providers::Format>::string(toml))
            .extract()
            .unwrap();
        let mut e = Vec::new();
        let p = Policy::from_raw(&raw, None, "policy", &mut e);
        assert!(e.is_empty(), "{e:?}");
        p
    }

    fn no_mfa(login: &str) -> Account {
        let mut a = active(login);
        a.mfa = Some(Mfa::default());
        a
    }

    fn with(p: Policy, now: Timestamp, accts: Vec<Account>) -> Report {
        let mut b = ReportBuilder::new(p, now, true);
        for a in accts {
            b.push(a);
        }
        b.finish(PollOutput::default())
    }

    #[test]
    fn a_disabled_check_finds_nothing_and_a_severity_can_change() {
        let p = policy(
            r#"[checks."mfa.missing"]
enabled = false
[checks."tenant.too_few_super_admins"]
severity = "low"
"#,
        );
        let r = with(p, NOW, vec![no_mfa("a"), active("b")]);
        assert_eq!(r.tally.findings[CheckId::MfaMissing as usize], 0);
        assert!(r.findings.iter().all(|f| f.check != CheckId::MfaMissing));
        assert_eq!(r.tally.compliant, 2, "a has no other finding");
        // The MFA gauges describe factors, not findings: still counted.
        assert_eq!(r.tally.without_mfa[0][0], 1);
        assert_eq!(
            r.policy.severity(CheckId::TenantTooFewSuperAdmins),
            Severity::Low
        );
        let default = with(Policy::default(), NOW, vec![no_mfa("a")]);
        assert_eq!(default.tally.findings[CheckId::MfaMissing as usize], 1);
    }

    #[test]
    fn exceptions_are_counted_apart_listed_with_reason_and_expire() {
        let p = policy(
            r#"[[exceptions]]
check = "mfa.missing"
account = "kiosk-*"
reason = "shared kiosk, badge-only sign-in"
owner = "it-ops@example.com"
expires = "2026-12-31"
[[exceptions]]
check = "mfa.missing"
account = "u-42"
reason = "hardware key on order"
owner = "sec@example.com"
expires = "2026-12-01T00:00:00Z"
"#,
        );
        let mut by_id = no_mfa("dana@example.com");
        by_id.id = "u-42".into();
        let accts = || vec![no_mfa("kiosk-1"), by_id.clone(), no_mfa("bob")];
        let r = with(p.clone(), NOW, accts());
        assert_eq!(
            r.tally.findings[CheckId::MfaMissing as usize],
            1,
            "only bob"
        );
        assert_eq!(r.tally.excepted[CheckId::MfaMissing as usize], 2);
        assert_eq!(r.tally.finding_rows[CheckId::MfaMissing as usize], 1);
        let kiosk = r
            .findings
            .iter()
            .find(|f| r.account_id(f) == "kiosk-1")
            .unwrap();
        let rec = r.record("s", "file", kiosk);
        assert!(rec.excepted);
        assert_eq!(
            rec.exception_reason,
            Some("shared kiosk, badge-only sign-in")
        );
        assert_eq!(rec.exception_owner, Some("it-ops@example.com"));
        assert!(!r.counts(kiosk));
        // Excepted findings do not make an account non-compliant.
        assert_eq!(r.tally.compliant, 2);

        // Past the second exception's expiry, dana's finding counts again.
        let later = time::macros::datetime!(2026-12-02 00:00 UTC);
        let r = with(p.clone(), later, accts());
        assert_eq!(r.tally.findings[CheckId::MfaMissing as usize], 2);
        assert_eq!(r.tally.excepted[CheckId::MfaMissing as usize], 1);
        // And past both, every finding counts.
        let r = with(p, time::macros::datetime!(2027-01-01 00:00 UTC), accts());
        assert_eq!(r.tally.findings[CheckId::MfaMissing as usize], 3);
        assert_eq!(r.tally.excepted[CheckId::MfaMissing as usize], 0);
    }

    #[test]
    fn unknown_factor_statuses_are_not_active_and_counted() {
        let a: Account = serde_json::from_str(
            r#"{"id":"1","login":"a","account_type":"human","status":"active","last_login":null,
                "mfa":{"factors":[{"type":"push","status":"pending_activation"}]}}"#,
        )
        .unwrap();
        let r = with(Policy::default(), NOW, vec![a]);
        assert_eq!(r.tally.factors_unrecognized, 1);
        assert_eq!(r.tally.findings[CheckId::MfaMissing as usize], 1);
    }

    #[test]
    fn an_account_with_two_stale_keys_counts_once_per_type() {
        let mut a = active("svc");
        a.account_type = AccountType::Service;
        let k = |id: &str, t| Credential {
            credential_type: t,
            id: id.into(),
            last_rotated: Known::At(days_ago(400)),
            expires: Known::Unknown,
            last_used: Known::Unknown,
        };
        a.credentials = Some(vec![
            k("a", CredentialType::AccessKey),
            k("b", CredentialType::AccessKey),
            k("c", CredentialType::Password),
        ]);
        // Password age is opt-in (NIST SP 800-63B): turned on here.
        let p = policy(
            r#"password_max_age_days = 365
"#,
        );
        let mut b = ReportBuilder::new(p, NOW, true);
        b.push(a);
        let r = b.finish(PollOutput::default());
        assert_eq!(r.tally.unrotated[1][CredentialType::AccessKey as usize], 1);
        assert_eq!(r.tally.unrotated[1][CredentialType::Password as usize], 1);
        assert_eq!(r.tally.findings[CheckId::CredentialUnrotated as usize], 1);
        let listed = r.findings.iter().filter(|f| f.account.is_some()).count();
        assert_eq!(listed, 3, "every key is still listed in the API");
        assert_eq!(r.tally.compliant_ratio(), 0.0);
    }

    #[test]
    fn excluded_accounts_are_counted_but_never_flagged() {
        let raw = crate::config::RawPolicy {
            exclude_accounts: Some(vec!["bg-*".into()]),
            ..Default::default()
        };
        let mut e = vec![];
        let p = Policy::from_raw(&raw, None, "p", &mut e);
        let mut b = ReportBuilder::new(p, NOW, true);
        let mut bg = active("bg-1");
        bg.mfa = Some(Mfa::default());
        bg.roles = Some(vec![Role {
            name: "SUPER_ADMIN".into(),
            last_used: Known::Unknown,
        }]);
        b.push(bg);
        b.push(active("ok"));
        let r = b.finish(PollOutput::default());
        assert_eq!(r.tally.excluded, 1);
        assert_eq!(r.tally.without_mfa, [[0, 0], [0, 0]]);
        assert_eq!(r.tally.findings[CheckId::MfaMissing as usize], 0);
        assert_eq!(r.tally.active, [1, 0]);
        assert_eq!(r.tally.compliant_ratio(), 1.0);
        assert_eq!(
            r.tally.super_admins, 1,
            "break-glass admins are still admins"
        );
        assert!(r.meta[0].excluded);
        // Its findings are still listed for the API.
        assert!(r.findings.iter().any(|f| f.account == Some(0)));
        // 1 super admin < 2: tenant finding.
        assert_eq!(
            r.tally.findings[CheckId::TenantTooFewSuperAdmins as usize],
            1
        );
    }

    #[test]
    fn sources_without_a_super_admin_role_skip_the_admin_counts() {
        let mut b = ReportBuilder::new(Policy::default(), NOW, true);
        b.push(active("a")); // roles known, no admin: 0 < min 2
        let out = PollOutput {
            tenant: TenantFacts {
                no_super_admin_role: true,
                ..TenantFacts::default()
            },
            ..PollOutput::default()
        };
        let r = b.finish(out);
        assert_eq!(
            r.tally.findings[CheckId::TenantTooFewSuperAdmins as usize],
            0
        );
        let mut b = ReportBuilder::new(Policy::default(), NOW, true);
        b.push(active("a"));
        let r = b.finish(PollOutput::default());
        assert_eq!(
            r.tally.findings[CheckId::TenantTooFewSuperAdmins as usize],
            1
        );
    }

    #[test]
    fn future_timestamps_are_counted_per_field_and_judged_as_now() {
        let far = NOW + time::Duration::days(365 * 70);
        let mut a = active("svc-future");
        a.created = Some(far);
        a.last_login = Known::At(far);
        a.credentials = Some(vec![
            Credential {
                credential_type: CredentialType::AccessKey,
                id: "k1".into(),
                last_rotated: Known::At(far),
                expires: Known::Unknown,
                last_used: Known::At(far),
            },
            Credential {
                credential_type: CredentialType::AccessKey,
                id: "k2".into(),
                last_rotated: Known::At(far),
                expires: Known::Unknown,
                last_used: Known::Unknown,
            },
        ]);
        a.roles = Some(vec![Role {
            name: "SUPER_ADMIN".into(),
            last_used: Known::At(far),
        }]);
        let mut skewed = active("skewed");
        // Within the slack: a login during a long poll, or clock skew, is not counted.
        skewed.last_login = Known::At(NOW + time::Duration::hours(2));
        let r = with(Policy::default(), NOW, vec![skewed, a]);
        assert_eq!(r.tally.future_timestamps, [1, 1, 2, 2]);
        assert_eq!(
            r.tally.future_example,
            Some(("svc-future".to_string(), "created"))
        );
        // Treated as "now": no rotation, dormancy or unused-privilege finding, no negative days.
        let checks: Vec<CheckId> = r
            .findings
            .iter()
            .filter(|f| f.account == Some(1))
            .map(|f| f.check)
            .collect();
        assert!(
            !checks.contains(&CheckId::CredentialUnrotated),
            "{checks:?}"
        );
        assert!(!checks.contains(&CheckId::PrivilegeUnused), "{checks:?}");
        assert!(r.findings.iter().all(|f| f.days().unwrap_or(0) >= 0));
    }

    #[test]
    fn data_no_account_carries_is_unavailable_with_the_sources_reason() {
        let mut b = ReportBuilder::new(Policy::default(), NOW, false);
        let mut a = active("a");
        a.last_login = Known::Never;
        a.credentials = None;
        a.roles = None;
        b.push(a);
        let mut out = PollOutput::default();
        out.availability
            .if_absent(DataKind::Roles, "no roles column in the export");
        out.availability
            .set_missing(DataKind::Mfa, "refused: grant factors.read");
        let r = b.finish(out);
        let av = &r.availability;
        assert!(av.is_available(DataKind::LastLogin), "{av:?}");
        assert_eq!(av.missing[&DataKind::Mfa], "refused: grant factors.read");
        assert_eq!(
            av.missing[&DataKind::Roles],
            "no roles column in the export"
        );
        assert!(av.missing[&DataKind::Credentials].contains("no account"));
        // An empty poll says nothing about what a source can read.
        let r = ReportBuilder::new(Policy::default(), NOW, false).finish(PollOutput::default());
        assert!(r.availability.missing.is_empty());
    }

    #[test]
    fn an_account_returned_twice_counts_once() {
        let mut b = ReportBuilder::new(Policy::default(), NOW, true);
        let mut dup = active("a");
        dup.mfa = Some(Mfa::default());
        b.push(dup.clone());
        b.push(active("b"));
        b.push(dup);
        let r = b.finish(PollOutput::default());
        assert_eq!(r.tally.duplicates, 1);
        assert_eq!(r.tally.active, [2, 0]);
        assert_eq!(r.tally.without_mfa[0][0], 1);
        assert_eq!(r.accounts.len(), 2);
    }

    #[test]
    fn accounts_past_the_limit_are_refused_and_signalled() {
        let mut b = ReportBuilder::new(Policy::default(), NOW, false).with_max_accounts(2);
        let signal = b.limit_hit();
        for i in 0..3 {
            b.push(active(&format!("u{i}")));
        }
        assert!(b.over_limit());
        // The permit is stored: a poller that starts waiting later still sees it.
        futures_util::FutureExt::now_or_never(signal.notified()).expect("signalled");
        let r = b.finish(PollOutput::default());
        assert_eq!(r.tally.active, [2, 0]);
    }

    #[test]
    fn role_labels_are_capped() {
        let mut t = Tally::default();
        for i in 0..25 {
            t.privileged_roles
                .insert(format!("role{i:02}"), 100 - i as u64);
        }
        let l = t.role_labels();
        assert_eq!(l.len(), 20);
        let other = l.iter().find(|(n, _)| n == "other").unwrap().1;
        assert_eq!(other, (19..25).map(|i| 100 - i as u64).sum::<u64>());
    }
}
