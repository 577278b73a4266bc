//! Dormancy checks: `dormant.inactive` (no login for too long), `dormant.never_logged_in`
//! (judged by creation date), `dormant.terminated` (HR leave date passed, account still
//! exists). An unknown last login or creation date is never a finding.

use super::{older_than, whole_days, CheckId, Ctx, Finding};
use crate::model::{Account, Known};

/// Runs for active accounts only.
pub fn check_activity(a: &Account, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let p = ctx.policy;
    match a.last_login {
        Known::At(t) => {
            if older_than(t, ctx.now, p.dormant_after_days) {
                out.push(Finding {
                    days: Some(whole_days(ctx.now - t)),
                    ..Finding::new(CheckId::DormantInactive)
                });
            }
        }
        Known::Never => {
            if let Some(c) = a.created {
                if older_than(c, ctx.now, p.never_logged_in_grace_days) {
                    out.push(Finding {
                        days: Some(whole_days(ctx.now - c)),
                        ..Finding::new(CheckId::DormantNeverLoggedIn)
                    });
                }
            }
        }
        Known::Unknown => {}
    }
}

/// Runs for every account that still exists (not disabled or deprovisioned): a suspended or
/// staged leaver can be reactivated.
pub fn check_terminated(a: &Account, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    if let Some(t) = a.terminated {
        if t <= ctx.now && a.status.is_present() {
            out.push(Finding {
                days: Some(whole_days(ctx.now - t)),
                ..Finding::new(CheckId::DormantTerminated)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::testutil::*;
    use crate::checks::CheckId;
    use crate::model::*;
    use time::Duration;

    #[test]
    fn inactive_boundary_day() {
        let mut a = active("a");
        a.last_login = Known::At(days_ago(90));
        assert!(
            checks(&a).is_empty(),
            "exactly 90 days is not older than 90"
        );
        a.last_login = Known::At(days_ago(90) - Duration::seconds(1));
        assert_eq!(checks(&a), vec![CheckId::DormantInactive]);
        a.last_login = Known::Unknown;
        assert!(checks(&a).is_empty(), "unknown is not never");
    }

    #[test]
    fn never_logged_in_is_judged_by_creation_date() {
        let mut a = active("a");
        a.last_login = Known::Never;
        a.created = Some(days_ago(30));
        assert!(checks(&a).is_empty(), "within the grace period");
        a.created = Some(days_ago(31));
        assert_eq!(checks(&a), vec![CheckId::DormantNeverLoggedIn]);
        a.created = None;
        assert!(checks(&a).is_empty(), "unknown creation date");
    }

    #[test]
    fn terminated_accounts_that_still_exist() {
        let mut a = active("a");
        a.terminated = Some(NOW + Duration::days(1));
        assert!(checks(&a).is_empty(), "leave date in the future");
        a.terminated = Some(NOW);
        assert_eq!(checks(&a), vec![CheckId::DormantTerminated]);
        a.status = Status::Suspended;
        assert_eq!(checks(&a), vec![CheckId::DormantTerminated]);
        a.status = Status::Deprovisioned;
        assert!(checks(&a).is_empty());
        a.status = Status::Disabled;
        assert!(checks(&a).is_empty());
    }
}
