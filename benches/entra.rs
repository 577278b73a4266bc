//! Benchmark of the `entra` source against the in-process mock Graph with a 200k-user
//! tenant: upstream requests per poll against the page minimum, wall time against the
//! fetch floor (pages × injected latency; also with the mock's own page-build time), and
//! peak RSS. `cargo bench --bench entra`; `ENTRA_BENCH_PREBUILT=1` has the mock serve pages
//! built once in a warm-up poll.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use identity_posture_exporter::config::{Policy, Secret, SourceConfig};
use identity_posture_exporter::report::ReportBuilder;
use identity_posture_exporter::sources::entra::{EntraAuth, EntraConfig, EntraSource, PAGE_SIZE};
use identity_posture_exporter::sources::{Deps, PollContext, Provider};
use identity_posture_exporter::upstream::RequestStats as SourceStats;
use serde_json::json;
use support::entra_mock::{Collection, MockGraph, Tenant, GLOBAL_ADMIN};

const USERS: usize = 200_000;
const APPS: usize = 2_000;
const SPS: usize = 5_000;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn guid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
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

fn tenant(users: usize, latency: Duration) -> Tenant {
    let methods = [
        json!(["microsoftAuthenticatorPush", "softwareOneTimePasscode"]),
        json!(["mobilePhone"]),
        json!(["fido2SecurityKey", "windowsHelloForBusiness"]),
        json!([]),
    ];
    let user = move |i: usize| {
        json!({
            "id": guid(0xa, i),
            "userPrincipalName": format!("user{i}@contoso.com"),
            "displayName": format!("User {i}"),
            "accountEnabled": i % 20 != 0,
            "userType": if i % 10 == 0 { "Guest" } else { "Member" },
            "createdDateTime": "2024-01-15T09:00:00Z",
            "lastPasswordChangeDateTime": "2026-03-01T10:11:12Z",
            "employeeLeaveDateTime": null,
            "department": "Engineering",
            "jobTitle": "Engineer",
            "onPremisesSyncEnabled": true,
            "signInActivity": if i % 7 == 0 { json!(null) } else { json!({
                "lastSignInDateTime": "2026-10-01T08:00:00Z",
                "lastSignInRequestId": "0f2b7c3e-1111-2222-3333-444455556666",
                "lastNonInteractiveSignInDateTime": "2026-11-20T08:00:00Z",
                "lastNonInteractiveSignInRequestId": "0f2b7c3e-1111-2222-3333-444455556667",
                "lastSuccessfulSignInDateTime": "2026-11-20T08:00:00Z",
                "lastSuccessfulSignInRequestId": "0f2b7c3e-1111-2222-3333-444455556668"
            })}
        })
    };
    let reg = move |i: usize| {
        json!({
            "id": guid(0xa, i),
            "userPrincipalName": format!("user{i}@contoso.com"),
            "userDisplayName": format!("User {i}"),
            "userType": "member", "isAdmin": false,
            "isSsprRegistered": true, "isSsprEnabled": true, "isSsprCapable": true,
            "isMfaRegistered": true, "isMfaCapable": true, "isPasswordlessCapable": false,
            "methodsRegistered": methods[i % 4],
            "isSystemPreferredAuthenticationMethodEnabled": true,
            "systemPreferredAuthenticationMethods": ["push"],
            "userPreferredMethodForSecondaryAuthentication": "push",
            "lastUpdatedDateTime": "2026-11-01T00:00:00Z"
        })
    };
    let apps = (0..APPS)
        .map(|i| {
            json!({"id": guid(0xc, i), "appId": guid(0xd, i), "displayName": format!("app {i}"),
                   "createdDateTime": "2024-01-01T00:00:00Z",
                   "passwordCredentials": [{"keyId": guid(0xe, i), "displayName": "s",
                       "startDateTime": "2025-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"}],
                   "keyCredentials": []})
        })
        .collect();
    let sps = (0..SPS)
        .map(|i| {
            json!({"id": guid(0xf, i), "appId": guid(0xd, i), "displayName": format!("sp {i}"),
                   "accountEnabled": true, "servicePrincipalType": "Application",
                   "passwordCredentials": [], "keyCredentials": []})
        })
        .collect();
    let assignments = (0..20)
        .map(|i| {
            json!({"id": format!("ra{i}"), "principalId": guid(0xa, i * 1000 + 1), "roleDefinitionId": GLOBAL_ADMIN,
                   "directoryScopeId": "/", "principal": {"@odata.type": "#microsoft.graph.user", "id": guid(0xa, i * 1000 + 1)}})
        })
        .collect();
    Tenant {
        users: Collection::generated(users, user),
        registration: Collection::generated(users, reg),
        role_assignments: assignments,
        applications: apps,
        service_principals: sps,
        latency,
        page_size: PAGE_SIZE as usize,
        registration_page_size: PAGE_SIZE as usize,
        prebuilt_pages: std::env::var_os("ENTRA_BENCH_PREBUILT").is_some(),
        ..Tenant::default()
    }
}

fn main() {
    let users = env_usize("ENTRA_BENCH_USERS", USERS);
    let latency = Duration::from_millis(env_usize("ENTRA_BENCH_LATENCY_MS", 20) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let t = tenant(users, latency);
        let (tid, cid, secret) = (t.tenant_id.clone(), t.client_id.clone(), t.client_secret.clone());
        let mock = MockGraph::start(t).await;
        let cfg = EntraConfig {
            tenant_id: tid,
            client_id: cid,
            auth: EntraAuth::ClientSecret(Secret::new(secret)),
            authority_url: mock.base.clone(),
            graph_url: mock.base.clone(),
        };
        let mut sc = SourceConfig::new("bench", "entra", cfg.clone());
        sc.timeout = Duration::from_secs(120);
        let source = EntraSource::build(&sc, &cfg, &Deps::default()).unwrap();
        let now = time::macros::datetime!(2026-11-28 12:00 UTC);
        let rss_before = vm_hwm_kib();
        const USERS_PATH: &str = "/v1.0/users";
        const REG_PATH: &str = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
        // ENTRA_BENCH_PREBUILT=1: the mock keeps each page once built; a warm-up poll (round
        // 0, not timed against the floor) builds them, and rounds 1 and 2 are served from
        // memory, so only the latency and the client's own work are on the chain.
        let prebuilt = std::env::var_os("ENTRA_BENCH_PREBUILT").is_some();
        let first = if prebuilt { 0 } else { 1 };
        for (round, retain) in [(0, true), (1, true), (2, true)] {
            if round < first {
                continue;
            }
            let stats = SourceStats::default();
            let ctx = PollContext { now, stats: &stats };
            let mut builder = ReportBuilder::new(Policy::default(), now, retain);
            let before = mock.graph_requests() + mock.token_requests();
            let builds_before = [mock.page_build(USERS_PATH), mock.page_build(REG_PATH)];
            let started = Instant::now();
            let out = source.poll(&ctx, &mut builder).await.expect("poll");
            let report = builder.finish(out);
            let wall = started.elapsed();
            let requests = mock.graph_requests() + mock.token_requests() - before;
            let accounts: u64 = report.tally.accounts.iter().flatten().sum();
            let pages = |n: usize| n.div_ceil(PAGE_SIZE as usize) as u64;
            // Page minimum: users + registration report + apps + SPs, plus 1 request each for
            // role definitions, assignments, eligibility, security defaults, CA policies.
            let min_graph = pages(users) * 2 + pages(APPS) + pages(SPS) + 5;
            let token = if round == first { 1 } else { 0 };
            // Every read starts at once; the longest chain of pages is the user listing (or
            // the registration report, as long): each of its pages one latency at least.
            let chain = pages(users).max(pages(SPS) + pages(APPS)).max(4);
            let floor = latency * chain as u32;
            // The mock's own time to build each page (generate and serialise ~0.7 MB, on
            // these same cores) is server time on the chain too: the floor with it.
            let build = |i: usize, path: &str| {
                let (n, t) = mock.page_build(path);
                let (n0, t0) = builds_before[i];
                (t - t0) / (n - n0).max(1) as u32
            };
            let (build_users, build_reg) = (build(0, USERS_PATH), build(1, REG_PATH));
            let served_floor = (latency + build_users.max(build_reg)) * chain as u32;
            if round == 0 {
                println!(
                    "round 0 (warm-up: builds the mock's pages): {requests} requests, wall {:.2}s",
                    wall.as_secs_f64()
                );
                continue;
            }
            println!(
                "round {round}: {accounts} accounts, {requests} requests (page minimum {} incl. {token} token), wall {:.2}s, fully overlapped fetch floor {:.2}s, wall/floor {:.2}; mock page build users {:.1} ms, registration {:.1} ms, floor with it {:.2}s, wall/that {:.2}; peak RSS {} MiB (before polls {} MiB)",
                min_graph + token,
                wall.as_secs_f64(),
                floor.as_secs_f64(),
                wall.as_secs_f64() / floor.as_secs_f64(),
                build_users.as_secs_f64() * 1e3,
                build_reg.as_secs_f64() * 1e3,
                served_floor.as_secs_f64(),
                wall.as_secs_f64() / served_floor.as_secs_f64(),
                vm_hwm_kib() / 1024,
                rss_before / 1024,
            );
            drop(report);
        }
    });
}
