//! String, regex, JSON and URL functions with ClickHouse's semantics: byte positions,
//! case-sensitive `LIKE` (see [`super::like`]), ClickHouse's `\1` replacements. Conversions
//! and rounding live in [`super::convert`].
//!
//! Every function that can answer more than it was given (`repeat`, the pads, the
//! replacements, `splitBy*`, `extractAll`) works out its output's size and asks the query's
//! budget ([`crate::budget`]) before it allocates, and counts its loops against the
//! deadline.

use std::sync::Arc;

use super::arrays::ArrayText;
use super::{flags, int_arg, text_arg};
use crate::budget;
use rusqlite::functions::Context;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Result};

pub use super::like::like;

/// ClickHouse's `substring` on bytes: 1-based, negative offsets count from the end, a
/// negative length stops that many bytes before the end.
pub fn substring(s: &str, offset: i64, len: Option<i64>) -> String {
    let bytes = s.as_bytes();
    let n = bytes.len() as i64;
    let start = match offset {
        0 => return String::new(),
        o if o > 0 => o - 1,
        o => (n + o).max(0),
    };
    let end = match len {
        None => n,
        Some(l) if l >= 0 => start.saturating_add(l),
        Some(l) => n + l,
    };
    let (start, end) = (start.clamp(0, n) as usize, end.clamp(0, n) as usize);
    if start >= end {
        return String::new();
    }
    String::from_utf8_lossy(&bytes[start..end]).into_owned()
}

/// The compiled size a regular expression may reach (the `regex` crate's own default is
/// 10 MiB): matching takes time proportional to text × program in the worst case, so a
/// smaller program keeps one call short.
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

/// Memory compiling a regular expression may take per byte of its pattern.
const COMPILE_BYTES_PER_BYTE: usize = 1024;

/// A compiled pattern and its NFA's state count: in the worst case (when the lazy DFA gives
/// up) matching visits every state for every byte of the text, so `states × text bytes` is
/// the work one call may do, checked against the budget before matching
/// ([`budget::work`]). Compiled once per statement when the pattern is a constant.
pub struct Compiled {
    re: regex::Regex,
    states: usize,
}

fn compile(pattern: &str) -> std::result::Result<Compiled, String> {
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("bad regular expression: {e}"))?;
    let states = regex_automata::nfa::thompson::NFA::compiler()
        .configure(
            regex_automata::nfa::thompson::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
        )
        .build(pattern)
        .map_or(REGEX_SIZE_LIMIT, |nfa| nfa.states().len());
    Ok(Compiled { re, states })
}

/// Argument `i` as a compiled pattern (`None` for NULL), cleared to run over `text_len`
/// bytes for `what`.
fn regex_arg(
    ctx: &Context<'_>,
    i: usize,
    what: &str,
    text_len: usize,
) -> Result<Option<Arc<Compiled>>> {
    if matches!(ctx.get_raw(i), ValueRef::Null) {
        return Ok(None);
    }
    let compiled = ctx.get_or_create_aux(i as i32, |v| {
        let pattern = String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
        budget::tick_n(pattern.len()).map_err(|e| e.to_string())?;
        // Parsing and compiling take a few hundred bytes per byte of pattern before the size
        // limit can say no (376 measured for a 196 KB class): held while compiling.
        let _compiling = budget::hold(what, pattern.len().saturating_mul(COMPILE_BYTES_PER_BYTE))
            .map_err(|e| e.to_string())?;
        compile(&pattern)
    })?;
    budget::work(what, compiled.states as u128 * text_len as u128)?;
    Ok(Some(compiled))
}

/// One piece of a ClickHouse replacement: text, or capture group `\N`.
enum Piece {
    Text(String),
    Group(usize),
}

/// Reads a `replaceRegexp*` replacement as ClickHouse does: `\0`..`\9` are groups, a
/// backslash before anything else stands for that character.
fn replacement(to: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = to.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some(d) if d.is_ascii_digit() => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Group(usize::from(d as u8 - b'0')));
            }
            Some(other) => text.push(other),
            None => text.push('\\'),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// `replaceRegexpAll`/`One`, each replacement sized and counted before it is appended.
fn replace_regexp(s: &str, re: &regex::Regex, to: &str, all: bool) -> Result<String> {
    let what = if all {
        "replaceRegexpAll"
    } else {
        "replaceRegexpOne"
    };
    // ClickHouse leaves the text alone for an empty pattern.
    if re.as_str().is_empty() {
        return Ok(s.to_owned());
    }
    let pieces = replacement(to);
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        budget::tick()?;
        let whole = caps.get(0).expect("group 0 is the match");
        let size: usize = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Group(g) => caps.get(*g).map_or(0, |m| m.len()),
            })
            .sum();
        let before = &s[last..whole.start()];
        budget::value(
            what,
            out.len() + before.len() + size + (s.len() - whole.end()),
        )?;
        out.push_str(before);
        for piece in &pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
            }
        }
        last = whole.end();
        if !all {
            break;
        }
    }
    out.push_str(&s[last..]);
    Ok(out)
}

/// `repeat(s, n)`: refused before allocation when `s × n` is over the value limit.
fn repeat(s: &str, n: i64) -> Result<String> {
    let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
    budget::value_u128("repeat", s.len() as u128 * n as u128)?;
    Ok(s.repeat(n))
}

/// `leftPad`/`rightPad` to `len` characters (ClickHouse's `*UTF8` count characters; the
/// byte-counting variants agree on ASCII).
fn pad(s: String, len: i64, fill: &str, left: bool) -> Result<String> {
    let len = usize::try_from(len.max(0)).unwrap_or(usize::MAX);
    let have = s.chars().count();
    if have >= len || fill.is_empty() {
        let cut = s.char_indices().nth(len).map_or(s.len(), |(i, _)| i);
        return Ok(s[..cut].to_owned());
    }
    let widest = fill.chars().map(char::len_utf8).max().unwrap_or(1);
    budget::value_u128(
        if left { "leftPad" } else { "rightPad" },
        s.len() as u128 + (len - have) as u128 * widest as u128,
    )?;
    let padding: String = fill.chars().cycle().take(len - have).collect();
    Ok(if left { padding + &s } else { s + &padding })
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    for (name, fold) in [("ch_like", false), ("ch_ilike", true)] {
        conn.create_scalar_function(name, 2, f, move |ctx| {
            Ok(match (text_arg(ctx, 0), text_arg(ctx, 1)) {
                (Some(t), Some(p)) => Some(i64::from(like(&t, &p, fold)?)),
                _ => None,
            })
        })?;
    }
    conn.create_scalar_function("ch_substring", -1, f, |ctx| {
        let Some(s) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let offset = int_arg(ctx, 1).unwrap_or(1);
        let len = if ctx.len() > 2 { int_arg(ctx, 2) } else { None };
        Ok(Some(substring(&s, offset, len)))
    })?;
    conn.create_scalar_function("ch_position", 2, f, |ctx| {
        Ok(match (text_arg(ctx, 0), text_arg(ctx, 1)) {
            (Some(h), Some(n)) => Some(h.find(&n).map_or(0, |i| i as i64 + 1)),
            _ => None,
        })
    })?;
    for (name, start) in [("ch_starts_with", true), ("ch_ends_with", false)] {
        conn.create_scalar_function(name, 2, f, move |ctx| {
            Ok(match (text_arg(ctx, 0), text_arg(ctx, 1)) {
                (Some(s), Some(p)) => Some(i64::from(if start {
                    s.starts_with(&p)
                } else {
                    s.ends_with(&p)
                })),
                _ => None,
            })
        })?;
    }
    conn.create_scalar_function("ch_replace_all", 3, f, |ctx| {
        let (Some(s), Some(from), Some(to)) =
            (text_arg(ctx, 0), text_arg(ctx, 1), text_arg(ctx, 2))
        else {
            return Ok(None);
        };
        if from.is_empty() {
            return Ok(Some(s));
        }
        // Two-way search: linear, unlike SQLite's `replace` (a memcmp at every position).
        let count = s.matches(from.as_str()).count();
        budget::tick_n(s.len())?;
        budget::value_u128(
            "replaceAll",
            (s.len() - count * from.len()) as u128 + count as u128 * to.len() as u128,
        )?;
        Ok(Some(s.replace(from.as_str(), &to)))
    })?;
    conn.create_scalar_function("ch_replace_one", 3, f, |ctx| {
        let (Some(s), Some(from), Some(to)) =
            (text_arg(ctx, 0), text_arg(ctx, 1), text_arg(ctx, 2))
        else {
            return Ok(None);
        };
        if from.is_empty() || !s.contains(from.as_str()) {
            return Ok(Some(s));
        }
        budget::value("replaceOne", s.len() - from.len() + to.len())?;
        Ok(Some(s.replacen(&from, &to, 1)))
    })?;
    conn.create_scalar_function("ch_replace_regexp", 4, f, |ctx| {
        let (Some(s), Some(to)) = (text_arg(ctx, 0), text_arg(ctx, 2)) else {
            return Ok(None);
        };
        let all = int_arg(ctx, 3) == Some(1);
        let what = if all {
            "replaceRegexpAll"
        } else {
            "replaceRegexpOne"
        };
        let Some(re) = regex_arg(ctx, 1, what, s.len())? else {
            return Ok(None);
        };
        replace_regexp(&s, &re.re, &to, all).map(Some)
    })?;
    conn.create_scalar_function("ch_match", 2, f, |ctx| {
        let Some(s) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let Some(re) = regex_arg(ctx, 1, "match", s.len())? else {
            return Ok(None);
        };
        Ok(Some(i64::from(re.re.is_match(&s))))
    })?;
    conn.create_scalar_function("ch_extract", 2, f, |ctx| {
        let Some(s) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let Some(re) = regex_arg(ctx, 1, "extract", s.len())? else {
            return Ok(None);
        };
        Ok(Some(
            re.re
                .captures(&s)
                .and_then(|c| c.get(1).or_else(|| c.get(0)))
                .map_or(String::new(), |m| m.as_str().to_owned()),
        ))
    })?;
    conn.create_scalar_function("ch_extract_all", 2, f, |ctx| {
        let Some(s) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let Some(re) = regex_arg(ctx, 1, "extractAll", s.len())? else {
            return Ok(None);
        };
        let mut found = ArrayText::new("extractAll");
        for caps in re.re.captures_iter(&s) {
            if let Some(m) = caps.get(1).or_else(|| caps.get(0)) {
                found.push_str(m.as_str())?;
            }
        }
        Ok(Some(found.finish()))
    })?;
    conn.create_scalar_function("ch_split", 2, f, |ctx| {
        let (Some(sep), Some(s)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let what = "splitByString";
        let mut parts = ArrayText::new(what);
        if sep.is_empty() {
            let mut buf = [0u8; 4];
            for c in s.chars() {
                parts.push_str(c.encode_utf8(&mut buf))?;
            }
        } else {
            for part in s.split(sep.as_str()) {
                parts.push_str(part)?;
            }
        }
        Ok(Some(parts.finish()))
    })?;
    conn.create_scalar_function("ch_reverse", 1, f, |ctx| {
        Ok(text_arg(ctx, 0).map(|s| s.chars().rev().collect::<String>()))
    })?;
    conn.create_scalar_function("ch_repeat", 2, f, |ctx| {
        let n = int_arg(ctx, 1).unwrap_or(0);
        text_arg(ctx, 0).map(|s| repeat(&s, n)).transpose()
    })?;
    conn.create_scalar_function("ch_pad", 4, f, |ctx| {
        let (Some(s), Some(fill)) = (text_arg(ctx, 0), text_arg(ctx, 2)) else {
            return Ok(None);
        };
        let len = int_arg(ctx, 1).unwrap_or(0);
        pad(s, len, &fill, int_arg(ctx, 3) == Some(1)).map(Some)
    })?;
    Ok(())
}
