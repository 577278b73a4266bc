//! Benchmark of the `google` source against the in-process mock Admin SDK with a 100k-user
//! account and 30 days of login audit: upstream requests per poll against the page minimum,
//! wall time against the fetch floor (sequential pages × injected latency), and peak RSS, for
//! a first poll, a poll 15 minutes later and one a day later. `cargo bench --bench google`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use identity_posture_exporter::config::{Policy, SourceConfig};
use identity_posture_exporter::report::ReportBuilder;
use identity_posture_exporter::sources::google::client::{
    ACTIVITIES_PAGE, ASSIGNMENTS_PAGE, LOGINS, MEMBERS_PAGE, ROLES_PAGE, USERS_PAGE,
};
use identity_posture_exporter::sources::google::{GoogleConfig, GoogleSource, ServiceAccountKey};
use identity_posture_exporter::sources::{Deps, PollContext, Provider};
use identity_posture_exporter::upstream::RequestStats;
use serde_json::json;
use support::google_mock::{Activities, Collection, MockGoogle, Workspace};
use time::macros::datetime;

const USERS: usize = 100_000;
/// Login events in the 30 days before NOW (about three sign-ins per user a month).
const EVENTS: usize = 300_000;
const DAY: i64 = 86_400;
const GROUPS: usize = 4;
const GROUP_MEMBERS: usize = 250;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of the whole process (exporter and mock), in seconds.
fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn workspace(users: usize, events: usize, now: i64, latency: Duration) -> Workspace {
    let user = move |i: usize| {
        let email = format!("user{i}@example.com");
        json!({
            "kind": "admin#directory#user", "id": format!("1{i:020}"), "etag": "\"e\"",
            "primaryEmail": email,
            "name": {"givenName": "User", "familyName": format!("{i}"), "fullName": format!("User {i}")},
            "isAdmin": i < 3, "isDelegatedAdmin": (3..53).contains(&i),
            "lastLoginTime": if i % 10 == 0 { "1970-01-01T00:00:00.000Z".to_string() } else { rfc3339(now - ((i % 120) as i64) * DAY) },
            "creationTime": "2024-01-10T08:00:00.000Z", "agreedToTerms": true,
            "suspended": i % 20 == 1, "archived": i % 50 == 2,
            "changePasswordAtNextLogin": false, "ipWhitelisted": false,
            "emails": [{"address": email, "primary": true}],
            "customerId": "C03az79cb", "orgUnitPath": if i % 4 == 0 { "/Engineering" } else { "/" },
            "isMailboxSetup": true, "isEnrolledIn2Sv": i % 5 != 0, "isEnforcedIn2Sv": i % 5 < 3,
            "isGuestUser": i % 100 == 7, "includeInGlobalAddressList": true,
            "thumbnailPhotoUrl": "https://lh3.googleusercontent.com/a/photo"
        })
    };
    let methods = [
        json!(["password", "idv_preregistered_phone"]),
        json!(["password", "google_prompt"]),
        json!(["password", "security_key"]),
        json!(["password", "totp"]),
        json!(["none"]),
        json!(["passkey"]),
    ];
    let spacing = (30 * DAY) as f64 / events as f64;
    let time_of = move |i: usize| now - 60 - (i as f64 * spacing) as i64;
    let activity = move |i: usize| {
        let u = (i * 7919) % users;
        json!({
            "kind": "admin#reports#activity",
            "id": {"time": rfc3339(time_of(i)), "uniqueQualifier": format!("-{}", 1_000_000_000 + i),
                   "applicationName": "login", "customerId": "C03az79cb"},
            "etag": "\"a\"",
            "actor": {"email": format!("user{u}@example.com"), "profileId": format!("1{u:020}"), "callerType": "USER"},
            "ipAddress": "203.0.113.9",
            "events": [{"type": "login", "name": "login_success", "parameters": [
                {"name": "login_type", "value": "google_password"},
                {"name": "login_challenge_method", "multiValue": methods[u % methods.len()]},
                {"name": "is_suspicious", "boolValue": false}
            ]}]
        })
    };
    let roles = vec![
        json!({"roleId": "1", "roleName": "_SEED_ADMIN_ROLE", "isSuperAdminRole": true, "isSystemRole": true}),
        json!({"roleId": "2", "roleName": "_GROUPS_ADMIN_ROLE", "isSuperAdminRole": false, "isSystemRole": true}),
        json!({"roleId": "3", "roleName": "_HELP_DESK_ADMIN_ROLE", "isSuperAdminRole": false, "isSystemRole": true}),
        json!({"roleId": "4", "roleName": "Security Reader", "isSuperAdminRole": false, "isSystemRole": false}),
    ];
    let mut assignments = Vec::new();
    for i in 0..3 {
        assignments.push(json!({"roleAssignmentId": format!("sa{i}"), "roleId": "1", "assignedTo": format!("1{i:020}"), "assigneeType": "user", "scopeType": "CUSTOMER"}));
    }
    for i in 3..53 {
        assignments.push(json!({"roleAssignmentId": format!("d{i}"), "roleId": "3", "assignedTo": format!("1{i:020}"), "assigneeType": "user", "scopeType": "CUSTOMER"}));
    }
    let mut groups = HashMap::new();
    for g in 0..GROUPS {
        assignments.push(json!({"roleAssignmentId": format!("g{g}"), "roleId": if g % 2 == 0 { "2" } else { "4" }, "assignedTo": format!("group{g}"), "assigneeType": "group", "scopeType": "CUSTOMER"}));
        let members = (0..GROUP_MEMBERS)
            .map(|k| {
                let u = 1000 + g * GROUP_MEMBERS + k;
                json!({"kind": "admin#directory#member", "id": format!("1{u:020}"), "email": format!("user{u}@example.com"), "role": "MEMBER", "type": "USER", "status": "ACTIVE"})
            })
            .collect();
        groups.insert(format!("group{g}"), members);
    }
    Workspace {
        users: Collection::generated(users, user),
        roles,
        role_assignments: assignments,
        groups,
        activities: Activities::generated(events, time_of, activity),
        latency,
        ..Workspace::default()
    }
}

fn pages(n: usize, size: u32) -> u64 {
    (n.max(1)).div_ceil(size as usize) as u64
}

fn main() {
    let users = env_usize("GOOGLE_BENCH_USERS", USERS);
    let events = env_usize("GOOGLE_BENCH_EVENTS", EVENTS);
    let latency = Duration::from_millis(env_usize("GOOGLE_BENCH_LATENCY_MS", 20) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let now = datetime!(2026-11-28 12:00 UTC);
        let t0 = now.unix_timestamp();
        let ws = workspace(users, events, t0, latency);
        let spacing = (30 * DAY) as f64 / events as f64;
        let time_of = move |i: usize| t0 - 60 - (i as f64 * spacing) as i64;
        let mock = MockGoogle::start(ws).await;
        let key = ServiceAccountKey::parse(&Workspace::default().key_file(&mock.token_url())).unwrap();
        let cfg = GoogleConfig {
            customer: "my_customer".into(),
            admin_email: "admin@example.com".into(),
            key,
            token_url: mock.token_url(),
            api_url: mock.base.clone(),
        };
        let mut sc = SourceConfig::new("bench", "google", cfg.clone());
        sc.timeout = Duration::from_secs(600);
        let source = GoogleSource::build(&sc, &cfg, &Deps::default()).unwrap();
        // What the mock alone spends building and serialising the user pages of one listing
        // (it runs in this process, on the same cores, inside every poll's wall time).
        {
            let ws = workspace(users, events, t0, latency);
            let cpu = cpu_seconds();
            let started = Instant::now();
            let mut bytes = 0usize;
            for p in 0..pages(users, USERS_PAGE) as usize {
                let lo = p * USERS_PAGE as usize;
                let hi = (lo + USERS_PAGE as usize).min(users);
                let page = json!({"kind": "admin#directory#users", "users": (lo..hi).map(|i| (ws.users.item)(i)).collect::<Vec<_>>(), "nextPageToken": "x"});
                bytes += serde_json::to_vec(&page).unwrap().len();
            }
            println!(
                "mock side of one user listing: {} pages, {} MiB of JSON, {:.2}s wall, {:.2}s CPU",
                pages(users, USERS_PAGE),
                bytes >> 20,
                started.elapsed().as_secs_f64(),
                cpu_seconds() - cpu
            );
        }
        let rss_before = vm_hwm_kib();
        // Events with time in [a, b).
        let count = |a: i64, b: i64| (0..events).filter(|i| (a..b).contains(&time_of(*i))).count();
        let directory = pages(users, USERS_PAGE)
            + pages(4, ROLES_PAGE)
            + pages(3 + 50 + GROUPS, ASSIGNMENTS_PAGE)
            + GROUPS as u64 * pages(GROUP_MEMBERS, MEMBERS_PAGE);
        let rounds = [
            ("first poll", now, true),
            ("15 min later", now + time::Duration::minutes(15), false),
            ("a day later", now + time::Duration::days(1), false),
        ];
        for (label, at, token) in rounds {
            let stats = RequestStats::default();
            let ctx = PollContext { now: at, stats: &stats };
            let mut builder = ReportBuilder::new(Policy::default(), at, true);
            let before = mock.server.total();
            let audit_before = mock.server.hits(LOGINS);
            let started = Instant::now();
            let cpu = cpu_seconds();
            let out = source.poll(&ctx, &mut builder).await.expect("poll");
            let report = builder.finish(out);
            let wall = started.elapsed();
            let cpu = cpu_seconds() - cpu;
            let requests = (mock.server.total() - before) as u64;
            let audit = (mock.server.hits(LOGINS) - audit_before) as u64;
            let accounts: u64 = report.tally.accounts.iter().flatten().sum();
            // Page minimum of the audit: the events this poll had to read, in one listing
            // (the first poll: the whole window; later: what is new since the last read, at
            // least one request to learn that), plus the directory and the token.
            let t = at.unix_timestamp();
            let audit_min = match label {
                "first poll" => pages(count(t - 30 * DAY, t + 1), ACTIVITIES_PAGE),
                "15 min later" => 1,
                // Today's new events, and the day that became two days old read in full.
                _ => {
                    let settle_day = (t / DAY - 3) * DAY;
                    1 + pages(count(settle_day, settle_day + DAY), ACTIVITIES_PAGE)
                }
            };
            let minimum = directory + audit_min + u64::from(token);
            // Fetch floor of this design: the audit's listings are one chain (one request at a
            // time) beside the role reads; the users' pages follow it; the token comes first.
            let floor = latency * (u64::from(token) + audit.max(5) + pages(users, USERS_PAGE)) as u32;
            println!(
                "{label}: {accounts} accounts, {requests} requests ({audit} login audit) vs page minimum {minimum} (ratio {:.3}), wall {:.2}s (process CPU {:.2}s), fetch floor {:.2}s, wall/floor {:.2}, peak RSS {} MiB (before polls {} MiB)",
                requests as f64 / minimum as f64,
                wall.as_secs_f64(),
                cpu,
                floor.as_secs_f64(),
                wall.as_secs_f64() / floor.as_secs_f64(),
                vm_hwm_kib() / 1024,
                rss_before / 1024,
            );
            drop(report);
        }
        println!("token requests: {}", mock.tokens_issued());
    });
}
