//! The IAM credential report (`GetCredentialReport`, CSV) parsed into rows: columns found by
//! their header name, every cell form AWS and moto write (`N/A`, `no_information`,
//! `not_supported`, ISO 8601 dates, `true`/`TRUE`) kept apart, nothing guessed.

use crate::model::{parse_ts, Timestamp};

/// The name the report gives the account's root user.
pub const ROOT_USER: &str = "<root_account>";

/// A date column's cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// A date (`2024-01-02T03:04:05+00:00`).
    At(Timestamp),
    /// `no_information`: never happened, or not since IAM started tracking it (2014/2015).
    NoInformation,
    /// `N/A`: does not apply (no password, no such key).
    NotApplicable,
    /// `not_supported`: the column does not apply to this row (root's password columns).
    NotSupported,
    /// Empty, a missing column, or anything else: unknown.
    Unknown,
}

impl Cell {
    fn parse(s: Option<&str>) -> Cell {
        let Some(s) = s.map(str::trim) else {
            return Cell::Unknown;
        };
        if s.eq_ignore_ascii_case("N/A") {
            Cell::NotApplicable
        } else if s.eq_ignore_ascii_case("no_information") {
            Cell::NoInformation
        } else if s.eq_ignore_ascii_case("not_supported") {
            Cell::NotSupported
        } else {
            parse_ts(s).map(Cell::At).unwrap_or(Cell::Unknown)
        }
    }

    pub fn date(self) -> Option<Timestamp> {
        match self {
            Cell::At(t) => Some(t),
            _ => None,
        }
    }
}

/// A boolean column's cell: `true`/`false` in any case; `not_supported` and anything else
/// is unknown (`None`).
fn flag(s: Option<&str>) -> Option<bool> {
    let s = s?.trim();
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `access_key_N_*` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyColumns {
    pub active: Option<bool>,
    /// Creation or last rotation. Trusted only for an active key (moto fills it for inactive
    /// ones too; AWS documents `N/A` without an active key).
    pub last_rotated: Cell,
    /// `N/A` when never used (or not since 2015-04-22).
    pub last_used: Cell,
}

/// `cert_N_*` columns (X.509 signing certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertColumns {
    pub active: Option<bool>,
    pub last_rotated: Cell,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub user: String,
    pub arn: String,
    pub user_creation_time: Cell,
    /// `None` for root (`not_supported`: root always has a password) and unknown values.
    pub password_enabled: Option<bool>,
    pub password_last_used: Cell,
    pub password_last_changed: Cell,
    pub password_next_rotation: Cell,
    pub mfa_active: Option<bool>,
    pub keys: [KeyColumns; 2],
    pub certs: [CertColumns; 2],
}

impl ReportRow {
    pub fn is_root(&self) -> bool {
        self.user == ROOT_USER
    }
    /// Active access keys, with their number (1 or 2).
    pub fn active_keys(&self) -> impl Iterator<Item = (usize, &KeyColumns)> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.active == Some(true))
            .map(|(i, k)| (i + 1, k))
    }
    pub fn active_certs(&self) -> impl Iterator<Item = (usize, &CertColumns)> {
        self.certs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.active == Some(true))
            .map(|(i, c)| (i + 1, c))
    }
}

/// Why a report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the credential report is empty")]
    Empty,
    #[error("the credential report is not CSV text: {0}")]
    NotCsv(String),
    #[error("the credential report has no {0:?} column (header: {1})")]
    MissingColumn(&'static str, String),
    #[error("credential report line {line}: {message}")]
    Row { line: u64, message: String },
}

/// Column positions, found by name.
struct Columns {
    idx: std::collections::HashMap<String, usize>,
}

impl Columns {
    fn get<'r>(&self, rec: &'r csv::StringRecord, name: &str) -> Option<&'r str> {
        self.idx.get(name).and_then(|&i| rec.get(i))
    }
}

/// Parses the report's CSV. Unknown columns are ignored and missing optional columns read as
/// unknown, so a new AWS column or a shortened report never breaks a poll; `user` and `arn`
/// are required. A row without a user name or ARN is an error naming its line.
pub fn parse(content: &[u8]) -> Result<Vec<ReportRow>, ReportError> {
    if content.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReportError::Empty);
    }
    let text = std::str::from_utf8(content).map_err(|e| ReportError::NotCsv(e.to_string()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = rdr
        .headers()
        .map_err(|e| ReportError::NotCsv(e.to_string()))?
        .clone();
    let cols = Columns {
        idx: header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_ascii_lowercase(), i))
            .collect(),
    };
    let shown = || {
        let h: Vec<&str> = header.iter().take(8).collect();
        let mut s = h.join(",");
        if s.len() > 200 {
            s.truncate(200);
        }
        s
    };
    for required in ["user", "arn"] {
        if !cols.idx.contains_key(required) {
            return Err(ReportError::MissingColumn(required, shown()));
        }
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| ReportError::Row {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            message: e.to_string(),
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let text = |name: &str| cols.get(&rec, name).unwrap_or("").to_string();
        let (user, arn) = (text("user"), text("arn"));
        if user.is_empty() || arn.is_empty() {
            return Err(ReportError::Row {
                line,
                message: "a row without a user name or ARN".into(),
            });
        }
        let cell = |name: &str| Cell::parse(cols.get(&rec, name));
        let key = |n: u8| KeyColumns {
            active: flag(cols.get(&rec, &format!("access_key_{n}_active"))),
            last_rotated: cell(&format!("access_key_{n}_last_rotated")),
            last_used: cell(&format!("access_key_{n}_last_used_date")),
        };
        let cert = |n: u8| CertColumns {
            active: flag(cols.get(&rec, &format!("cert_{n}_active"))),
            last_rotated: cell(&format!("cert_{n}_last_rotated")),
        };
        rows.push(ReportRow {
            user,
            arn,
            user_creation_time: cell("user_creation_time"),
            password_enabled: flag(cols.get(&rec, "password_enabled")),
            password_last_used: cell("password_last_used"),
            password_last_changed: cell("password_last_changed"),
            password_next_rotation: cell("password_next_rotation"),
            mfa_active: flag(cols.get(&rec, "mfa_active")),
            keys: [key(1), key(2)],
            certs: [cert(1), cert(2)],
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    fn report(rows: &[&str]) -> Vec<ReportRow> {
        let mut s = HEADER.to_string() + "\n";
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn root_row_as_aws_writes_it() {
        let r = report(&["<root_account>,arn:aws:iam::123456789012:root,2023-08-18T06:34:10+00:00,not_supported,2026-11-27T06:34:10+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"]);
        let root = &r[0];
        assert!(root.is_root());
        assert_eq!(root.password_enabled, None, "not_supported is not 'no password'");
        assert_eq!(
            root.password_last_used,
            Cell::At(datetime!(2026-11-27 06:34:10 UTC))
        );
        assert_eq!(root.password_last_changed, Cell::NotSupported);
        assert_eq!(root.password_next_rotation, Cell::NotSupported);
        assert_eq!(root.mfa_active, Some(true));
        assert_eq!(root.active_keys().count(), 0);
        assert_eq!(root.keys[0].last_rotated, Cell::NotApplicable);
        assert_eq!(
            root.user_creation_time,
            Cell::At(datetime!(2023-08-18 06:34:10 UTC))
        );
    }

    #[test]
    fn every_cell_form() {
        let r = report(&[
            // AWS: a console user who never signed in, with one used key.
            "alice,arn:aws:iam::1:user/alice,2026-11-30T05:51:55+00:00,TRUE,no_information,2026-11-30T05:51:55+00:00,N/A,TRUE,TRUE,2026-11-30T05:51:55+00:00,2026-11-30T05:51:56+00:00,us-east-1,iam,FALSE,N/A,N/A,N/A,N/A,FALSE,N/A,FALSE,N/A",
            // moto: no password → not_supported in password_last_used; an inactive key with a date.
            "svc,arn:aws:iam::1:user/svc,2026-11-30T05:51:55+00:00,false,not_supported,2026-11-30T05:51:55+00:00,not_supported,false,true,2026-11-30T05:51:55+00:00,N/A,not_supported,not_supported,false,2026-11-30T05:51:55+00:00,N/A,not_supported,not_supported,true,N/A,false,N/A",
        ]);
        let a = &r[0];
        assert_eq!(a.password_enabled, Some(true), "upper case TRUE");
        assert_eq!(a.password_last_used, Cell::NoInformation);
        assert_eq!(a.password_next_rotation, Cell::NotApplicable);
        assert_eq!(a.mfa_active, Some(true));
        assert_eq!(
            a.keys[0].last_used,
            Cell::At(datetime!(2026-11-30 05:51:56 UTC))
        );
        assert_eq!(a.active_keys().map(|(n, _)| n).collect::<Vec<_>>(), vec![1]);
        let s = &r[1];
        assert_eq!(s.password_enabled, Some(false));
        assert_eq!(s.password_last_used, Cell::NotSupported);
        assert_eq!(s.keys[0].last_used, Cell::NotApplicable);
        assert_eq!(s.keys[1].active, Some(false));
        assert!(s.keys[1].last_rotated.date().is_some(), "kept, but not trusted");
        assert_eq!(s.active_keys().count(), 1);
        assert_eq!(s.active_certs().map(|(n, _)| n).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.certs[0].last_rotated, Cell::NotApplicable);
    }

    #[test]
    fn columns_are_found_by_name_and_garbage_is_unknown() {
        // Reordered, a new column, a missing one (cert_2_*), and junk in date and flag cells.
        let csv = "arn,user,new_column,mfa_active,password_enabled,password_last_used,user_creation_time\n\
                   arn:aws:iam::1:user/x,x,whatever,maybe,true,yesterday,2026-01-02\n";
        let r = parse(csv.as_bytes()).unwrap();
        assert_eq!(r[0].user, "x");
        assert_eq!(r[0].mfa_active, None);
        assert_eq!(r[0].password_enabled, Some(true));
        assert_eq!(r[0].password_last_used, Cell::Unknown);
        assert_eq!(
            r[0].user_creation_time,
            Cell::At(datetime!(2026-01-02 00:00 UTC)),
            "a bare date is midnight UTC"
        );
        assert_eq!(r[0].keys[0].active, None);
        assert_eq!(r[0].certs[1].last_rotated, Cell::Unknown);
    }

    #[test]
    fn broken_reports_are_errors_never_panics() {
        assert_eq!(parse(b""), Err(ReportError::Empty));
        assert_eq!(parse(b" \n"), Err(ReportError::Empty));
        assert!(matches!(parse(&[0xff, 0xfe, b'a']), Err(ReportError::NotCsv(_))));
        assert!(matches!(
            parse(b"<html><body>Sign in</body></html>\n"),
            Err(ReportError::MissingColumn("user", _))
        ));
        let e = parse(b"user,arn\nalice,\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        // A quoted field with an embedded comma and a CRLF line end still parse.
        let r = parse(b"user,arn,mfa_active\r\n\"a,b\",arn:x,true\r\n").unwrap();
        assert_eq!(r[0].user, "a,b");
        assert_eq!(r[0].mfa_active, Some(true));
        // Blank lines are skipped; a header alone is an empty account list.
        assert!(parse(b"user,arn\n").unwrap().is_empty());
    }
}
