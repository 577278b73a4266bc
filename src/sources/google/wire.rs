//! Admin SDK wire types the Google source reads, defensively: every field is optional and
//! tolerant of a wrong type, unknown fields are ignored, and a list item that is not an object
//! is skipped and counted rather than failing its page. Shapes confirmed against the `admin`
//! `directory_v1` discovery document (`googleapis/google-api-go-client`,
//! `admin/directory/v1/admin-api.json`: `Users`, `User`, `UserName`, `Roles`, `Role`,
//! `RoleAssignments`, `RoleAssignment`, `Members`, `Member`) and the `reports_v1` one
//! (`Activities`, `Activity`); `isGuestUser` and `assigneeType` are newer than that copy and
//! were confirmed in the generated clients' reference (googleapis Dart package 16.0.0).

use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::sources::lenient;

/// A list whose items that are not objects are skipped and counted. Items are decoded in one
/// pass, straight from the response (no intermediate `serde_json::Value`); a list that is not
/// a list fails the page, naming its JSON path.
#[derive(Debug)]
pub struct Items<T> {
    pub items: Vec<T>,
    pub skipped: usize,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items {
            items: Vec::new(),
            skipped: 0,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Items<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Items<T>, E> {
                Ok(Items::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Items<T>, E> {
                Ok(Items::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<T>, A::Error> {
                let mut out = Items::default();
                while let Some(Slot(item)) = seq.next_element::<Slot<T>>()? {
                    match item {
                        Some(i) => out.items.push(i),
                        None => out.skipped += 1,
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Reads an object as `Some(T)`; any other value is consumed and read as `None`.
struct ObjectOrNone<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOrNone<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
}

/// One list item: `None` when it is not an object.
struct Slot<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectOrNone(PhantomData)).map(Slot)
    }
}

/// A nested object; anything else is unknown (`None`).
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_any(ObjectOrNone(PhantomData))
}

/// A list of objects; other items are dropped, and anything but a list (consumed whole) is
/// empty.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(Slot(item)) = seq.next_element::<Slot<T>>()? {
                out.extend(item);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            Ok(Vec::new())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// An id the API documents as a string, read also when it arrives as a number (int64 ids are
/// strings in JSON, but a hostile or buggy server may send numbers).
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        // Only exact integers: a number too large for 64 bits arrives rounded, and a rounded
        // id would join the wrong user.
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    })
}

/// `admin#directory#users`: one page of `users.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsersPage {
    pub users: Items<User>,
    #[serde(rename = "nextPageToken", deserialize_with = "lenient::string")]
    pub next_page_token: Option<String>,
}

/// `admin#directory#user` (the fields the source maps).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(deserialize_with = "id")]
    pub id: Option<String>,
    #[serde(rename = "primaryEmail", deserialize_with = "lenient::string")]
    pub primary_email: Option<String>,
    #[serde(deserialize_with = "object")]
    pub name: Option<UserName>,
    /// Super administrator (only the super-admin role sets it).
    #[serde(rename = "isAdmin", deserialize_with = "lenient::boolean")]
    pub is_admin: Option<bool>,
    /// Holds an admin role other than super admin.
    #[serde(rename = "isDelegatedAdmin", deserialize_with = "lenient::boolean")]
    pub is_delegated_admin: Option<bool>,
    #[serde(rename = "isEnrolledIn2Sv", deserialize_with = "lenient::boolean")]
    pub is_enrolled_in_2sv: Option<bool>,
    #[serde(rename = "isEnforcedIn2Sv", deserialize_with = "lenient::boolean")]
    pub is_enforced_in_2sv: Option<bool>,
    /// RFC 3339; `1970-01-01T00:00:00.000Z` for a user who never signed in.
    #[serde(rename = "lastLoginTime", deserialize_with = "lenient::string")]
    pub last_login_time: Option<String>,
    #[serde(rename = "creationTime", deserialize_with = "lenient::string")]
    pub creation_time: Option<String>,
    /// Set on deleted users (listed only with `showDeleted`, which the source does not ask for).
    #[serde(rename = "deletionTime", deserialize_with = "lenient::string")]
    pub deletion_time: Option<String>,
    #[serde(deserialize_with = "lenient::boolean")]
    pub suspended: Option<bool>,
    /// Present only when suspended (`ADMIN`, `ABUSE`, `UNDER13`, `WEB_LOGIN_REQUIRED`).
    #[serde(rename = "suspensionReason", deserialize_with = "lenient::string")]
    pub suspension_reason: Option<String>,
    #[serde(deserialize_with = "lenient::boolean")]
    pub archived: Option<bool>,
    /// `/` for the top-level organisational unit.
    #[serde(rename = "orgUnitPath", deserialize_with = "lenient::string")]
    pub org_unit_path: Option<String>,
    #[serde(rename = "isGuestUser", deserialize_with = "lenient::boolean")]
    pub is_guest_user: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserName {
    #[serde(rename = "fullName", deserialize_with = "lenient::string")]
    pub full_name: Option<String>,
    #[serde(rename = "givenName", deserialize_with = "lenient::string")]
    pub given_name: Option<String>,
    #[serde(rename = "familyName", deserialize_with = "lenient::string")]
    pub family_name: Option<String>,
}

/// `admin#directory#roles` / `admin#directory#roleAssignments` / `admin#reports#activities`:
/// the pages that keep their list in `items`.
#[derive(Debug, Deserialize)]
#[serde(default, bound(deserialize = "T: Deserialize<'de>"))]
pub struct ItemsPage<T> {
    pub items: Items<T>,
    #[serde(rename = "nextPageToken", deserialize_with = "lenient::string")]
    pub next_page_token: Option<String>,
}

impl<T> Default for ItemsPage<T> {
    fn default() -> Self {
        ItemsPage {
            items: Items::default(),
            next_page_token: None,
        }
    }
}

/// `admin#directory#role`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Role {
    #[serde(rename = "roleId", deserialize_with = "id")]
    pub role_id: Option<String>,
    /// Built-in roles have names such as `_SEED_ADMIN_ROLE` (super admin).
    #[serde(rename = "roleName", deserialize_with = "lenient::string")]
    pub role_name: Option<String>,
    #[serde(rename = "roleDescription", deserialize_with = "lenient::string")]
    pub role_description: Option<String>,
    #[serde(rename = "isSuperAdminRole", deserialize_with = "lenient::boolean")]
    pub is_super_admin_role: Option<bool>,
    #[serde(rename = "isSystemRole", deserialize_with = "lenient::boolean")]
    pub is_system_role: Option<bool>,
}

/// `admin#directory#roleAssignment`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoleAssignment {
    #[serde(rename = "roleAssignmentId", deserialize_with = "id")]
    pub role_assignment_id: Option<String>,
    #[serde(rename = "roleId", deserialize_with = "id")]
    pub role_id: Option<String>,
    /// A user id, a group id, or a service account's unique id.
    #[serde(rename = "assignedTo", deserialize_with = "id")]
    pub assigned_to: Option<String>,
    /// `user` or `group` (output only; the reference's prose spells them `USER` / `GROUP`).
    #[serde(rename = "assigneeType", deserialize_with = "lenient::string")]
    pub assignee_type: Option<String>,
    /// `CUSTOMER` or `ORG_UNIT`.
    #[serde(rename = "scopeType", deserialize_with = "lenient::string")]
    pub scope_type: Option<String>,
    #[serde(rename = "orgUnitId", deserialize_with = "lenient::string")]
    pub org_unit_id: Option<String>,
}

/// `admin#directory#members`: one page of `members.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MembersPage {
    pub members: Items<Member>,
    #[serde(rename = "nextPageToken", deserialize_with = "lenient::string")]
    pub next_page_token: Option<String>,
}

/// `admin#directory#member`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Member {
    #[serde(deserialize_with = "id")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub email: Option<String>,
    /// `USER`, `GROUP`, `CUSTOMER` (everyone in the account), `EXTERNAL`.
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub member_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub status: Option<String>,
}

/// `admin#reports#activity` (the fields the login audit and the sign-in stream need).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Activity {
    #[serde(deserialize_with = "object")]
    pub id: Option<ActivityId>,
    #[serde(deserialize_with = "object")]
    pub actor: Option<Actor>,
    #[serde(deserialize_with = "objects")]
    pub events: Vec<Event>,
    /// The address the user signed in from (IPv4 or IPv6).
    #[serde(rename = "ipAddress", deserialize_with = "lenient::string")]
    pub ip_address: Option<String>,
    /// `ActivityNetworkInfo` (discovery revision 20251124): `regionCode` is the ISO 3166-1
    /// alpha-2 country of the address. No coordinates anywhere in an activity.
    #[serde(rename = "networkInfo", deserialize_with = "object")]
    pub network_info: Option<NetworkInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkInfo {
    #[serde(rename = "regionCode", deserialize_with = "lenient::string")]
    pub region_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActivityId {
    #[serde(deserialize_with = "lenient::string")]
    pub time: Option<String>,
    #[serde(rename = "uniqueQualifier", deserialize_with = "id")]
    pub unique_qualifier: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Actor {
    #[serde(deserialize_with = "lenient::string")]
    pub email: Option<String>,
    /// The user's id (as in the Directory API).
    #[serde(rename = "profileId", deserialize_with = "id")]
    pub profile_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    /// The event type (`login`, `account_warning`, `2sv_change` …).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub event_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "objects")]
    pub parameters: Vec<Parameter>,
}

/// One event parameter: its value is in `value`, `multiValue`, `boolValue`, `intValue` …
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Parameter {
    #[serde(deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub value: Option<String>,
    #[serde(rename = "multiValue", deserialize_with = "lenient::strings")]
    pub multi_value: Vec<String>,
    #[serde(rename = "boolValue", deserialize_with = "lenient::boolean")]
    pub bool_value: Option<bool>,
    /// int64, a string in JSON (a number is read too).
    #[serde(rename = "intValue", deserialize_with = "id")]
    pub int_value: Option<String>,
}


impl Event {
    /// The first boolean value of the parameter `name`.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.parameters
            .iter()
            .filter(|p| p.name.as_deref() == Some(name))
            .find_map(|p| p.bool_value)
    }

    /// Every value of the parameters named `name` (`value` and `multiValue` alike).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.parameters
            .iter()
            .filter(move |p| p.name.as_deref() == Some(name))
            .flat_map(|p| p.value.iter().chain(p.multi_value.iter()))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_page_is_lenient_and_counts_what_it_skips() {
        let p: UsersPage = serde_json::from_str(
            r#"{"kind":"admin#directory#users","users":[
                {"id":"1","primaryEmail":"a@x.com","isEnrolledIn2Sv":true,"isEnforcedIn2Sv":"false",
                 "suspended":7,"name":{"fullName":"A B"},"newField":{"x":1}},
                "not a user",
                {"id":1043315706043791563},
                {"id":104331570604379156316}
              ],"nextPageToken":"t2"}"#,
        )
        .unwrap();
        assert_eq!(p.users.items.len(), 3);
        assert_eq!(p.users.skipped, 1);
        let u = &p.users.items[0];
        assert_eq!(u.is_enrolled_in_2sv, Some(true));
        assert_eq!(u.is_enforced_in_2sv, Some(false));
        assert_eq!(u.suspended, None, "a wrong type is unknown");
        assert_eq!(u.name.as_ref().unwrap().full_name.as_deref(), Some("A B"));
        assert_eq!(p.users.items[1].id.as_deref(), Some("1043315706043791563"));
        assert_eq!(p.users.items[2].id, None, "a rounded number is no id");
        assert_eq!(p.next_page_token.as_deref(), Some("t2"));
        // The last page has no token, an empty customer no users.
        let p: UsersPage = serde_json::from_str(r#"{"kind":"admin#directory#users"}"#).unwrap();
        assert!(p.users.items.is_empty() && p.next_page_token.is_none());
        // A list that is not a list fails the page.
        assert!(serde_json::from_str::<UsersPage>(r#"{"users":{"id":"1"}}"#).is_err());
    }

    #[test]
    fn nested_values_of_the_wrong_shape_are_unknown() {
        let p: UsersPage = serde_json::from_str(
            r#"{"users":[{"id":"1","name":"Grace","isAdmin":true},{"id":"2","name":[1,{"a":2}]},
                        {"id":"3","name":{"fullName":"C"}}, null, 5, [1]]}"#,
        )
        .unwrap();
        assert_eq!(p.users.items.len(), 3);
        assert_eq!(p.users.skipped, 3);
        assert!(p.users.items[0].name.is_none() && p.users.items[0].is_admin == Some(true));
        assert!(p.users.items[1].name.is_none());
        assert_eq!(p.users.items[2].name.as_ref().unwrap().full_name.as_deref(), Some("C"));
        let a: ItemsPage<Activity> = serde_json::from_str(
            r#"{"items":[{"id":"x","actor":[1],"events":{"name":"login_success"}},
                         {"events":[{"name":"login_success","parameters":"none"},7]}],
                "nextPageToken":"n"}"#,
        )
        .unwrap();
        assert_eq!(a.items.items.len(), 2);
        assert!(a.items.items[0].id.is_none() && a.items.items[0].actor.is_none());
        assert!(a.items.items[0].events.is_empty());
        assert_eq!(a.items.items[1].events.len(), 1);
        assert!(a.items.items[1].events[0].parameters.is_empty());
        assert_eq!(a.next_page_token.as_deref(), Some("n"));
    }

    #[test]
    fn login_event_parameters_in_every_form() {
        let a: Activity = serde_json::from_str(
            r#"{"id":{"time":"2026-11-01T09:00:00.000Z","uniqueQualifier":"-42"},
                "actor":{"email":"a@x.com","profileId":"1","callerType":"USER"},
                "events":[{"type":"login","name":"login_success","parameters":[
                  {"name":"login_type","value":"google_password"},
                  {"name":"login_challenge_method","multiValue":["password","security_key",3]},
                  {"name":"login_challenge_method","value":"totp"},
                  {"name":"is_suspicious","boolValue":false}]}]}"#,
        )
        .unwrap();
        let e = &a.events[0];
        let v: Vec<&str> = e.values("login_challenge_method").collect();
        assert_eq!(v, vec!["password", "security_key", "totp"]);
        assert_eq!(a.actor.unwrap().profile_id.as_deref(), Some("1"));
    }
}
