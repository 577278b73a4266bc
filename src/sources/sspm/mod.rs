//! The `sspm` source: Palo Alto Networks SaaS Security (SSPM) Identity API with the common
//! SASE OAuth2 client-credentials grant. Accounts of every onboarded SaaS instance, IdP users
//! with their MFA state (newest MFA activity), elevation, orphaned accounts and credential age.
//!
//! Layout: `config.rs` (keys) · `wire.rs` (API types, lenient) · `map.rs` (pure mapping and
//! tallies) · `client.rs` (token, GET, `limit`/`page` paging on the shared upstream layer).
//! Read-only: only `GET`s of the Identity API and the token `POST` are ever sent. See
//! docs/sspm.md.

pub mod client;
pub mod config;
pub mod map;
pub mod wire;

use std::collections::HashSet;

use client::SspmClient;
pub use config::{RawSspmConfig, SspmConfig};
use map::{AppCounts, IdpCtx, InstanceCtx, NewestPerUser, Tally};
use wire::{FeatureState, Idp, MfaActivity, Page, SaasAccount, SaasInstance, FEATURES};

use super::{
    AccountSink, Deps, GaugeDesc, PollContext, PollOutput, Provider, SourceError, SourceGauge,
    POLL_REQUESTS,
};
use crate::config::{SourceConfig, Validator};
use crate::model::{DataAvailability, DataKind, TenantFacts, Timestamp};
use crate::upstream::{Session, UpstreamError};

pub const ACCOUNTS: GaugeDesc = GaugeDesc::new(
    "identity_posture_sspm_accounts",
    "Accounts read from SaaS Security per SaaS app type (at most 20 apps per source, the rest as app=\"other\"); account_type as SaaS Security reports it (isNonHuman).",
);
pub const UNRECOGNIZED_VALUES: GaugeDesc = GaugeDesc::new(
    "identity_posture_sspm_unrecognized_values",
    "Values the SSPM source could not map, by field (mfa_strength, mfa_factors: read as other/unknown; timestamp: unreadable date-time, read as unknown; item: record skipped). Non-zero after a change on Palo Alto Networks' side.",
);
pub const FEATURE_LAST_SCAN: GaugeDesc = GaugeDesc::new(
    "identity_posture_sspm_feature_last_scan_timestamp_seconds",
    "When SaaS Security last scanned this IdP feature (lastScannedAt, unix seconds): alert on time() minus this to catch stale upstream scans.",
);
pub const FEATURE_STATUS: GaugeDesc = GaugeDesc::new(
    "identity_posture_sspm_feature_status",
    "1 for the status SaaS Security reports for this IdP feature (feature_state status).",
);
pub const INSTANCE_LAST_SCAN: GaugeDesc = GaugeDesc::new(
    "identity_posture_sspm_instance_last_scan_timestamp_seconds",
    "Newest latestScanTime of this SaaS instance's accounts (unix seconds): alert on time() minus this to catch stale upstream scans.",
);

pub struct SspmSource {
    client: SspmClient,
    tsg_id: String,
}

impl Provider for SspmSource {
    const TYPE: &'static str = "sspm";
    type Raw = RawSspmConfig;
    type Config = SspmConfig;

    fn validate(raw: RawSspmConfig, v: &mut Validator<'_>) -> Option<SspmConfig> {
        config::validate(raw, v)
    }

    fn build(sc: &SourceConfig, cfg: &SspmConfig, deps: &Deps) -> Result<Self, SourceError> {
        let client = SspmClient::new(
            cfg,
            &sc.name,
            sc.timeout,
            sc.limits.clone(),
            deps.timer.clone(),
        )
        .map_err(|e| SourceError::config(format!("sspm: {e}")))?;
        Ok(SspmSource {
            client,
            tsg_id: cfg.tsg_id.clone(),
        })
    }

    async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        self.read(ctx, sink).await
    }
}

/// Decodes a small unpaged list (`/idps`, `/saas_instances`), skipping non-objects.
fn items<T: serde::de::DeserializeOwned>(p: Page, tally: &mut Tally) -> Vec<T> {
    let mut out = Vec::new();
    for v in p.items.unwrap_or_default() {
        match serde_json::from_value::<T>(v) {
            Ok(t) => out.push(t),
            Err(_) => tally.note("item", "not an object"),
        }
    }
    out
}

fn unix(t: Timestamp) -> f64 {
    t.unix_timestamp() as f64
}

impl SspmSource {
    pub fn client(&self) -> &SspmClient {
        &self.client
    }

    /// A failed read as the poll's error, with what to do about the usual causes.
    fn fail(&self, what: &str, e: UpstreamError) -> SourceError {
        let token =
            matches!(&e, UpstreamError::Status { endpoint, .. } if endpoint == client::TOKEN_PATH);
        let hint = match (e.status(), token) {
            (Some(400 | 401), true) => format!(
                " — the authentication service refused the client credentials: check client_id, the client secret, and that the service account belongs to TSG {}",
                self.tsg_id
            ),
            (Some(401), false) => format!(
                " — the API refused a freshly issued access token too: check that the service account has a role on TSG {}",
                self.tsg_id
            ),
            (Some(403), _) => format!(
                " — the service account lacks permission: give it a read-only role with SaaS Security access (e.g. View Only Administrator) on TSG {}",
                self.tsg_id
            ),
            _ => String::new(),
        };
        let hint = hint.strip_prefix(" — ").map(str::to_string);
        SourceError::upstream(&format!("sspm: {what}"), &e, hint, |m| {
            self.client.redact(m)
        })
    }

    async fn read(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let s = self.client.session(ctx.stats);
        let mut tally = Tally::default();
        let mut apps = AppCounts::default();
        let mut gauges = Vec::new();

        // Identity providers: their users' MFA state, and their scan freshness.
        let idps: Vec<Idp> = match self.client.get::<Page>(&s, &["idps"], &[], "/idps").await {
            Ok(p) => items(p, &mut tally),
            // The spec documents 404 for the list itself: no IdP onboarded.
            Err(e) if e.status() == Some(404) => Vec::new(),
            Err(e) => return Err(self.fail("identity providers", e)),
        };
        for idp in &idps {
            let Some(idp_id) = idp.idp_id.as_deref() else {
                tally.note("item", "IdP without idpId");
                continue;
            };
            let ictx = IdpCtx {
                idp_id,
                idp_name: idp.display_name.as_deref(),
                app_type: idp.app_type.as_deref(),
            };
            self.read_idp_users(&s, &ictx, &mut tally, &mut apps, sink)
                .await?;
            self.read_feature_states(&s, &ictx, &mut tally, &mut gauges)
                .await;
        }

        // SaaS instances and their accounts.
        let instances: Vec<SaasInstance> = self
            .client
            .get::<Page>(&s, &["saas_instances"], &[], "/saas_instances")
            .await
            .map(|p| items(p, &mut tally))
            .map_err(|e| self.fail("SaaS instances", e))?;
        for inst in &instances {
            let Some(id) = inst.saas_instance_id.as_deref() else {
                tally.note("item", "SaaS instance without saasInstanceId");
                continue;
            };
            self.read_instance(
                &s,
                ctx.now,
                id,
                inst,
                &mut tally,
                &mut apps,
                &mut gauges,
                sink,
            )
            .await?;
        }

        // Classes no account carries are marked missing by the report, in these words.
        let mut availability = DataAvailability::default();
        availability.if_absent(
            DataKind::LastLogin,
            "no SaaS app onboarded in SaaS Security reports login times (lastLoginTime); IdP MFA activity is not a sign-in history",
        );
        if idps.is_empty() {
            availability.set_missing(
                DataKind::Mfa,
                "no identity provider is onboarded in SaaS Security (/idps is empty); MFA state comes from IdP MFA activity",
            );
        }
        availability.if_absent(
            DataKind::Mfa,
            "no IdP MFA activity record carried a readable MFA state (mfaStrength / mfaFactors)",
        );
        availability.if_absent(
            DataKind::Credentials,
            "no SaaS account carries lastCredentialsRotated or credentialsExpiresAt",
        );
        availability.if_absent(
            DataKind::Roles,
            "no SaaS account carries isElevated and no MFA activity carries the admin flag",
        );

        for (app, t, p, n) in apps.samples() {
            gauges.push(ACCOUNTS.sample(
                vec![
                    ("app", app),
                    ("account_type", t.as_str().into()),
                    ("privileged", p.to_string()),
                ],
                n as f64,
            ));
        }
        for field in map::TALLY_FIELDS {
            let n = tally.count(field);
            if n > 0 {
                tracing::warn!(
                    field,
                    count = n,
                    samples = ?tally.samples.get(field),
                    "sspm: values outside the documented/known set (read as `other` or unknown); please report them"
                );
            }
            gauges.push(UNRECOGNIZED_VALUES.sample(vec![("field", field.into())], n as f64));
        }
        gauges.push(POLL_REQUESTS.sample(vec![], f64::from(s.requests_made())));
        Ok(PollOutput {
            availability,
            // SaaS Security's API exposes no MFA policy: gaps unknown.
            // Role names differ per SaaS app: a tenant-wide super-admin count means nothing.
            tenant: TenantFacts {
                no_super_admin_role: true,
                ..TenantFacts::default()
            },
            gauges,
        })
    }

    async fn read_idp_users(
        &self,
        s: &Session<'_>,
        idp: &IdpCtx<'_>,
        tally: &mut Tally,
        apps: &mut AppCounts,
        sink: &mut dyn AccountSink,
    ) -> Result<(), SourceError> {
        let mut newest = NewestPerUser::default();
        let walked = self
            .client
            .walk::<MfaActivity>(
                s,
                &["idps", idp.idp_id, "mfa_activity"],
                "/idps/{idpId}/mfa_activity",
                |r| r.id.clone(),
                |recs| {
                    let n = recs.len() as u64;
                    for r in recs {
                        newest.add(r, tally);
                    }
                    n
                },
            )
            .await;
        match walked {
            Ok(w) => {
                for _ in 0..w.malformed_items {
                    tally.note("item", "MFA activity record that is not an object");
                }
            }
            Err(e) if e.status() == Some(404) => {
                tracing::info!(idp = idp.idp_id, "sspm: no MFA activity for this IdP (404)");
            }
            Err(e) => {
                return Err(self.fail(&format!("MFA activity of IdP {}", idp.idp_id), e));
            }
        }
        for _ in 0..newest.skipped {
            tally.note("item", "MFA activity without userId or email");
        }
        let mut users: Vec<_> = newest.users.into_iter().collect();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        let app = map::app_label(idp.app_type);
        for (key, (ts, rec)) in users {
            let a = map::map_idp_user(&key, ts, &rec, idp, tally);
            apps.add(&app, &a);
            sink.push(a);
        }
        Ok(())
    }

    /// `feature_state` for every feature of the spec's `Feature` enum. A feature the IdP does
    /// not have (404) or that cannot be read is left out, never a failed poll.
    async fn read_feature_states(
        &self,
        s: &Session<'_>,
        idp: &IdpCtx<'_>,
        tally: &mut Tally,
        gauges: &mut Vec<SourceGauge>,
    ) {
        let name = idp.idp_name.unwrap_or(idp.idp_id).to_string();
        for feature in FEATURES {
            let st = match self
                .client
                .get::<FeatureState>(
                    s,
                    &["idps", idp.idp_id, "feature_state"],
                    &[("feature", feature.to_string())],
                    "/idps/{idpId}/feature_state",
                )
                .await
            {
                Ok(st) => st,
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => {
                    tracing::warn!(idp = idp.idp_id, feature, error = %e, "sspm: feature state not read");
                    continue;
                }
            };
            let labels = vec![
                ("idp", idp.idp_id.to_string()),
                ("idp_name", name.clone()),
                ("feature", feature.to_ascii_lowercase()),
            ];
            if let Some(t) = map::instant(&st.last_scanned_at, tally).value() {
                gauges.push(FEATURE_LAST_SCAN.sample(labels.clone(), unix(*t)));
            }
            if let Some(status) = &st.status {
                let mut l = labels;
                l.push(("status", status.to_ascii_lowercase()));
                gauges.push(FEATURE_STATUS.sample(l, 1.0));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn read_instance(
        &self,
        s: &Session<'_>,
        now: Timestamp,
        id: &str,
        inst: &SaasInstance,
        tally: &mut Tally,
        apps: &mut AppCounts,
        gauges: &mut Vec<SourceGauge>,
        sink: &mut dyn AccountSink,
    ) -> Result<(), SourceError> {
        let mut ids: HashSet<String> = HashSet::new();
        let mut accounts: Vec<SaasAccount> = Vec::new();
        let mut no_id = 0u64;
        let walked = self
            .client
            .walk::<SaasAccount>(
                s,
                &["saas_instances", id, "saas_accounts"],
                "/saas_instances/{saasInstanceId}/saas_accounts",
                |a| a.id.clone(),
                |page| {
                    let mut new = 0;
                    for a in page {
                        match &a.id {
                            Some(i) if ids.insert(i.clone()) => {
                                new += 1;
                                accounts.push(a);
                            }
                            Some(_) => {}
                            None => no_id += 1,
                        }
                    }
                    new
                },
            )
            .await;
        match walked {
            Ok(w) => {
                for _ in 0..w.malformed_items {
                    tally.note("item", "SaaS account that is not an object");
                }
            }
            // Removed between the instance list and this call.
            Err(e) if e.status() == Some(404) => {
                tracing::warn!(
                    saas_instance = id,
                    "sspm: SaaS instance not found (404); skipped"
                );
                return Ok(());
            }
            Err(e) => {
                let label = inst.display_name.as_deref().unwrap_or(id);
                return Err(self.fail(&format!("accounts of SaaS instance {label:?}"), e));
            }
        }
        for _ in 0..no_id {
            tally.note("item", "SaaS account without id");
        }
        let ictx = InstanceCtx {
            instance_id: id,
            instance_name: inst.display_name.as_deref(),
            app_type: inst.app_type.as_deref(),
            reports_logins: accounts.iter().any(map::has_login_time),
            now,
        };
        if !ictx.reports_logins && !accounts.is_empty() {
            tracing::info!(
                saas_instance = id,
                "sspm: no account of this SaaS instance has a login time; last login unknown"
            );
        }
        let app = map::app_label(inst.app_type.as_deref());
        let mut last_scan: Option<Timestamp> = None;
        for raw in &accounts {
            let Some(a) = map::map_account(raw, &ictx, tally) else {
                continue;
            };
            if let Some(t) = map::instant(&raw.latest_scan_time, &mut Tally::default()).value() {
                last_scan = Some(last_scan.map_or(*t, |l| l.max(*t)));
            }
            apps.add(&app, &a);
            sink.push(a);
        }
        if let Some(t) = last_scan {
            gauges.push(INSTANCE_LAST_SCAN.sample(
                vec![
                    ("saas_instance", id.to_string()),
                    (
                        "saas_instance_name",
                        inst.display_name.clone().unwrap_or_else(|| id.to_string()),
                    ),
                    ("app", app.clone()),
                ],
                unix(t),
            ));
        }
        Ok(())
    }
}
