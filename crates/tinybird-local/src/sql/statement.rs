//! The text of a `/v0/sql` query: Tinybird's trailing `FORMAT <name>` clause.
//!
//! ClickHouse picks the output format from a `FORMAT` clause at the end of the query; SQLite
//! has no such clause, so it is cut off here and turned into a [`SqlFormat`]. Only the last
//! two words are looked at: whatever remains is compiled and checked by SQLite, so a
//! misread clause can only make a query fail, never let it read more.

/// An output format `/v0/sql` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFormat {
    /// `FORMAT JSON` (the default here): the pipe JSON envelope.
    Json,
    /// `FORMAT CSV`: rows only, no header (as ClickHouse does).
    Csv,
    /// `FORMAT CSVWithNames`: a header row, then rows.
    CsvWithNames,
    /// `FORMAT JSONEachRow`: one JSON object per line.
    JsonEachRow,
}

/// The formats accepted, as ClickHouse spells them (matched case-insensitively).
pub const FORMAT_NAMES: &[(&str, SqlFormat)] = &[
    ("JSON", SqlFormat::Json),
    ("CSV", SqlFormat::Csv),
    ("CSVWithNames", SqlFormat::CsvWithNames),
    ("JSONEachRow", SqlFormat::JsonEachRow),
];

/// A `FORMAT` clause naming a format the local endpoint does not produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "format {0} is not supported by the local endpoint: end the query with FORMAT JSON, CSV, CSVWithNames or JSONEachRow"
)]
pub struct UnsupportedFormat(pub String);

/// Splits `SELECT ... FORMAT CSV` into the SQL and the format; JSON when there is no clause.
/// Trailing whitespace and semicolons around the clause are dropped.
pub fn split_format(query: &str) -> Result<(&str, SqlFormat), UnsupportedFormat> {
    let sql = trim_end(query);
    let Some((rest, last)) = sql.rsplit_once(char::is_whitespace) else {
        return Ok((sql, SqlFormat::Json));
    };
    let rest = rest.trim_end();
    let Some(head) = strip_suffix_word(rest, "FORMAT") else {
        return Ok((sql, SqlFormat::Json));
    };
    let format = FORMAT_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(last))
        .map(|(_, f)| *f)
        .ok_or_else(|| UnsupportedFormat(last.chars().take(40).collect()))?;
    Ok((trim_end(head), format))
}

fn trim_end(s: &str) -> &str {
    s.trim_end_matches(|c: char| c.is_whitespace() || c == ';')
}

/// `s` without a final whole word `word` (case-insensitive), if it ends with one.
fn strip_suffix_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(word.len())?;
    let (head, tail) = (s.get(..cut)?, s.get(cut..)?);
    let whole_word = head.is_empty() || head.ends_with(char::is_whitespace);
    (whole_word && tail.eq_ignore_ascii_case(word)).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_format_clause_picks_the_format() {
        let cases = [
            ("SELECT 1", "SELECT 1", SqlFormat::Json),
            ("SELECT 1 FORMAT JSON", "SELECT 1", SqlFormat::Json),
            ("select 1\nformat csv;  ", "select 1", SqlFormat::Csv),
            (
                "SELECT 1 FORMAT CSVWithNames",
                "SELECT 1",
                SqlFormat::CsvWithNames,
            ),
            (
                "SELECT 1 ; FORMAT JSONEachRow ;",
                "SELECT 1",
                SqlFormat::JsonEachRow,
            ),
            ("SELECT 1;", "SELECT 1", SqlFormat::Json),
        ];
        for (query, sql, format) in cases {
            assert_eq!(split_format(query), Ok((sql, format)), "{query:?}");
        }
    }

    #[test]
    fn words_that_only_look_like_the_clause_are_left_alone() {
        for query in [
            "SELECT 'FORMAT JSON'",
            "SELECT x AS format",
            "SELECT xformat JSON",
            "FORMAT",
            "",
        ] {
            let (sql, format) = split_format(query).unwrap();
            assert_eq!((sql, format), (query, SqlFormat::Json), "{query:?}");
        }
    }

    #[test]
    fn other_formats_are_refused_by_name() {
        let err = split_format("SELECT 1 FORMAT Parquet").unwrap_err();
        assert_eq!(err, UnsupportedFormat("Parquet".into()));
        assert!(err.to_string().contains("FORMAT JSON, CSV"));
    }
}
