//! The attack detectors: pure functions of the event stream over sliding windows, judged by
//! event time (the caller's clock only prunes). Each event updates per-IP and per-account
//! windows; a window reaching its threshold fires one detection per kind and key (the IP for
//! a spray, the account otherwise) for as long as the kind's window keeps it open, and later
//! qualifying events extend or escalate that detection instead of firing again. No I/O here:
//! the state is exported to and imported from the engine, which persists it.

use std::borrow::Cow;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::event::{EventKind, Outcome, SignInEvent, Stage};
use super::facts::AccountFacts;
use super::fx::{hash_str, FxHashMap};
use super::geo::distance_km;
use super::policy::ActivityPolicy;
use crate::model::{Severity, Timestamp};

/// The detectors, named as the product contract names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    PasswordSpray,
    BruteForce,
    MfaFatigue,
    NewCountry,
    ImpossibleTravel,
    InactiveAccountSignin,
    PrivilegedSigninWithoutMfa,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::PasswordSpray,
        Kind::BruteForce,
        Kind::MfaFatigue,
        Kind::NewCountry,
        Kind::ImpossibleTravel,
        Kind::InactiveAccountSignin,
        Kind::PrivilegedSigninWithoutMfa,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PasswordSpray => "password_spray",
            Kind::BruteForce => "brute_force",
            Kind::MfaFatigue => "mfa_fatigue",
            Kind::NewCountry => "new_country",
            Kind::ImpossibleTravel => "impossible_travel",
            Kind::InactiveAccountSignin => "inactive_account_signin",
            Kind::PrivilegedSigninWithoutMfa => "privileged_signin_without_mfa",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
    /// The severity a detection of this kind fires with.
    pub fn severity(self) -> Severity {
        match self {
            Kind::PasswordSpray => Severity::High,
            Kind::BruteForce => Severity::Medium,
            Kind::MfaFatigue => Severity::High,
            Kind::NewCountry => Severity::Low,
            Kind::ImpossibleTravel => Severity::High,
            Kind::InactiveAccountSignin => Severity::High,
            Kind::PrivilegedSigninWithoutMfa => Severity::Critical,
        }
    }
    /// Every severity a detection of this kind can have (brute force and MFA fatigue become
    /// critical when a success follows): the label pairs that are zero-filled.
    pub fn severities(self) -> &'static [Severity] {
        match self {
            Kind::BruteForce => &[Severity::Medium, Severity::Critical],
            Kind::MfaFatigue => &[Severity::High, Severity::Critical],
            Kind::PasswordSpray | Kind::ImpossibleTravel | Kind::InactiveAccountSignin => {
                &[Severity::High]
            }
            Kind::NewCountry => &[Severity::Low],
            Kind::PrivilegedSigninWithoutMfa => &[Severity::Critical],
        }
    }
}

/// One detection: what fired, on what, when, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Increasing per source (newest has the highest).
    pub id: u64,
    pub kind: Kind,
    pub severity: Severity,
    pub account_id: Option<String>,
    pub login: Option<String>,
    pub ip: Option<String>,
    pub country: Option<String>,
    /// The first event of the evidence.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: Timestamp,
    /// The newest event of the evidence.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: Timestamp,
    /// The event that crossed the threshold.
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: Timestamp,
    /// Events in the evidence.
    pub events: u64,
    pub evidence: String,
    /// Raised to critical by a success after it.
    pub escalated: bool,
}

impl Detection {
    /// Still inside its window at `now`: counted in `identity_posture_activity_detections`.
    pub fn active(&self, now: Timestamp, p: &ActivityPolicy) -> bool {
        now < self.last_seen + p.window(self.kind)
    }
}

/// What an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new detection (counted once in `…_detections_total`).
    Fired {
        id: u64,
        kind: Kind,
        severity: Severity,
    },
    /// An open detection raised to a higher severity (counted once more, at that severity).
    Escalated {
        id: u64,
        kind: Kind,
        severity: Severity,
    },
}

/// Why a sign-in counts as an inactive account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inactive {
    Dormant,
    Terminated,
}

/// What an event says for the health counters, as judged with the detectors' state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub inactive: Option<Inactive>,
    pub privileged_without_mfa: bool,
}

/// What the detectors need besides the event.
pub struct Ctx<'a> {
    pub policy: &'a ActivityPolicy,
    /// `[policy] dormant_after_days` of the source.
    pub dormant_after_days: u32,
    /// The first pass over history: builds the country baseline and fires no `new_country`.
    pub baseline: bool,
}

/// Detections kept for the API (the newest; active ones are never the ones dropped first,
/// since they are the newest).
pub const MAX_DETECTIONS: usize = 10_000;
/// Countries remembered per account.
pub const MAX_COUNTRIES: usize = 16;
/// Accounts (and unknown logins) tracked at once; past it new keys get no per-account
/// detection until pruning frees room.
pub const MAX_ACCOUNTS: usize = 5_000_000;
/// IPs with failures in the spray window tracked at once.
pub const MAX_IPS: usize = 2_000_000;
/// Events one key keeps in a window, whatever the threshold (a flood cannot grow memory).
pub const MAX_WINDOW: usize = 10_000;
/// Sign-in sessions remembered (Okta events of one sign-in share a session id).
pub const MAX_SESSIONS: usize = 1_000_000;
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// A listing's last login this close to an event may be that event itself.
const LISTING_SLACK_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

pub fn ms(t: Timestamp) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn dur_ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Where and when an account last signed in with coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    pub t: i64,
    pub lat: f64,
    pub lon: f64,
    pub country: Option<String>,
}

/// Per-account history that outlives the windows (persisted per account).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub id: Option<String>,
    pub login: Option<String>,
    /// Newest successful sign-in (unix ms).
    pub last_success: Option<i64>,
    /// Newest successful sign-in with coordinates.
    pub last_geo: Option<Geo>,
    /// Countries of successful sign-ins and when each was last seen (unix ms).
    pub countries: Vec<(String, i64)>,
}

impl History {
    fn is_empty(&self) -> bool {
        self.last_success.is_none() && self.last_geo.is_none() && self.countries.is_empty()
    }
}

#[derive(Debug, Default)]
struct AcctState {
    /// The account's key (the map is keyed by its [`hash_str`]: one lookup per event, no
    /// string hashed twice).
    key: Box<str>,
    hist: History,
    failures: VecDeque<i64>,
    denials: VecDeque<i64>,
    dirty: bool,
}

#[derive(Debug, Default)]
struct IpState {
    /// The address (the map is keyed by its [`hash_str`]).
    ip: Box<str>,
    /// (time, account hash), oldest first.
    events: VecDeque<(i64, u64)>,
    /// Failures per distinct account in the window.
    counts: FxHashMap<u64, u32>,
    /// Up to 10 of the accounts, for the evidence.
    logins: Vec<(u64, String)>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Session {
    t: i64,
    primary_ok: bool,
    mfa_ok: bool,
}

/// Inserts `t` keeping the deque sorted (events mostly arrive in order: O(1) then).
fn insert_sorted(q: &mut VecDeque<i64>, t: i64) {
    if q.back().is_none_or(|b| *b <= t) {
        q.push_back(t);
    } else {
        let i = q.partition_point(|x| *x <= t);
        q.insert(i, t);
    }
    if q.len() > MAX_WINDOW {
        q.pop_front();
    }
}

fn prune_before(q: &mut VecDeque<i64>, cutoff: i64) {
    while q.front().is_some_and(|f| *f < cutoff) {
        q.pop_front();
    }
}

/// The detectors' state for one source.
#[derive(Debug, Default)]
pub struct Detector {
    /// By `hash_str` of the account key (64 bits, full avalanche: the same identity the
    /// windows and open detections already use).
    accounts: FxHashMap<u64, AcctState>,
    /// By `hash_str` of the address.
    ips: FxHashMap<u64, IpState>,
    sessions: FxHashMap<u64, Session>,
    open: FxHashMap<(Kind, u64), u64>,
    detections: VecDeque<Detection>,
    next_id: u64,
}

/// How an event names its account: the canonical key (the listing's id when the listing
/// knows the account, else the event's id, else the lower-cased login), id and login.
struct Who<'a> {
    key: Cow<'a, str>,
    id: Option<&'a str>,
    login: Option<&'a str>,
}

fn who<'a>(e: &'a SignInEvent, f: Option<&'a AccountFacts>) -> Option<Who<'a>> {
    if let Some(f) = f {
        return Some(Who {
            key: Cow::Borrowed(f.id.as_str()),
            id: Some(f.id.as_str()),
            login: Some(f.login.as_str()),
        });
    }
    match (e.account_id.as_deref(), e.login.as_deref()) {
        (Some(id), login) => Some(Who {
            key: Cow::Borrowed(id),
            id: Some(id),
            login,
        }),
        (None, Some(l)) => Some(Who {
            key: if l.bytes().any(|b| b.is_ascii_uppercase()) || !l.is_ascii() {
                Cow::Owned(format!("login:{}", l.to_lowercase()))
            } else {
                Cow::Owned(format!("login:{l}"))
            },
            id: None,
            login: Some(l),
        }),
        (None, None) => None,
    }
}

impl Detector {
    pub fn new() -> Detector {
        Detector::default()
    }

    /// The account's state (`h`: `hash_str` of its key), created at first sight: one lookup.
    fn account(&mut self, w: &Who<'_>, h: u64) -> Option<&mut AcctState> {
        let full = self.accounts.len() >= MAX_ACCOUNTS;
        let a = match self.accounts.entry(h) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => return None,
            std::collections::hash_map::Entry::Vacant(v) => v.insert(AcctState {
                key: w.key.as_ref().into(),
                ..AcctState::default()
            }),
        };
        if a.hist.id.is_none() {
            if let Some(id) = w.id {
                a.hist.id = Some(id.to_string());
            }
        }
        if a.hist.login.is_none() {
            if let Some(l) = w.login {
                a.hist.login = Some(l.to_string());
            }
        }
        Some(a)
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.detections.binary_search_by_key(&id, |d| d.id).ok()
    }

    fn detection_mut(&mut self, id: u64) -> Option<&mut Detection> {
        let i = self.index_of(id)?;
        self.detections.get_mut(i)
    }

    /// The open detection of `kind` on `key` that an event at `t` still belongs to.
    fn open_at(&self, kind: Kind, key: u64, t: i64, p: &ActivityPolicy) -> Option<u64> {
        let id = *self.open.get(&(kind, key))?;
        let d = &self.detections[self.index_of(id)?];
        (t <= ms(d.last_seen) + dur_ms(p.window(kind))).then_some(id)
    }

    /// Fires a detection of `kind` on `key`, or extends the open one: `make` builds a new
    /// one, `update` refreshes an existing one. Returns the detection's id.
    #[allow(clippy::too_many_arguments)]
    fn fire(
        &mut self,
        kind: Kind,
        key: u64,
        t: i64,
        p: &ActivityPolicy,
        out: &mut Vec<Change>,
        make: impl FnOnce(u64) -> Detection,
        update: impl FnOnce(&mut Detection),
    ) -> u64 {
        if let Some(id) = self.open_at(kind, key, t, p) {
            if let Some(d) = self.detection_mut(id) {
                update(d);
                if ms(d.last_seen) < t {
                    d.last_seen = from_ms(t);
                }
            }
            return id;
        }
        self.next_id += 1;
        let id = self.next_id;
        let d = make(id);
        out.push(Change::Fired {
            id,
            kind,
            severity: d.severity,
        });
        self.detections.push_back(d);
        self.open.insert((kind, key), id);
        while self.detections.len() > MAX_DETECTIONS {
            if let Some(old) = self.detections.pop_front() {
                let k = self
                    .open
                    .iter()
                    .find(|(_, v)| **v == old.id)
                    .map(|(k, _)| *k);
                if let Some(k) = k {
                    self.open.remove(&k);
                }
            }
        }
        id
    }

    fn escalate(
        &mut self,
        kind: Kind,
        key: u64,
        t: i64,
        p: &ActivityPolicy,
        note: impl FnOnce() -> String,
        out: &mut Vec<Change>,
    ) {
        let Some(id) = self.open_at(kind, key, t, p) else {
            return;
        };
        let Some(d) = self.detection_mut(id) else {
            return;
        };
        if d.escalated || t < ms(d.first_seen) {
            return;
        }
        d.escalated = true;
        d.severity = Severity::Critical;
        d.evidence.push_str(&note());
        if ms(d.last_seen) < t {
            d.last_seen = from_ms(t);
        }
        out.push(Change::Escalated {
            id,
            kind,
            severity: Severity::Critical,
        });
    }

    /// Judges one event. Events of one batch should come oldest first (the engine sorts
    /// them); a late event is still placed in its windows by its own time.
    pub fn process(
        &mut self,
        e: &SignInEvent,
        facts: Option<&AccountFacts>,
        ctx: &Ctx<'_>,
        out: &mut Vec<Change>,
    ) -> Verdict {
        let mut v = Verdict::default();
        if e.kind != EventKind::Auth {
            return v;
        }
        let p = ctx.policy;
        let t = ms(e.time);
        let w = who(e, facts);
        let acct_hash = w.as_ref().map(|w| hash_str(&w.key));
        let mfa = self.resolve_mfa(e, t);

        match e.result {
            Outcome::Failure | Outcome::LockedOut if e.stage != Stage::Mfa => {
                if let (Some(ip), Some(h), true) =
                    (e.ip.as_deref(), acct_hash, p.enabled(Kind::PasswordSpray))
                {
                    self.spray(ip, t, h, w.as_ref().and_then(|w| w.login), e, p, out);
                }
                if e.result == Outcome::Failure {
                    if let (Some(w), Some(h)) = (&w, acct_hash) {
                        self.brute(w, h, t, e, p, out);
                    }
                }
            }
            Outcome::Failure => {
                if let (Some(w), Some(h)) = (&w, acct_hash) {
                    self.brute(w, h, t, e, p, out);
                }
            }
            Outcome::MfaDenied | Outcome::MfaTimeout => {
                if let (Some(w), Some(h)) = (&w, acct_hash) {
                    self.fatigue(w, h, t, e, p, out);
                }
            }
            Outcome::Success => {
                if let (Some(w), Some(h)) = (&w, acct_hash) {
                    v = self.success(w, h, t, e, facts, mfa, ctx, out);
                }
            }
            Outcome::Blocked | Outcome::LockedOut => {}
        }
        v
    }

    /// Whether a successful event satisfied MFA: the provider's word, the MFA step itself,
    /// or (Okta) the session it belongs to — a session whose password step succeeded and
    /// that reached an app with no MFA step in between did not use MFA.
    fn resolve_mfa(&mut self, e: &SignInEvent, t: i64) -> Option<bool> {
        let session = e.session.as_deref().map(hash_str);
        if let Some(h) = session {
            if self.sessions.len() < MAX_SESSIONS || self.sessions.contains_key(&h) {
                let s = self.sessions.entry(h).or_default();
                s.t = s.t.max(t);
                if e.result == Outcome::Success {
                    match e.stage {
                        Stage::Primary => s.primary_ok = true,
                        Stage::Mfa => s.mfa_ok = true,
                        Stage::Complete => {}
                    }
                }
            }
        }
        if e.result != Outcome::Success {
            return e.mfa;
        }
        if e.mfa.is_some() {
            return e.mfa;
        }
        match e.stage {
            Stage::Mfa => Some(true),
            Stage::Primary => None,
            Stage::Complete => {
                let s = self.sessions.get(&session?)?;
                if s.mfa_ok {
                    Some(true)
                } else if s.primary_ok {
                    Some(false)
                } else {
                    None
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spray(
        &mut self,
        ip: &str,
        t: i64,
        acct: u64,
        login: Option<&str>,
        e: &SignInEvent,
        p: &ActivityPolicy,
        out: &mut Vec<Change>,
    ) {
        let window = dur_ms(p.password_spray_window);
        let ipkey = hash_str(ip);
        let full = self.ips.len() >= MAX_IPS;
        let st = match self.ips.entry(ipkey) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => return,
            std::collections::hash_map::Entry::Vacant(v) => v.insert(IpState {
                ip: ip.into(),
                ..IpState::default()
            }),
        };
        if st.events.back().is_none_or(|b| b.0 <= t) {
            st.events.push_back((t, acct));
        } else {
            let i = st.events.partition_point(|x| x.0 <= t);
            st.events.insert(i, (t, acct));
        }
        let c = st.counts.entry(acct).or_insert(0);
        *c += 1;
        if *c == 1 && st.logins.len() < 10 {
            if let Some(l) = login {
                st.logins.push((acct, l.to_string()));
            }
        }
        let cutoff = t - window;
        while st.events.len() > MAX_WINDOW || st.events.front().is_some_and(|f| f.0 < cutoff) {
            let Some((_, a)) = st.events.pop_front() else {
                break;
            };
            if let Some(n) = st.counts.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    st.counts.remove(&a);
                    st.logins.retain(|(h, _)| *h != a);
                }
            }
        }
        let distinct = st.counts.len();
        if distinct < p.password_spray_accounts as usize {
            return;
        }
        let first = st.events.front().map(|f| f.0).unwrap_or(t);
        let failures = st.events.len() as u64;
        let mut sample: Vec<&str> = st.logins.iter().map(|(_, l)| l.as_str()).collect();
        sample.sort_unstable();
        let evidence = format!(
            "{distinct} distinct accounts failed to sign in from {ip} within {} ({failures} failures); accounts include {}",
            human(p.password_spray_window),
            sample.join(", ")
        );
        let country = e.country.clone();
        let ev2 = evidence.clone();
        self.fire(
            Kind::PasswordSpray,
            ipkey,
            t,
            p,
            out,
            |id| Detection {
                id,
                kind: Kind::PasswordSpray,
                severity: Kind::PasswordSpray.severity(),
                account_id: None,
                login: None,
                ip: Some(ip.to_string()),
                country,
                first_seen: from_ms(first),
                last_seen: from_ms(t),
                detected_at: from_ms(t),
                events: failures,
                evidence: ev2,
                escalated: false,
            },
            |d| {
                d.events = d.events.max(failures);
                d.evidence = evidence;
            },
        );
    }

    fn brute(
        &mut self,
        w: &Who<'_>,
        key: u64,
        t: i64,
        e: &SignInEvent,
        p: &ActivityPolicy,
        out: &mut Vec<Change>,
    ) {
        if !p.enabled(Kind::BruteForce) {
            return;
        }
        let window = dur_ms(p.brute_force_window);
        let Some(a) = self.account(w, key) else {
            return;
        };
        insert_sorted(&mut a.failures, t);
        prune_before(&mut a.failures, t - window);
        let n = a.failures.len();
        if n < p.brute_force_failures as usize {
            return;
        }
        let first = a.failures.front().copied().unwrap_or(t);
        let (id, login) = (a.hist.id.clone(), a.hist.login.clone());
        let evidence = format!("{n} failed sign-ins within {}", human(p.brute_force_window));
        let ev2 = evidence.clone();
        let (ip, country) = (e.ip.clone(), e.country.clone());
        self.fire(
            Kind::BruteForce,
            key,
            t,
            p,
            out,
            |i| Detection {
                id: i,
                kind: Kind::BruteForce,
                severity: Kind::BruteForce.severity(),
                account_id: id,
                login,
                ip,
                country,
                first_seen: from_ms(first),
                last_seen: from_ms(t),
                detected_at: from_ms(t),
                events: n as u64,
                evidence: ev2,
                escalated: false,
            },
            |d| {
                if !d.escalated {
                    d.evidence = evidence;
                }
                d.events = d.events.max(n as u64);
            },
        );
    }

    fn fatigue(
        &mut self,
        w: &Who<'_>,
        key: u64,
        t: i64,
        e: &SignInEvent,
        p: &ActivityPolicy,
        out: &mut Vec<Change>,
    ) {
        if !p.enabled(Kind::MfaFatigue) {
            return;
        }
        let window = dur_ms(p.mfa_fatigue_window);
        let Some(a) = self.account(w, key) else {
            return;
        };
        insert_sorted(&mut a.denials, t);
        prune_before(&mut a.denials, t - window);
        let n = a.denials.len();
        if n < p.mfa_fatigue_denials as usize {
            return;
        }
        let first = a.denials.front().copied().unwrap_or(t);
        let (id, login) = (a.hist.id.clone(), a.hist.login.clone());
        let evidence = format!(
            "{n} MFA challenges denied or unanswered within {}",
            human(p.mfa_fatigue_window)
        );
        let ev2 = evidence.clone();
        let (ip, country) = (e.ip.clone(), e.country.clone());
        self.fire(
            Kind::MfaFatigue,
            key,
            t,
            p,
            out,
            |i| Detection {
                id: i,
                kind: Kind::MfaFatigue,
                severity: Kind::MfaFatigue.severity(),
                account_id: id,
                login,
                ip,
                country,
                first_seen: from_ms(first),
                last_seen: from_ms(t),
                detected_at: from_ms(t),
                events: n as u64,
                evidence: ev2,
                escalated: false,
            },
            |d| {
                if !d.escalated {
                    d.evidence = evidence;
                }
                d.events = d.events.max(n as u64);
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn success(
        &mut self,
        w: &Who<'_>,
        key: u64,
        t: i64,
        e: &SignInEvent,
        facts: Option<&AccountFacts>,
        mfa: Option<bool>,
        ctx: &Ctx<'_>,
        out: &mut Vec<Change>,
    ) -> Verdict {
        let p = ctx.policy;
        let mut v = Verdict::default();
        // Text for the evidence, made only when a detection fires or escalates (most
        // successes fire nothing: formatting them all was most of a success's cost).
        let at = || crate::model::format_ts(e.time);
        let from = || {
            e.ip.as_deref()
                .map(|ip| format!(" from {ip}"))
                .unwrap_or_default()
        };

        // A success after a brute force: the password was guessed.
        if p.enabled(Kind::BruteForce) {
            self.escalate(
                Kind::BruteForce,
                key,
                t,
                p,
                || format!(" — then a successful sign-in at {}{}", at(), from()),
                out,
            );
        }
        // An approval after MFA fatigue (the MFA step itself, or a whole sign-in with MFA).
        let approval = match e.stage {
            Stage::Mfa => true,
            Stage::Complete => mfa != Some(false),
            Stage::Primary => false,
        };
        if approval && p.enabled(Kind::MfaFatigue) {
            self.escalate(
                Kind::MfaFatigue,
                key,
                t,
                p,
                || format!(" — then an MFA approval at {}{}", at(), from()),
                out,
            );
        }

        let Some(a) = self.account(w, key) else {
            return v;
        };
        let previous_success = a.hist.last_success.filter(|s| *s < t);

        // Country history: prune, judge, record.
        let mut new_country: Option<(String, Vec<String>)> = None;
        if let Some(c) = e.country.as_deref() {
            let horizon = t - i64::from(p.new_country_days) * DAY_MS;
            a.hist.countries.retain(|(_, seen)| *seen >= horizon);
            match a
                .hist
                .countries
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(c))
            {
                Some((_, seen)) => *seen = (*seen).max(t),
                None => {
                    if !a.hist.countries.is_empty() && !ctx.baseline {
                        let mut known: Vec<String> =
                            a.hist.countries.iter().map(|(k, _)| k.clone()).collect();
                        known.sort();
                        new_country = Some((c.to_string(), known));
                    }
                    a.hist.countries.push((c.to_string(), t));
                    if a.hist.countries.len() > MAX_COUNTRIES {
                        if let Some(oldest) = a
                            .hist
                            .countries
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, (_, s))| *s)
                            .map(|(i, _)| i)
                        {
                            a.hist.countries.remove(oldest);
                        }
                    }
                }
            }
        }
        // Travel: against the newest success with coordinates.
        let mut travel: Option<(f64, f64, Geo)> = None;
        if let Some((lat, lon)) = e.coords() {
            // (Read in place: cloning the last location for every success was a heap
            // allocation per event.)
            if let Some(prev) = &a.hist.last_geo {
                // (The same place again, the usual case, is 0 km without the trigonometry.)
                let d = if prev.lat == lat && prev.lon == lon {
                    0.0
                } else {
                    distance_km((prev.lat, prev.lon), (lat, lon))
                };
                let hours = (t - prev.t).abs() as f64 / 3_600_000.0;
                let speed = if hours > 0.0 {
                    d / hours
                } else {
                    f64::INFINITY
                };
                if d >= p.impossible_travel_min_km && speed > p.impossible_travel_kmh {
                    travel = Some((d, speed, prev.clone()));
                }
            }
            match &mut a.hist.last_geo {
                Some(g) if g.t <= t => {
                    g.t = t;
                    g.lat = lat;
                    g.lon = lon;
                    if g.country != e.country {
                        g.country = e.country.clone();
                    }
                }
                Some(_) => {}
                None => {
                    a.hist.last_geo = Some(Geo {
                        t,
                        lat,
                        lon,
                        country: e.country.clone(),
                    });
                }
            }
        }
        if a.hist.last_success.is_none_or(|s| s < t) {
            a.hist.last_success = Some(t);
        }
        a.dirty = true;

        // Inactive: a leaver, or an account whose previous sign-in is older than dormant.
        let terminated = facts.and_then(|f| {
            if f.deprovisioned {
                Some("the account is deprovisioned".to_string())
            } else {
                f.terminated
                    .filter(|d| ms(*d) <= t)
                    .map(|d| format!("terminated on {}", crate::model::format_ts(d)))
            }
        });
        let listed = facts
            .and_then(|f| f.last_login)
            .map(ms)
            .filter(|l| *l < t - LISTING_SLACK_MS);
        let previous = match (previous_success, listed) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let dormant_ms = i64::from(ctx.dormant_after_days) * DAY_MS;
        let inactive = if let Some(why) = terminated {
            Some((Inactive::Terminated, why))
        } else {
            previous.filter(|prev| t - prev > dormant_ms).map(|prev| {
                (
                    Inactive::Dormant,
                    format!(
                        "previous sign-in {} ({} days before; dormant after {} days)",
                        crate::model::format_ts(from_ms(prev)),
                        (t - prev) / DAY_MS,
                        ctx.dormant_after_days
                    ),
                )
            })
        };
        let privileged = facts.is_some_and(|f| f.privileged) || e.admin == Some(true);
        let no_mfa = privileged && e.stage != Stage::Primary && mfa == Some(false);
        if new_country.is_none() && travel.is_none() && inactive.is_none() && !no_mfa {
            return v;
        }
        let (id, login) = (a.hist.id.clone(), a.hist.login.clone());
        let (at, from) = (at(), from());

        let base = |i: u64, kind: Kind, evidence: String, first: i64| Detection {
            id: i,
            kind,
            severity: kind.severity(),
            account_id: id.clone(),
            login: login.clone(),
            ip: e.ip.clone(),
            country: e.country.clone(),
            first_seen: from_ms(first),
            last_seen: from_ms(t),
            detected_at: from_ms(t),
            events: 1,
            evidence,
            escalated: false,
        };
        if let Some((c, known)) = new_country {
            if p.enabled(Kind::NewCountry) {
                let ev = format!(
                    "successful sign-in{from} from {c}, not seen for this account in the last {} days (seen: {})",
                    p.new_country_days,
                    known.join(", ")
                );
                self.fire(
                    Kind::NewCountry,
                    key,
                    t,
                    p,
                    out,
                    |i| base(i, Kind::NewCountry, ev, t),
                    |d| d.events += 1,
                );
            }
        }
        if let Some((d_km, speed, prev)) = travel {
            if p.enabled(Kind::ImpossibleTravel) {
                let ev = format!(
                    "{d_km:.0} km between {} at {} and {}{from} at {at}: {} (limit {:.0} km/h)",
                    prev.country.as_deref().unwrap_or("an earlier location"),
                    crate::model::format_ts(from_ms(prev.t)),
                    e.country.as_deref().unwrap_or("here"),
                    if speed.is_finite() {
                        format!("{speed:.0} km/h")
                    } else {
                        "at the same instant".to_string()
                    },
                    p.impossible_travel_kmh
                );
                let first = prev.t.min(t);
                self.fire(
                    Kind::ImpossibleTravel,
                    key,
                    t,
                    p,
                    out,
                    |i| base(i, Kind::ImpossibleTravel, ev, first),
                    |d| d.events += 1,
                );
            }
        }
        if let Some((reason, why)) = inactive {
            v.inactive = Some(reason);
            if p.enabled(Kind::InactiveAccountSignin) {
                let ev = format!("successful sign-in{from}: {why}");
                self.fire(
                    Kind::InactiveAccountSignin,
                    key,
                    t,
                    p,
                    out,
                    |i| base(i, Kind::InactiveAccountSignin, ev, t),
                    |d| d.events += 1,
                );
            }
        }
        if no_mfa {
            v.privileged_without_mfa = true;
            if p.enabled(Kind::PrivilegedSigninWithoutMfa) {
                let ev = format!(
                    "an account holding an administrative role signed in{from} without MFA (factor: {})",
                    e.factor.as_str()
                );
                self.fire(
                    Kind::PrivilegedSigninWithoutMfa,
                    key,
                    t,
                    p,
                    out,
                    |i| base(i, Kind::PrivilegedSigninWithoutMfa, ev, t),
                    |d| d.events += 1,
                );
            }
        }
        v
    }

    /// Drops what no window can need any more at `now` (and what a key no longer needs).
    pub fn prune(&mut self, now: Timestamp, p: &ActivityPolicy) {
        let now = ms(now);
        let spray = now - dur_ms(p.password_spray_window);
        self.ips
            .retain(|_, s| s.events.back().is_some_and(|b| b.0 >= spray));
        let brute = now - dur_ms(p.brute_force_window);
        let fatigue = now - dur_ms(p.mfa_fatigue_window);
        self.accounts.retain(|_, a| {
            prune_before(&mut a.failures, brute);
            prune_before(&mut a.denials, fatigue);
            a.failures.shrink_to_fit();
            a.denials.shrink_to_fit();
            !(a.failures.is_empty() && a.denials.is_empty() && a.hist.is_empty())
        });
        let session = now - SESSION_TTL_MS;
        self.sessions.retain(|_, s| s.t >= session);
        let detections = &self.detections;
        self.open.retain(|(kind, _), id| {
            detections
                .binary_search_by_key(id, |d| d.id)
                .ok()
                .is_some_and(|i| ms(detections[i].last_seen) + dur_ms(p.window(*kind)) >= now)
        });
    }

    /// Every detection kept, oldest first.
    pub fn detections(&self) -> &VecDeque<Detection> {
        &self.detections
    }

    /// (accounts, IPs, sessions, events in windows): what is held in memory.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        let window_events = self
            .accounts
            .values()
            .map(|a| a.failures.len() + a.denials.len())
            .sum::<usize>()
            + self.ips.values().map(|s| s.events.len()).sum::<usize>();
        (
            self.accounts.len(),
            self.ips.len(),
            self.sessions.len(),
            window_events,
        )
    }

    /// Account histories changed since the last call (to persist), clearing the marks.
    pub fn take_dirty(&mut self) -> Vec<(String, History)> {
        let mut v = Vec::new();
        for a in self.accounts.values_mut() {
            if a.dirty {
                a.dirty = false;
                v.push((a.key.to_string(), a.hist.clone()));
            }
        }
        v
    }

    /// The windows and detections (persisted whole each poll; bounded by the windows).
    pub fn export(&self) -> Windows {
        Windows {
            accounts: self
                .accounts
                .values()
                .filter(|a| !(a.failures.is_empty() && a.denials.is_empty()))
                .map(|a| AccountWindow {
                    key: a.key.to_string(),
                    failures: a.failures.iter().copied().collect(),
                    denials: a.denials.iter().copied().collect(),
                })
                .collect(),
            ips: self
                .ips
                .values()
                .map(|s| IpWindow {
                    ip: s.ip.to_string(),
                    events: s.events.iter().copied().collect(),
                    logins: s.logins.clone(),
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(k, s)| (*k, s.t, s.primary_ok, s.mfa_ok))
                .collect(),
            open: self.open.iter().map(|((k, h), id)| (*k, *h, *id)).collect(),
            detections: self.detections.iter().cloned().collect(),
            next_id: self.next_id,
        }
    }

    /// Rebuilds the state from what [`Detector::export`] and [`Detector::take_dirty`] saved.
    pub fn import(w: Windows, histories: Vec<(String, History)>) -> Detector {
        let mut d = Detector::new();
        for (k, h) in histories {
            d.accounts.insert(
                hash_str(&k),
                AcctState {
                    key: k.into_boxed_str(),
                    hist: h,
                    ..AcctState::default()
                },
            );
        }
        for a in w.accounts {
            let st = d
                .accounts
                .entry(hash_str(&a.key))
                .or_insert_with(|| AcctState {
                    key: a.key.as_str().into(),
                    ..AcctState::default()
                });
            let mut f = a.failures;
            f.sort_unstable();
            let mut dn = a.denials;
            dn.sort_unstable();
            st.failures = f.into_iter().collect();
            st.denials = dn.into_iter().collect();
        }
        for s in w.ips {
            let mut st = IpState {
                ip: s.ip.as_str().into(),
                ..IpState::default()
            };
            let mut ev = s.events;
            ev.sort_unstable_by_key(|e| e.0);
            for (_, a) in &ev {
                *st.counts.entry(*a).or_insert(0) += 1;
            }
            st.logins = s
                .logins
                .into_iter()
                .filter(|(h, _)| st.counts.contains_key(h))
                .take(10)
                .collect();
            st.events = ev.into_iter().collect();
            d.ips.insert(hash_str(&s.ip), st);
        }
        for (k, t, p, m) in w.sessions {
            d.sessions.insert(
                k,
                Session {
                    t,
                    primary_ok: p,
                    mfa_ok: m,
                },
            );
        }
        let mut dets = w.detections;
        dets.sort_by_key(|x| x.id);
        dets.dedup_by_key(|x| x.id);
        d.next_id = w.next_id.max(dets.last().map(|x| x.id).unwrap_or(0));
        d.detections = dets.into_iter().collect();
        for (k, h, id) in w.open {
            if d.index_of(id).is_some() {
                d.open.insert((k, h), id);
            }
        }
        d
    }
}

/// One account's open windows, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountWindow {
    pub key: String,
    pub failures: Vec<i64>,
    pub denials: Vec<i64>,
}

/// One IP's spray window, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpWindow {
    pub ip: String,
    pub events: Vec<(i64, u64)>,
    pub logins: Vec<(u64, String)>,
}

/// Everything but the account histories.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    pub accounts: Vec<AccountWindow>,
    pub ips: Vec<IpWindow>,
    pub sessions: Vec<(u64, i64, bool, bool)>,
    pub open: Vec<(Kind, u64, u64)>,
    pub detections: Vec<Detection>,
    pub next_id: u64,
}

#[cfg(test)]
mod tests {
    //! Hand-worked sequences: each attack, its near miss, escalation, windows sliding.
    use super::*;
    use crate::activity::event::{FactorKind, Outcome, SignInEvent, Stage};
    use time::macros::datetime;
    use time::Duration as D;

    const T0: Timestamp = datetime!(2026-11-28 10:00 UTC);

    struct Run {
        d: Detector,
        p: ActivityPolicy,
        baseline: bool,
        changes: Vec<Change>,
        n: u64,
    }

    impl Run {
        fn new() -> Run {
            Run {
                d: Detector::new(),
                p: ActivityPolicy::default(),
                baseline: false,
                changes: Vec::new(),
                n: 0,
            }
        }
        fn feed(&mut self, e: SignInEvent, f: Option<&AccountFacts>) -> Verdict {
            let ctx = Ctx {
                policy: &self.p,
                dormant_after_days: 90,
                baseline: self.baseline,
            };
            self.d.process(&e, f, &ctx, &mut self.changes)
        }
        fn ev(&mut self, at: Timestamp, login: &str, r: Outcome, stage: Stage) -> SignInEvent {
            self.n += 1;
            let mut e = SignInEvent::new(format!("e{}", self.n), at, r);
            e.login = Some(login.into());
            e.stage = stage;
            e.ip = Some("198.51.100.7".into());
            e
        }
        fn fired(&self, k: Kind) -> Vec<Severity> {
            self.changes
                .iter()
                .filter_map(|c| match c {
                    Change::Fired { kind, severity, .. } if *kind == k => Some(*severity),
                    _ => None,
                })
                .collect()
        }
        fn escalated(&self, k: Kind) -> usize {
            self.changes
                .iter()
                .filter(|c| matches!(c, Change::Escalated { kind, .. } if *kind == k))
                .count()
        }
        fn only(&self, k: Kind) -> &Detection {
            let v: Vec<&Detection> = self.d.detections().iter().filter(|d| d.kind == k).collect();
            assert_eq!(v.len(), 1, "{v:?}");
            v[0]
        }
    }

    fn at(min: i64) -> Timestamp {
        T0 + D::minutes(min)
    }

    #[test]
    fn password_spray_fires_once_at_ten_distinct_accounts_within_an_hour() {
        let mut r = Run::new();
        // 9 accounts in 54 minutes: a near miss.
        for i in 0..9 {
            let e = r.ev(
                at(i * 6),
                &format!("u{i}@example.com"),
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        assert!(r.fired(Kind::PasswordSpray).is_empty());
        // The same account again does not make it ten.
        let e = r.ev(at(55), "u0@example.com", Outcome::Failure, Stage::Primary);
        r.feed(e, None);
        assert!(r.fired(Kind::PasswordSpray).is_empty());
        // The tenth distinct account, 58 minutes after the first: fires.
        let e = r.ev(at(58), "u9@example.com", Outcome::Failure, Stage::Primary);
        r.feed(e, None);
        assert_eq!(r.fired(Kind::PasswordSpray), vec![Severity::High]);
        // More failures from that IP extend the same detection.
        for i in 10..14 {
            let e = r.ev(
                at(59),
                &format!("u{i}@example.com"),
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        assert_eq!(r.fired(Kind::PasswordSpray).len(), 1);
        let d = r.only(Kind::PasswordSpray);
        assert_eq!(d.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(d.first_seen, at(0));
        assert_eq!(d.last_seen, at(59));
        assert!(
            d.evidence.starts_with("14 distinct accounts"),
            "{}",
            d.evidence
        );
        // MFA-step failures are not password spraying.
        let mut r = Run::new();
        for i in 0..12 {
            let e = r.ev(
                at(i),
                &format!("m{i}@example.com"),
                Outcome::Failure,
                Stage::Mfa,
            );
            r.feed(e, None);
        }
        assert!(r.fired(Kind::PasswordSpray).is_empty());
    }

    #[test]
    fn password_spray_window_slides_ten_accounts_over_sixty_one_minutes_is_a_near_miss() {
        let mut r = Run::new();
        // Ten accounts, 7 minutes apart: 63 minutes from first to last, and no 60-minute
        // span holds all ten.
        for i in 0..10 {
            let e = r.ev(
                at(i * 7),
                &format!("u{i}@example.com"),
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        assert!(r.fired(Kind::PasswordSpray).is_empty());
        // An eleventh at 63+7=70: the window [10, 70] holds u2..u10 = 9 accounts. Still none.
        let e = r.ev(at(70), "u10@example.com", Outcome::Failure, Stage::Primary);
        r.feed(e, None);
        assert!(r.fired(Kind::PasswordSpray).is_empty());
        // Two quick ones at 71: [11, 71] holds u2..u10 plus x1, x2 = 11 distinct. Fires.
        let e = r.ev(at(71), "x1@example.com", Outcome::Failure, Stage::Primary);
        r.feed(e, None);
        assert_eq!(r.fired(Kind::PasswordSpray).len(), 1);
    }

    #[test]
    fn brute_force_medium_then_critical_when_a_success_follows() {
        let mut r = Run::new();
        for i in 0..9 {
            let e = r.ev(
                at(i),
                "victim@example.com",
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        assert!(r.fired(Kind::BruteForce).is_empty(), "nine is a near miss");
        let e = r.ev(
            at(10),
            "victim@example.com",
            Outcome::Failure,
            Stage::Primary,
        );
        r.feed(e, None);
        assert_eq!(r.fired(Kind::BruteForce), vec![Severity::Medium]);
        for i in 11..20 {
            let e = r.ev(
                at(i),
                "victim@example.com",
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        assert_eq!(
            r.fired(Kind::BruteForce).len(),
            1,
            "one per account per window"
        );
        let e = r.ev(
            at(21),
            "victim@example.com",
            Outcome::Success,
            Stage::Primary,
        );
        r.feed(e, None);
        assert_eq!(r.escalated(Kind::BruteForce), 1);
        let d = r.only(Kind::BruteForce);
        assert_eq!(d.severity, Severity::Critical);
        assert!(d.escalated && d.evidence.contains("then a successful sign-in"));
        // A second success escalates nothing more.
        let e = r.ev(
            at(22),
            "victim@example.com",
            Outcome::Success,
            Stage::Primary,
        );
        r.feed(e, None);
        assert_eq!(r.escalated(Kind::BruteForce), 1);
        // After the window has passed, a new burst is a new detection.
        for i in 0..10 {
            let e = r.ev(
                at(60 + i),
                "victim@example.com",
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        assert_eq!(r.fired(Kind::BruteForce).len(), 2);
    }

    #[test]
    fn brute_force_ten_failures_over_sixteen_minutes_is_a_near_miss() {
        let mut r = Run::new();
        for i in 0..10 {
            // 106 s apart: 954 s = 15.9 min from first to tenth.
            let e = r.ev(
                T0 + D::seconds(106 * i),
                "v@example.com",
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        assert!(r.fired(Kind::BruteForce).is_empty());
        // A success after failures that never reached the threshold escalates nothing.
        let e = r.ev(at(17), "v@example.com", Outcome::Success, Stage::Primary);
        r.feed(e, None);
        assert_eq!(r.escalated(Kind::BruteForce), 0);
    }

    #[test]
    fn mfa_fatigue_high_then_critical_on_approval_not_on_the_password_step() {
        let mut r = Run::new();
        let user = "pushed@example.com";
        let e = r.ev(at(0), user, Outcome::MfaDenied, Stage::Mfa);
        r.feed(e, None);
        let e = r.ev(at(2), user, Outcome::MfaTimeout, Stage::Mfa);
        r.feed(e, None);
        assert!(r.fired(Kind::MfaFatigue).is_empty(), "two is a near miss");
        // The attacker's next password step succeeds: not an approval.
        let e = r.ev(at(3), user, Outcome::Success, Stage::Primary);
        r.feed(e, None);
        let e = r.ev(at(4), user, Outcome::MfaDenied, Stage::Mfa);
        r.feed(e, None);
        assert_eq!(r.fired(Kind::MfaFatigue), vec![Severity::High]);
        assert_eq!(r.escalated(Kind::MfaFatigue), 0);
        let mut ok = r.ev(at(6), user, Outcome::Success, Stage::Mfa);
        ok.factor = FactorKind::Push;
        r.feed(ok, None);
        assert_eq!(r.escalated(Kind::MfaFatigue), 1);
        assert_eq!(r.only(Kind::MfaFatigue).severity, Severity::Critical);
        // Three denials spread over eleven minutes: a near miss.
        let mut r = Run::new();
        for m in [0, 6, 11] {
            let e = r.ev(at(m), "slow@example.com", Outcome::MfaDenied, Stage::Mfa);
            r.feed(e, None);
        }
        assert!(r.fired(Kind::MfaFatigue).is_empty());
    }

    fn located(r: &mut Run, m: i64, login: &str, country: &str, ll: (f64, f64)) -> SignInEvent {
        let mut e = r.ev(at(m), login, Outcome::Success, Stage::Complete);
        e.country = Some(country.into());
        e.lat = Some(ll.0);
        e.lon = Some(ll.1);
        e
    }

    const AMS: (f64, f64) = (52.37, 4.90);
    const PAR: (f64, f64) = (48.86, 2.35);
    const SYD: (f64, f64) = (-33.87, 151.21);
    const NYC: (f64, f64) = (40.71, -74.01);

    #[test]
    fn new_country_baseline_pass_fires_nothing_then_a_new_country_fires_low() {
        let mut r = Run::new();
        r.baseline = true;
        let e = located(&mut r, -600, "a@example.com", "Netherlands", AMS);
        r.feed(e, None);
        let e = located(&mut r, -300, "a@example.com", "France", PAR);
        r.feed(e, None);
        assert!(r.fired(Kind::NewCountry).is_empty(), "baseline");
        r.baseline = false;
        let e = located(&mut r, 0, "a@example.com", "France", PAR);
        r.feed(e, None);
        assert!(r.fired(Kind::NewCountry).is_empty(), "seen");
        let e = located(&mut r, 24 * 60, "a@example.com", "Germany", (52.52, 13.40));
        r.feed(e, None);
        assert_eq!(r.fired(Kind::NewCountry), vec![Severity::Low]);
        assert!(r
            .only(Kind::NewCountry)
            .evidence
            .contains("France, Netherlands"));
        // An account with no history builds its baseline silently.
        let e = located(
            &mut r,
            24 * 60,
            "fresh@example.com",
            "Brazil",
            (-23.55, -46.63),
        );
        r.feed(e, None);
        assert_eq!(r.fired(Kind::NewCountry).len(), 1);
        // A country last seen more than 30 days ago is new again (Germany, seen 29 days
        // before, keeps the baseline; the Netherlands were seen 30 days and 11 hours before).
        let e = located(
            &mut r,
            30 * 24 * 60 + 60,
            "a@example.com",
            "Netherlands",
            AMS,
        );
        r.feed(e, None);
        assert_eq!(r.fired(Kind::NewCountry).len(), 2);
    }

    #[test]
    fn impossible_travel_by_speed_with_near_misses() {
        let mut r = Run::new();
        let e = located(&mut r, 0, "t@example.com", "Netherlands", AMS);
        r.feed(e, None);
        // Paris an hour later: 430 km, below the 500 km floor.
        let e = located(&mut r, 60, "t@example.com", "France", PAR);
        r.feed(e, None);
        // New York ten hours later: ~5,840 km at ~580 km/h, a flight.
        let e = located(&mut r, 660, "t@example.com", "United States", NYC);
        r.feed(e, None);
        assert!(r.fired(Kind::ImpossibleTravel).is_empty());
        // Sydney one hour after New York: ~16,000 km/h.
        let e = located(&mut r, 720, "t@example.com", "Australia", SYD);
        r.feed(e, None);
        assert_eq!(r.fired(Kind::ImpossibleTravel), vec![Severity::High]);
        let d = r.only(Kind::ImpossibleTravel);
        assert_eq!(d.first_seen, at(660));
        assert!(
            d.evidence.contains("United States") && d.evidence.contains("Australia"),
            "{}",
            d.evidence
        );
        // Events without coordinates neither fire nor move the reference point.
        let mut r = Run::new();
        let e = located(&mut r, 0, "n@example.com", "Netherlands", AMS);
        r.feed(e, None);
        let mut e = r.ev(at(5), "n@example.com", Outcome::Success, Stage::Complete);
        e.country = Some("Australia".into());
        r.feed(e, None);
        assert!(r.fired(Kind::ImpossibleTravel).is_empty());
    }

    fn facts(id: &str, login: &str) -> AccountFacts {
        AccountFacts {
            id: id.into(),
            login: login.into(),
            privileged: false,
            terminated: None,
            deprovisioned: false,
            last_login: None,
        }
    }

    #[test]
    fn inactive_account_signin_for_leavers_and_dormant_accounts() {
        let mut r = Run::new();
        let mut leaver = facts("00uL", "leaver@example.com");
        leaver.terminated = Some(at(-3 * 24 * 60));
        let e = r.ev(
            at(0),
            "leaver@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        let v = r.feed(e, Some(&leaver));
        assert_eq!(v.inactive, Some(Inactive::Terminated));
        assert_eq!(r.fired(Kind::InactiveAccountSignin), vec![Severity::High]);
        assert_eq!(
            r.only(Kind::InactiveAccountSignin).account_id.as_deref(),
            Some("00uL")
        );

        // Dormant by the listing: last login 120 days before.
        let mut sleeper = facts("00uS", "sleeper@example.com");
        sleeper.last_login = Some(at(-120 * 24 * 60));
        let e = r.ev(
            at(1),
            "sleeper@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        assert_eq!(r.feed(e, Some(&sleeper)).inactive, Some(Inactive::Dormant));
        // A listing read after the sign-in already shows it: no evidence of dormancy.
        let mut active = facts("00uA", "active@example.com");
        active.last_login = Some(at(2));
        let e = r.ev(
            at(2),
            "active@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        assert_eq!(r.feed(e, Some(&active)).inactive, None);
        // Dormant by the persisted history: the previous success 100 days ago.
        let mut r = Run::new();
        r.d = Detector::import(
            Windows::default(),
            vec![(
                "00uH".into(),
                History {
                    last_success: Some(ms(at(-100 * 24 * 60))),
                    ..History::default()
                },
            )],
        );
        let e = r.ev(at(0), "h@example.com", Outcome::Success, Stage::Complete);
        assert_eq!(
            r.feed(e, Some(&facts("00uH", "h@example.com"))).inactive,
            Some(Inactive::Dormant)
        );
        // 89 days: a near miss.
        let e = r.ev(
            at(89 * 24 * 60),
            "h@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        assert_eq!(
            r.feed(e, Some(&facts("00uH", "h@example.com"))).inactive,
            None
        );
        // Failures of a leaver are not sign-ins.
        let e = r.ev(
            at(1),
            "leaver@example.com",
            Outcome::Failure,
            Stage::Primary,
        );
        assert_eq!(r.feed(e, Some(&leaver)).inactive, None);
    }

    #[test]
    fn privileged_signin_without_mfa_from_the_provider_or_the_session() {
        let mut admin = facts("00uAdm", "admin@example.com");
        admin.privileged = true;
        // Entra: the record says single-factor.
        let mut r = Run::new();
        let mut e = r.ev(
            at(0),
            "admin@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        e.mfa = Some(false);
        e.factor = FactorKind::Password;
        assert!(r.feed(e, Some(&admin)).privileged_without_mfa);
        assert_eq!(
            r.fired(Kind::PrivilegedSigninWithoutMfa),
            vec![Severity::Critical]
        );
        let mut e = r.ev(
            at(1),
            "admin@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        e.mfa = Some(true);
        assert!(!r.feed(e, Some(&admin)).privileged_without_mfa);
        // Unknown MFA is not "without".
        let e = r.ev(
            at(2),
            "admin@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        assert!(!r.feed(e, Some(&admin)).privileged_without_mfa);

        // Okta: password step, then SSO into an app in the same session, no MFA step.
        let mut r = Run::new();
        let mut p = r.ev(at(0), "admin@example.com", Outcome::Success, Stage::Primary);
        p.session = Some("102sess".into());
        r.feed(p, Some(&admin));
        let mut sso = r.ev(
            at(1),
            "admin@example.com",
            Outcome::Success,
            Stage::Complete,
        );
        sso.session = Some("102sess".into());
        assert!(r.feed(sso, Some(&admin)).privileged_without_mfa);
        // With the MFA step in between it is fine.
        let mut r = Run::new();
        for (m, stage) in [(0, Stage::Primary), (1, Stage::Mfa), (2, Stage::Complete)] {
            let mut e = r.ev(at(m), "admin@example.com", Outcome::Success, stage);
            e.session = Some("102ok".into());
            assert!(!r.feed(e, Some(&admin)).privileged_without_mfa);
        }
        // A non-privileged account without MFA is counted nowhere here.
        let mut r = Run::new();
        let mut e = r.ev(at(0), "user@example.com", Outcome::Success, Stage::Complete);
        e.mfa = Some(false);
        assert!(
            !r.feed(e, Some(&facts("00uU", "user@example.com")))
                .privileged_without_mfa
        );
    }

    #[test]
    fn disabled_detectors_fire_nothing_and_pruning_frees_memory() {
        let mut r = Run::new();
        r.p.disabled = vec![Kind::BruteForce];
        for i in 0..12 {
            let e = r.ev(at(i), "x@example.com", Outcome::Failure, Stage::Mfa);
            r.feed(e, None);
        }
        assert!(r.fired(Kind::BruteForce).is_empty());
        let mut r = Run::new();
        for i in 0..50 {
            let e = r.ev(
                at(0),
                &format!("nobody{i}@example.com"),
                Outcome::Failure,
                Stage::Primary,
            );
            r.feed(e, None);
        }
        let (accounts, ips, _, events) = r.d.sizes();
        assert_eq!((accounts, ips), (50, 1));
        assert_eq!(events, 100, "50 account failures and 50 IP entries");
        r.d.prune(at(120), &r.p);
        let (accounts, ips, _, events) = r.d.sizes();
        assert_eq!(
            (accounts, ips, events),
            (0, 0, 0),
            "failures of unknown logins leave nothing behind"
        );
        assert_eq!(r.d.detections().len(), 1, "the spray stays listed");
    }

    #[test]
    fn export_and_import_keep_windows_and_open_detections() {
        let mut r = Run::new();
        for i in 0..10 {
            let e = r.ev(at(i), "v@example.com", Outcome::Failure, Stage::Primary);
            r.feed(e, None);
        }
        let dirty = r.d.take_dirty();
        let w = r.d.export();
        let json = serde_json::to_string(&w).unwrap();
        let w: Windows = serde_json::from_str(&json).unwrap();
        let mut again = Detector::import(w, dirty);
        let mut out = Vec::new();
        let mut e = SignInEvent::new("late", at(11), Outcome::Failure);
        e.login = Some("v@example.com".into());
        let ctx = Ctx {
            policy: &r.p,
            dormant_after_days: 90,
            baseline: false,
        };
        again.process(&e, None, &ctx, &mut out);
        assert!(
            out.is_empty(),
            "the open detection is extended, not fired again"
        );
        let mut s = SignInEvent::new("ok", at(12), Outcome::Success);
        s.login = Some("v@example.com".into());
        again.process(&s, None, &ctx, &mut out);
        assert!(matches!(out[..], [Change::Escalated { .. }]));
    }
}
