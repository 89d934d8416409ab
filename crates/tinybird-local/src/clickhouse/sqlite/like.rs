//! ClickHouse's `LIKE` (`%`, `_`, backslash escapes; on characters), in time linear in the
//! text for every pattern whose `_`s sit next to a `%` or at its ends, and interruptible by the
//! query's deadline for the rest.
//!
//! The textbook matcher with one backtrack point takes `O(text × pattern)` steps inside one
//! function call: a 1 MB pattern over a 16 MB text runs for hours, out of reach of SQLite's
//! progress handler. Here the pattern is cut at its `%`s into segments; the first must match
//! at the start, the last at the end, and each one between at its leftmost place after the
//! previous (greedy is optimal when `%` is the only wildcard of variable length). A segment
//! without `_` is found with `str::find` (two-way search: linear); one with `_` is tried at
//! each position, which can be quadratic, so that search counts its work against the deadline
//! ([`crate::budget::tick_n`]).

use crate::budget;

/// One character of a segment: itself, or `_` (any one character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Char(char),
    Any,
}

/// The text between two `%`s.
#[derive(Debug, Default)]
struct Segment {
    units: Vec<Unit>,
    /// The segment as text, when it has no `_` (found with `str::find`).
    literal: Option<String>,
}

impl Segment {
    fn finish(mut self) -> Self {
        if self.units.iter().all(|u| matches!(u, Unit::Char(_))) {
            self.literal = Some(
                self.units
                    .iter()
                    .map(|u| match u {
                        Unit::Char(c) => *c,
                        Unit::Any => unreachable!("checked above"),
                    })
                    .collect(),
            );
        }
        self
    }
}

/// Cuts a pattern at its unescaped `%`s (a trailing lone backslash is a literal one).
fn segments(pattern: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut current = Segment::default();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some() => {
                let escaped = chars.next().expect("peeked");
                current.units.push(Unit::Char(escaped));
            }
            '%' => out.push(std::mem::take(&mut current).finish()),
            '_' => current.units.push(Unit::Any),
            c => current.units.push(Unit::Char(c)),
        }
    }
    out.push(current.finish());
    out
}

/// Where `segment` ends if it matches `text` from byte `start`, within `text[..limit]`.
fn match_at(text: &str, start: usize, limit: usize, segment: &Segment) -> Option<usize> {
    let mut chars = text[start..limit].char_indices();
    for unit in &segment.units {
        let (_, c) = chars.next()?;
        if let Unit::Char(want) = unit
            && *want != c
        {
            return None;
        }
    }
    Some(chars.next().map_or(limit, |(i, _)| start + i))
}

/// The leftmost place at or after `from` where `segment` matches inside `text[..limit]`, as
/// (start, end) byte offsets.
fn find(
    text: &str,
    from: usize,
    limit: usize,
    segment: &Segment,
) -> rusqlite::Result<Option<(usize, usize)>> {
    if let Some(literal) = &segment.literal {
        let found = text[from..limit]
            .find(literal.as_str())
            .map(|i| (from + i, from + i + literal.len()));
        // Two-way search reads about what it passes over, plus the needle.
        budget::tick_n(found.map_or(limit, |(_, end)| end) - from + literal.len())?;
        return Ok(found);
    }
    for (i, _) in text[from..limit].char_indices() {
        budget::tick_n(segment.units.len())?;
        if let Some(end) = match_at(text, from + i, limit, segment) {
            return Ok(Some((from + i, end)));
        }
    }
    Ok(None)
}

/// Byte offset where the last `n` characters of `text` start, if it has that many.
fn last_chars_start(text: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return Some(text.len());
    }
    text.char_indices().rev().nth(n - 1).map(|(i, _)| i)
}

/// Whether `text` matches the `LIKE` `pattern`; `fold` compares case-insensitively (`ILIKE`).
/// Errors only when the query's deadline passes.
pub fn like(text: &str, pattern: &str, fold: bool) -> rusqlite::Result<bool> {
    if fold {
        budget::tick_n(text.len() + pattern.len())?;
        return like(&text.to_lowercase(), &pattern.to_lowercase(), false);
    }
    let segments = segments(pattern);
    let (first, rest) = segments.split_first().expect("at least one segment");
    let Some((last, middle)) = rest.split_last() else {
        // No `%`: the whole text, character for character.
        return Ok(match_at(text, 0, text.len(), first) == Some(text.len()));
    };
    let Some(mut pos) = match_at(text, 0, text.len(), first) else {
        return Ok(false);
    };
    let Some(tail) = last_chars_start(text, last.units.len()) else {
        return Ok(false);
    };
    if tail < pos || match_at(text, tail, text.len(), last) != Some(text.len()) {
        return Ok(false);
    }
    for segment in middle {
        match find(text, pos, tail, segment)? {
            Some((_, end)) => pos = end,
            None => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::like;

    fn m(text: &str, pattern: &str) -> bool {
        like(text, pattern, false).unwrap()
    }

    /// The textbook backtracking matcher, as the reference the segment matcher must agree with.
    fn reference(t: &[char], p: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|i| reference(&t[i..], &p[1..])),
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && reference(&t[1..], &p[2..]),
            Some('_') => !t.is_empty() && reference(&t[1..], &p[1..]),
            Some(c) => t.first() == Some(c) && reference(&t[1..], &p[1..]),
        }
    }

    #[test]
    fn agrees_with_the_textbook_matcher_on_every_small_case() {
        let alphabet = ['a', 'b', '%', '_', '\\'];
        let texts = [
            "", "a", "b", "ab", "ba", "aab", "abab", "a%b", "a_", "bbab", "\\a",
        ];
        // Every pattern of up to 4 symbols over the alphabet.
        let mut patterns = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = patterns
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            patterns.extend(longer);
        }
        patterns.sort();
        patterns.dedup();
        for text in texts {
            for pattern in &patterns {
                let t: Vec<char> = text.chars().collect();
                let p: Vec<char> = pattern.chars().collect();
                assert_eq!(
                    m(text, pattern),
                    reference(&t, &p),
                    "{text:?} LIKE {pattern:?}"
                );
            }
        }
    }

    #[test]
    fn characters_not_bytes_and_case_folding() {
        assert!(m("héllo", "h_llo"));
        assert!(m("日本語", "%本_"));
        assert!(!m("Trail", "trail"));
        assert!(like("Trail", "tRAIL", true).unwrap());
        assert!(m("a%c", "a\\%c"));
        assert!(!m("abc", "a\\%c"));
        assert!(m("ends with \\", "%\\"));
    }

    #[test]
    fn a_long_pattern_over_a_long_text_is_linear() {
        use crate::budget;
        // The textbook matcher takes ~n²/4 steps here (minutes at these sizes); the work
        // counted must stay a small multiple of the input.
        let text = "a".repeat(4_000_000);
        for pattern in [
            format!("%{}b", "a".repeat(2_000_000)),
            format!("%{}%{}", "a".repeat(1_000_000), "a".repeat(1_000_000)),
            format!("_%{}%_", "a".repeat(1_000_000)),
        ] {
            let _scope = budget::enter(budget::FunctionLimits::default());
            m(&text, &pattern);
            let work = budget::work_done();
            assert!(
                work <= 2 * (text.len() + pattern.len()) as u64,
                "{work} units of work for {} + {} bytes",
                text.len(),
                pattern.len()
            );
        }
        assert!(m(&text, &format!("%{}%{}", "a".repeat(9), "a".repeat(9))));
        assert!(!m(&text, &format!("%{}b", "a".repeat(2_000_000))));
    }

    #[test]
    fn a_pattern_with_inner_underscores_stops_at_the_deadline() {
        use crate::budget;
        use std::time::{Duration, Instant};
        let text = "a".repeat(1_000_000);
        let pattern = format!("%{}_b%", "a".repeat(100_000));
        let _scope = budget::enter(budget::FunctionLimits {
            deadline: Some(Instant::now() - Duration::from_millis(1)),
            ..budget::FunctionLimits::default()
        });
        assert!(like(&text, &pattern, false).is_err());
        assert_eq!(budget::take_trip(), Some(budget::Trip::Deadline));
    }
}
