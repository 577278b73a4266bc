//! What the detectors know about accounts from the source's listing: id, login, whether it
//! is privileged, when it was terminated and when it last signed in (as the listing said).
//! Built from the accounts a poll read, looked up by account id or (case-insensitively) login.

use crate::model::{Account, Status, Timestamp};

use super::fx::FxHashMap;

/// One account, as far as the detectors care.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountFacts {
    pub id: String,
    pub login: String,
    /// Holds an administrative role.
    pub privileged: bool,
    /// Left the organisation (HR leave date), or deprovisioned: a sign-in is a leaver's.
    pub terminated: Option<Timestamp>,
    pub deprovisioned: bool,
    /// Last sign-in as the listing reported it (may already include the event being judged).
    pub last_login: Option<Timestamp>,
}

impl AccountFacts {
    pub fn of(a: &Account) -> AccountFacts {
        AccountFacts {
            id: a.id.clone(),
            login: a.login.clone(),
            privileged: a.is_privileged(),
            terminated: a.terminated,
            deprovisioned: matches!(a.status, Status::Deprovisioned),
            last_login: a.last_login.value().copied(),
        }
    }
}

/// The listing, indexed.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    list: Vec<AccountFacts>,
    by_id: FxHashMap<String, u32>,
    by_login: FxHashMap<String, u32>,
}

impl Facts {
    pub fn add(&mut self, f: AccountFacts) {
        let i = self.list.len() as u32;
        if self.by_id.contains_key(&f.id) {
            return;
        }
        self.by_id.insert(f.id.clone(), i);
        self.by_login.entry(f.login.to_lowercase()).or_insert(i);
        self.list.push(f);
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The account an event names: by id first, then by login (ignoring case).
    pub fn lookup(&self, id: Option<&str>, login: Option<&str>) -> Option<&AccountFacts> {
        if self.list.is_empty() {
            return None;
        }
        if let Some(i) = id.and_then(|id| self.by_id.get(id)) {
            return self.list.get(*i as usize);
        }
        let login = login?;
        let i = match self.by_login.get(login) {
            Some(i) => i,
            // Logins are indexed lower-cased: only a login that is not already so can still
            // match (no allocation for every unknown login).
            None if login.bytes().any(|b| b.is_ascii_uppercase()) || !login.is_ascii() => {
                self.by_login.get(&login.to_lowercase())?
            }
            None => return None,
        };
        self.list.get(*i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_id_or_login_ignoring_case() {
        let mut f = Facts::default();
        let mut a = Account::new("00u1", "Alice@Example.com");
        a.roles = Some(vec![crate::model::Role {
            name: "SUPER_ADMIN".into(),
            last_used: crate::model::Known::Unknown,
        }]);
        f.add(AccountFacts::of(&a));
        f.add(AccountFacts::of(&Account::new("00u1", "dup@example.com")));
        assert_eq!(f.len(), 1, "same id once");
        assert!(f.lookup(Some("00u1"), None).unwrap().privileged);
        assert_eq!(
            f.lookup(None, Some("alice@example.com")).unwrap().id,
            "00u1"
        );
        assert_eq!(
            f.lookup(Some("nope"), Some("ALICE@example.com"))
                .unwrap()
                .id,
            "00u1"
        );
        assert!(f.lookup(None, None).is_none());
        assert!(f.lookup(Some("x"), Some("y")).is_none());
    }
}
