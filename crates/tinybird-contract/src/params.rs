//! Query and form parameters as Tinybird sees them: an ordered multimap of strings.
//!
//! Both the local endpoint and the proxy need the same operations: parse a query string or a
//! form body strictly (invalid UTF-8 is an error, never a silent U+FFFD), read the first or all
//! values of a name (array params repeat the key), overwrite a name with a fixed value (fixed
//! params always win), drop a name (`token`), and serialise back for an upstream call.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Whether Tinybird reads parameter `name` itself rather than passing it to the pipe's
/// template: `q` (SQL over the result), `token`, `format`, `debug`, `explain`, `pipeline`,
/// `query_id`, `tag`, `template_parameters`, and every name starting `__tb__` or
/// `output_format_` (docs/tinybird.md, "Calling a pipe"). A proxy that forwarded them would
/// let a client change what Tinybird runs beyond the pipe's own parameters.
pub fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "q" | "token"
            | "format"
            | "debug"
            | "explain"
            | "pipeline"
            | "query_id"
            | "tag"
            | "template_parameters"
    ) || name.starts_with("__tb__")
        || name.starts_with("output_format_")
}

/// Why a query string or form body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    /// A name or value decoded to bytes that are not UTF-8.
    #[error("parameter {0} is not valid UTF-8 once percent-decoded")]
    InvalidUtf8(String),
}

/// An ordered list of `(name, value)` pairs; names may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Characters left as they are when encoding (the `application/x-www-form-urlencoded` set).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

impl Params {
    /// Parses `a=1&b=2&a=3` (a query string without `?`, or a form body). `+` is a space.
    /// Empty segments (`a=1&&b=2`) are skipped; a name without `=` has an empty value.
    pub fn parse(input: &str) -> Result<Self, ParamsError> {
        let mut pairs = Vec::new();
        for segment in input.split('&').filter(|s| !s.is_empty()) {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            let name = decode(name)?;
            let value = decode(value).map_err(|_| ParamsError::InvalidUtf8(name.clone()))?;
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// Parses raw bytes (a form body), refusing invalid UTF-8 before decoding.
    pub fn parse_bytes(input: &[u8]) -> Result<Self, ParamsError> {
        let text = std::str::from_utf8(input)
            .map_err(|_| ParamsError::InvalidUtf8("(request body)".into()))?;
        Self::parse(text)
    }

    /// The first value of `name`, if any.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair's name, in order (a repeated name appears each time).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }

    /// Whether `name` appears at all.
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// Replaces every occurrence of `name` with one `value` (how fixed params win).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.pairs.push((name.to_owned(), value.into()));
    }

    /// Appends a pair, keeping any existing ones.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((name.into(), value.into()));
    }

    /// Removes every occurrence of `name`.
    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(n, _)| n != name);
    }

    /// All pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Overwrites each name of `fixed` (a JWT's or a grant's fixed params) with its value:
    /// fixed params always win over whatever the request sent under the same name.
    pub fn apply_fixed(&mut self, fixed: &serde_json::Map<String, serde_json::Value>) {
        for (name, value) in fixed {
            self.set(name, fixed_value_text(value));
        }
    }

    /// Appends every pair of `other` (a form body after the query string).
    pub fn extend(&mut self, other: Params) {
        self.pairs.extend(other.pairs);
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Serialises as `application/x-www-form-urlencoded` (also a valid query string).
    pub fn to_query_string(&self) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.extend(utf8_percent_encode(name, FORM));
            out.push('=');
            out.extend(utf8_percent_encode(value, FORM));
        }
        out
    }
}

/// A fixed param as a request parameter: strings as they are, arrays comma-joined (Tinybird's
/// array syntax), other scalars in their JSON spelling, null as empty.
pub fn fixed_value_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(fixed_value_text)
            .collect::<Vec<_>>()
            .join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn decode(raw: &str) -> Result<String, ParamsError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ParamsError::InvalidUtf8(String::from_utf8_lossy(raw.as_bytes()).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repeats_plus_and_percent() {
        let p = Params::parse("a=1&b=x+y&a=%32&c&&d=%C3%A9").unwrap();
        assert_eq!(p.all("a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(p.first("b"), Some("x y"));
        assert_eq!(p.first("c"), Some(""));
        assert_eq!(p.first("d"), Some("é"));
        assert_eq!(p.first("missing"), None);
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_parameter() {
        assert_eq!(
            Params::parse("org=%FF"),
            Err(ParamsError::InvalidUtf8("org".into()))
        );
        assert!(Params::parse_bytes(b"a=\xff").is_err());
    }

    #[test]
    fn set_replaces_every_occurrence_and_round_trips() {
        let mut p = Params::parse("org_id=b&x=1&org_id=c&ORG_ID=d").unwrap();
        p.set("org_id", "a&b=c");
        p.remove("x");
        let q = p.to_query_string();
        assert_eq!(q, "ORG_ID=d&org_id=a%26b%3Dc");
        assert_eq!(Params::parse(&q).unwrap(), p);
    }
}
