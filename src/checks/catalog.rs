//! What each check means outside the code: a title, the public controls it maps to
//! (compliance frameworks), and a remediation sentence per provider. Shown by the findings
//! view, the API (`/api/v1/compliance`, `remediation` on every finding) and docs/checks.md.
//!
//! Control ids are only those confirmed against public texts (CISA ScubaGear's Entra ID
//! baseline, NIST SP 800-53 Rev. 5, and the CIS benchmark titles as published by their
//! automation projects). No public CIS Okta benchmark text could be confirmed, so none is
//! mapped; a check with no confirmed control in a framework is simply not in it.

use super::CheckId;

/// A compliance framework the checks map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Framework {
    CisM365,
    CisGoogleWorkspace,
    CisAws,
    CisaScuba,
    Nist80053,
}

impl Framework {
    pub const ALL: [Framework; 5] = [
        Framework::CisM365,
        Framework::CisGoogleWorkspace,
        Framework::CisAws,
        Framework::CisaScuba,
        Framework::Nist80053,
    ];

    /// The id used in URLs and the API.
    pub fn id(self) -> &'static str {
        match self {
            Framework::CisM365 => "cis-m365",
            Framework::CisGoogleWorkspace => "cis-google-workspace",
            Framework::CisAws => "cis-aws",
            Framework::CisaScuba => "cisa-scuba",
            Framework::Nist80053 => "nist-800-53",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Framework::CisM365 => "CIS Microsoft 365 Foundations Benchmark v5.0.0",
            Framework::CisGoogleWorkspace => "CIS Google Workspace Foundations Benchmark v1.2.0",
            Framework::CisAws => "CIS Amazon Web Services Foundations Benchmark v3.0.0",
            Framework::CisaScuba => {
                "CISA SCuBA Secure Configuration Baseline for Microsoft Entra ID"
            }
            Framework::Nist80053 => "NIST SP 800-53 Rev. 5",
        }
    }

    pub fn parse(s: &str) -> Option<Framework> {
        Framework::ALL.into_iter().find(|f| f.id() == s)
    }
}

/// One control of a framework, with its title as the framework words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub framework: Framework,
    pub id: &'static str,
    pub title: &'static str,
}

const fn c(framework: Framework, id: &'static str, title: &'static str) -> Control {
    Control {
        framework,
        id,
        title,
    }
}

use Framework::*;

const NIST_IA_2_1: Control = c(
    Nist80053,
    "IA-2(1)",
    "Multi-factor Authentication to Privileged Accounts",
);
const NIST_IA_2_2: Control = c(
    Nist80053,
    "IA-2(2)",
    "Multi-factor Authentication to Non-privileged Accounts",
);
const NIST_AC_2_3: Control = c(Nist80053, "AC-2(3)", "Disable Accounts");
const NIST_AC_6_5: Control = c(Nist80053, "AC-6(5)", "Privileged Accounts");
const NIST_AC_6_7: Control = c(Nist80053, "AC-6(7)", "Review of User Privileges");
const NIST_IA_5: Control = c(Nist80053, "IA-5", "Authenticator Management");
const NIST_PS_4: Control = c(Nist80053, "PS-4", "Personnel Termination");
const SCUBA_3_2: Control = c(
    CisaScuba,
    "MS.AAD.3.2v1",
    "If phishing-resistant MFA has not been enforced, an alternative MFA method SHALL be enforced for all users",
);
const SCUBA_3_5: Control = c(
    CisaScuba,
    "MS.AAD.3.5v1",
    "The authentication methods SMS, Voice Call, and Email One-Time Passcode (OTP) SHALL be disabled",
);
const SCUBA_3_6: Control = c(
    CisaScuba,
    "MS.AAD.3.6v1",
    "Phishing-resistant MFA SHALL be required for highly privileged roles",
);
const SCUBA_7_1: Control = c(
    CisaScuba,
    "MS.AAD.7.1v1",
    "A minimum of two users and a maximum of eight users SHALL be provisioned with the Global Administrator role",
);
const SCUBA_7_2: Control = c(
    CisaScuba,
    "MS.AAD.7.2v1",
    "Privileged users SHALL be provisioned with finer-grained roles instead of Global Administrator",
);
const CIS_M365_1_1_3: Control = c(
    CisM365,
    "1.1.3",
    "Ensure that between two and four global admins are designated",
);
const CIS_M365_5_2_3_5: Control = c(
    CisM365,
    "5.2.3.5",
    "Ensure weak authentication methods are disabled",
);
const CIS_GWS_1_1_1: Control = c(
    CisGoogleWorkspace,
    "1.1.1",
    "Ensure more than one Super Admin account exists",
);
const CIS_GWS_1_1_2: Control = c(
    CisGoogleWorkspace,
    "1.1.2",
    "Ensure no more than 4 Super Admin accounts exist",
);
const CIS_AWS_1_12: Control = c(
    CisAws,
    "1.12",
    "Ensure credentials unused for 45 days or greater are disabled",
);
const CIS_AWS_1_14: Control = c(
    CisAws,
    "1.14",
    "Ensure access keys are rotated every 90 days or less",
);

/// A short title for a check.
pub fn title(check: CheckId) -> &'static str {
    match check {
        CheckId::MfaMissing => "Accounts without MFA",
        CheckId::MfaWeak => "Accounts with only weak MFA",
        CheckId::MfaNotEnforced => "MFA enrolled but not enforced",
        CheckId::DormantInactive => "Dormant accounts",
        CheckId::DormantNeverLoggedIn => "Accounts never used",
        CheckId::DormantTerminated => "Leavers whose account still exists",
        CheckId::CredentialUnrotated => "Credentials not rotated",
        CheckId::CredentialExpired => "Expired credentials still present",
        CheckId::CredentialExpiring => "Credentials about to expire",
        CheckId::CredentialNoExpiry => "Credentials that never expire",
        CheckId::PrivilegeRoleNotAllowed => "Roles held outside their allowed groups",
        CheckId::PrivilegeUnused => "Unused privilege",
        CheckId::PrivilegeNoMfa => "Privileged accounts without strong MFA",
        CheckId::PrivilegeServiceAccountAdmin => "Service accounts holding admin roles",
        CheckId::TenantTooManySuperAdmins => "Too many super admins",
        CheckId::TenantTooFewSuperAdmins => "Too few super admins",
        CheckId::TenantMfaPolicyGap => "MFA policy gaps",
    }
}

/// The controls a check gives evidence for.
pub fn controls(check: CheckId) -> &'static [Control] {
    match check {
        CheckId::MfaMissing => &[NIST_IA_2_1, NIST_IA_2_2, SCUBA_3_2],
        CheckId::MfaWeak => &[SCUBA_3_5, CIS_M365_5_2_3_5],
        CheckId::MfaNotEnforced => &[NIST_IA_2_1, NIST_IA_2_2, SCUBA_3_2],
        CheckId::DormantInactive | CheckId::DormantNeverLoggedIn => &[NIST_AC_2_3, CIS_AWS_1_12],
        CheckId::DormantTerminated => &[NIST_PS_4, NIST_AC_2_3],
        CheckId::CredentialUnrotated => &[NIST_IA_5, CIS_AWS_1_14],
        CheckId::CredentialExpired | CheckId::CredentialExpiring | CheckId::CredentialNoExpiry => {
            &[NIST_IA_5]
        }
        CheckId::PrivilegeRoleNotAllowed => &[NIST_AC_6_5, NIST_AC_6_7, SCUBA_7_2],
        CheckId::PrivilegeUnused => &[NIST_AC_6_7, NIST_AC_2_3],
        CheckId::PrivilegeNoMfa => &[NIST_IA_2_1, SCUBA_3_6],
        CheckId::PrivilegeServiceAccountAdmin => &[NIST_AC_6_5],
        CheckId::TenantTooManySuperAdmins => {
            &[NIST_AC_6_5, CIS_M365_1_1_3, CIS_GWS_1_1_2, SCUBA_7_1]
        }
        CheckId::TenantTooFewSuperAdmins => &[CIS_M365_1_1_3, CIS_GWS_1_1_1, SCUBA_7_1],
        CheckId::TenantMfaPolicyGap => &[NIST_IA_2_1, NIST_IA_2_2, SCUBA_3_2],
    }
}

/// Every control of a framework that some check maps to, once each, in id order.
pub fn framework_controls(f: Framework) -> Vec<Control> {
    let mut v: Vec<Control> = CheckId::ALL
        .iter()
        .flat_map(|c| controls(*c).iter().copied())
        .filter(|c| c.framework == f)
        .collect();
    v.sort_by(|a, b| a.id.cmp(b.id));
    v.dedup_by(|a, b| a.id == b.id);
    v
}

/// The checks that give evidence for one control.
pub fn checks_for(control: &Control) -> Vec<CheckId> {
    CheckId::ALL
        .into_iter()
        .filter(|c| controls(*c).iter().any(|x| x == control))
        .collect()
}

/// What to do about a finding, for the given provider (`okta`, `entra`, `sspm`, `file`, …).
pub fn remediation(check: CheckId, provider: &str) -> &'static str {
    use CheckId::*;
    match (check, provider) {
        (MfaMissing | MfaNotEnforced | PrivilegeNoMfa, "okta") => {
            "Enroll the user in an authenticator (Okta Verify or FIDO2/WebAuthn) and require it in an authentication policy rule that covers this user's apps, including the Okta Admin Console."
        }
        (MfaMissing | MfaNotEnforced | PrivilegeNoMfa, "entra") => {
            "Have the user register a strong method (passkey/FIDO2, Windows Hello or Microsoft Authenticator) and require MFA for them in a Conditional Access policy (phishing-resistant strength for admin roles)."
        }
        (MfaMissing | MfaNotEnforced, _) => {
            "Enroll the account in a strong second factor and enforce MFA for it at the identity provider; give service accounts workload credentials instead of interactive sign-in."
        }
        (MfaWeak, "okta") => {
            "Move the user to Okta Verify or FIDO2/WebAuthn and remove SMS, voice, email and security-question authenticators from the authentication policy."
        }
        (MfaWeak, "entra") => {
            "Register a passkey or Microsoft Authenticator for the user and disable SMS, voice call and email OTP in the Authentication methods policy."
        }
        (MfaWeak, _) => {
            "Replace SMS, voice, email and security-question factors with an authenticator app or a phishing-resistant key."
        }
        (DormantInactive | DormantNeverLoggedIn, "okta") => {
            "Confirm with the owner whether the account is still needed; suspend or deactivate it in Okta if not."
        }
        (DormantInactive | DormantNeverLoggedIn, "entra") => {
            "Confirm with the owner whether the account is still needed; block sign-in or delete it in Entra ID if not (an access review can automate this)."
        }
        (DormantInactive | DormantNeverLoggedIn, _) => {
            "Confirm with the account's owner whether it is still needed, and disable or remove it if not."
        }
        (DormantTerminated, "okta") => {
            "Deactivate the leaver's Okta account (and its app assignments) and make the HR import deprovision automatically."
        }
        (DormantTerminated, "entra") => {
            "Block sign-in, revoke sessions and remove the leaver's account in Entra ID, and make HR-driven provisioning disable leavers automatically."
        }
        (DormantTerminated, _) => {
            "Disable the leaver's account now and revoke its sessions and credentials; then fix the leaver process so HR's date disables it automatically."
        }
        (CredentialUnrotated, "okta") => {
            "Create a replacement API token or key, move its consumers over, and revoke the old one."
        }
        (CredentialUnrotated, "entra") => {
            "Add a new client secret or certificate to the app registration, update the application, then delete the old credential."
        }
        (CredentialUnrotated, _) => {
            "Issue a replacement credential, move its consumers over, and revoke the old one."
        }
        (CredentialExpired, _) => {
            "Delete the expired credential so it cannot be renewed or confused with the current one."
        }
        (CredentialExpiring, _) => {
            "Issue the replacement credential and update its consumers before the expiry date."
        }
        (CredentialNoExpiry, "entra") => {
            "Replace the credential with one that expires (secrets at most 180 days, certificates at most a year) and restrict credential lifetimes with an app management policy."
        }
        (CredentialNoExpiry, "github") => {
            "Replace the personal access token with a fine-grained token that expires, revoke the old one, and set the organisation's maximum token lifetime so new tokens must expire."
        }
        (CredentialNoExpiry, _) => {
            "Replace the credential with one that has an expiry date, and rotate it before then."
        }
        (PrivilegeRoleNotAllowed, "okta") => {
            "Remove the admin role from the user, or add the user to an allowed group through your access request process."
        }
        (PrivilegeRoleNotAllowed, "entra") => {
            "Remove the role assignment, or make the user eligible for it through Privileged Identity Management from an allowed group."
        }
        (PrivilegeRoleNotAllowed, _) => {
            "Remove the role, or grant it through one of the groups the privilege rule allows."
        }
        (PrivilegeUnused, "entra") => {
            "Remove the unused role assignment, or convert it to an eligible PIM assignment activated when needed."
        }
        (PrivilegeUnused, _) => {
            "Remove the administrative role the account no longer uses; grant it again when needed."
        }
        (PrivilegeNoMfa, _) => {
            "Require phishing-resistant MFA for this privileged account before it can use its role."
        }
        (PrivilegeServiceAccountAdmin, _) => {
            "Replace the admin role with the narrowest API scopes or role the workload needs, and review who holds the account's credentials."
        }
        (TenantTooManySuperAdmins, _) => {
            "Reduce super admins to between two and four named, MFA-protected accounts; give the others narrower admin roles."
        }
        (TenantTooFewSuperAdmins, _) => {
            "Designate a second super admin (for example a protected break-glass account) so one lost account cannot lock you out."
        }
        (TenantMfaPolicyGap, "okta") => {
            "Change the named policy rule to require MFA (or add a rule before it that does) for every group it covers."
        }
        (TenantMfaPolicyGap, "entra") => {
            "Extend the Conditional Access policy requiring MFA to all users and cloud apps (or turn on security defaults), leaving out only break-glass accounts."
        }
        (TenantMfaPolicyGap, _) => {
            "Change the provider's sign-in policy so that every user must complete MFA."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_a_title_remediation_and_a_control() {
        for c in CheckId::ALL {
            assert!(!title(c).is_empty());
            assert!(!controls(c).is_empty(), "{c:?}");
            for p in ["okta", "entra", "sspm", "file"] {
                assert!(remediation(c, p).ends_with('.'), "{c:?} {p}");
            }
        }
    }

    #[test]
    fn docs_checks_md_says_what_the_catalog_says() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/checks.md"))
            .unwrap();
        for c in CheckId::ALL {
            assert!(
                doc.contains(&format!("### `{}` — {}", c.as_str(), title(c))),
                "{c:?}"
            );
            for ctl in controls(c) {
                assert!(
                    doc.contains(&format!("**{}** — {}", ctl.id, ctl.title)),
                    "{c:?} {}",
                    ctl.id
                );
            }
            for p in ["okta", "entra", "sspm"] {
                assert!(doc.contains(remediation(c, p)), "{c:?} {p}");
            }
        }
    }

    #[test]
    fn frameworks_round_trip_and_list_their_controls_once() {
        for f in Framework::ALL {
            assert_eq!(Framework::parse(f.id()), Some(f));
            let ctl = framework_controls(f);
            assert!(!ctl.is_empty(), "{f:?}");
            for c in &ctl {
                assert!(!checks_for(c).is_empty());
            }
        }
        let nist = framework_controls(Framework::Nist80053);
        assert_eq!(nist.iter().filter(|c| c.id == "IA-2(1)").count(), 1);
        assert_eq!(
            checks_for(&SCUBA_7_1),
            vec![
                CheckId::TenantTooManySuperAdmins,
                CheckId::TenantTooFewSuperAdmins
            ]
        );
    }
}
