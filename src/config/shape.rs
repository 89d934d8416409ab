//! The config file's shape: TOML text into its `<Section>Config` tables, reporting every key
//! that is unknown, of the wrong type or missing, instead of stopping at the first.
//!
//! serde stops at the first mismatch, so one typo used to hide every other problem. Here the
//! text is parsed once into a TOML table (a syntax error is the only thing that stops
//! everything: nothing after it can be trusted), then read into the typed config again and
//! again: each mismatch becomes a [`Problem`] with a fix, and the table is patched so reading
//! can go on (an unknown key removed, `600` quoted to `"600"`, a missing key given a
//! placeholder). The validators then run on the patched config, so `check` lists the shape
//! problems and the value problems of one file in one run. [`Shape::merge`] drops what a
//! patch made the validators say and turns `ttl = 600` into "write `ttl = "600s"`".

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use toml::{Table, Value};

use super::problem::{Problem, problem};
use path::{Step, get, remove, render, section, set};

/// Mismatches read before giving up: far more than any real file has.
const MAX_PROBLEMS: usize = 100;

/// How the table was patched after a problem, so that reading could go on.
#[derive(Debug, Clone, PartialEq)]
enum Patch {
    /// The key was taken out (unknown, or of a type nothing could be made of).
    Removed,
    /// A number where a string belongs, given to the validators as that string.
    Quoted(String),
    /// A required key that was missing, given a placeholder of this many tries (`""`, a
    /// table, an array): whatever the validators say about it is noise.
    Placeholder(usize),
    /// The value was unquoted or otherwise retyped; the validators' word on it stands.
    Retyped,
}

/// The config as read, and the shape problems found on the way.
#[derive(Debug)]
pub struct Shape<T> {
    /// The config, with the problem keys patched (see the module doc).
    pub config: T,
    found: Vec<(Problem, Patch)>,
}

impl<T> Shape<T> {
    /// Whether the file's shape was right (no unknown, mistyped or missing key).
    pub fn is_clean(&self) -> bool {
        self.found.is_empty()
    }

    /// The shape problems followed by the validators' `problems`, less what the patches made
    /// them say; a quoted number the validators read as a bad duration becomes one problem
    /// whose fix is the number in seconds.
    pub fn merge(self, problems: Vec<Problem>) -> Vec<Problem> {
        let mut out: Vec<Problem> = Vec::new();
        let mut rest = problems;
        for (mut found, patch) in self.found {
            match patch {
                Patch::Quoted(number) => {
                    let name = found
                        .key
                        .rsplit('.')
                        .next()
                        .unwrap_or(&found.key)
                        .to_owned();
                    let duration = rest
                        .iter()
                        .position(|p| p.key == found.key && p.message.contains("not a duration"));
                    if let Some(i) = duration {
                        rest.remove(i);
                        found.message = format!(
                            "is the number {number}, but durations are strings with a unit: write {name} = \"{number}s\" (or \"10m\", \"12h\")"
                        );
                    }
                }
                Patch::Placeholder(_) => rest.retain(|p| p.key != found.key),
                Patch::Removed | Patch::Retyped => {}
            }
            out.push(found);
        }
        out.extend(rest);
        out
    }
}

/// The keys a table (`[tinybird]`) takes, for the few whose keys serde cannot list itself
/// (a `#[serde(flatten)]` table refuses an unknown key without naming the known ones).
pub type KeyHints<'a> = &'a dyn Fn(&str) -> Vec<String>;

/// The keys the table `T` takes, read from serde's own refusal of a key it does not know.
pub fn keys_of<T: DeserializeOwned>() -> Vec<String> {
    let mut probe = Table::new();
    probe.insert("\u{1}".into(), Value::Boolean(true));
    match T::deserialize(probe) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .message()
            .split_once(", expected ")
            .map(|(_, expected)| backticked(expected))
            .unwrap_or_default(),
    }
}

/// Reads `text` into `T`, collecting every shape problem. `Err` only for a TOML syntax error
/// (reported alone, with its line) or a file too broken to read on.
pub fn read<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    hints: KeyHints<'_>,
) -> Result<Shape<T>, Vec<Problem>> {
    let mut table: Table = toml::from_str(text)
        .map_err(|e| vec![problem(origin, format!("{e}").trim_end().to_owned())])?;
    let mut found: Vec<(Problem, Patch)> = Vec::new();
    let mut last: Option<(Vec<Step>, String)> = None;
    while found.len() < MAX_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, T>(table.clone()) {
            Ok(config) => return Ok(Shape { config, found }),
            Err(e) => e,
        };
        let path: Vec<Step> = error
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    Some(Step::Key(key.clone()))
                }
                Segment::Seq { index } => Some(Step::Index(*index)),
                Segment::Unknown => None,
            })
            .collect();
        let message = error.into_inner().message().to_owned();
        // A patch that did not move the reader on: stop rather than loop.
        if last.as_ref() == Some(&(path.clone(), message.clone())) {
            break;
        }
        last = Some((path.clone(), message.clone()));
        match fix(&mut table, &path, &message, &found, hints) {
            Some(next) => match next {
                // A later placeholder try replaces the earlier one's entry.
                (p, Patch::Placeholder(n)) if n > 0 => {
                    if let Some(entry) = found.iter_mut().rev().find(|(q, _)| q.key == p.key) {
                        entry.1 = Patch::Placeholder(n);
                    }
                }
                other => found.push(other),
            },
            None => {
                found.push((problem(render(&path), message), Patch::Removed));
                break;
            }
        }
    }
    Err(found.into_iter().map(|(p, _)| p).collect())
}

/// The problem `message` at `path` says, with the table patched so reading goes on; `None`
/// when no patch can be made.
fn fix(
    table: &mut Table,
    path: &[Step],
    message: &str,
    found: &[(Problem, Patch)],
    hints: KeyHints<'_>,
) -> Option<(Problem, Patch)> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`')?;
        // Depending on the serde version the path ends at the table or at the unknown key.
        let table_path = match path.last() {
            Some(Step::Key(k)) if k == name => &path[..path.len() - 1],
            _ => path,
        };
        let key_path = [table_path, &[Step::Key(name.to_owned())]].concat();
        remove(table, &key_path)?;
        let mut known = backticked(expected);
        if known.is_empty() {
            known = hints(&render(table_path));
        }
        let mut message = String::from("unknown key");
        if let Some(best) = closest(name, &known) {
            message.push_str(&format!("; did you mean `{best}`?"));
        }
        if !known.is_empty() {
            message.push_str(&format!(
                " ({} takes {})",
                section(table_path),
                known.join(", ")
            ));
        }
        return Some((problem(render(&key_path), message), Patch::Removed));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next()?;
        let key_path = [path, &[Step::Key(name.to_owned())]].concat();
        set(table, &key_path, Value::String(String::new()))?;
        let message = format!(
            "is required in {} (demo/config.toml shows it with an example value)",
            section(path)
        );
        return Some((problem(render(&key_path), message), Patch::Placeholder(0)));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once('`')?;
        let known = backticked(expected);
        remove(table, path)?;
        let hint = match closest(value, &known) {
            Some(best) => format!("write \"{best}\""),
            None => format!("write one of {}", quoted(&known)),
        };
        let message = format!("{value:?} is not one of {}: {hint}", quoted(&known));
        return Some((problem(render(path), message), Patch::Removed));
    }
    // A placeholder of the wrong kind: try the next kind (a table, then an array).
    let placeholder = found.iter().rev().find_map(|(p, patch)| match patch {
        Patch::Placeholder(n) if p.key == render(path) => Some(*n),
        _ => None,
    });
    if let Some(tries) = placeholder {
        let next = match tries {
            0 => Value::Table(Table::new()),
            1 => Value::Array(Vec::new()),
            _ => return None,
        };
        set(table, path, next)?;
        return Some((problem(render(path), ""), Patch::Placeholder(tries + 1)));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        return Some(retype(table, path, rest));
    }
    remove(table, path)?;
    Some((problem(render(path), message), Patch::Removed))
}

/// A value of the wrong type (`rest` is serde's "integer `600`, expected a string"): quoted or
/// unquoted when that is surely what was meant, else taken out; the fix names the type.
fn retype(table: &mut Table, path: &[Step], rest: &str) -> (Problem, Patch) {
    let key = render(path);
    let name = match path.last() {
        Some(Step::Key(k)) => k.clone(),
        _ => key.clone(),
    };
    let (found, expected) = rest
        .split_once(", expected ")
        .unwrap_or((rest, "another type"));
    let current = get(table, path).cloned();
    let number = match &current {
        Some(Value::Integer(n)) => Some(n.to_string()),
        Some(Value::Float(f)) => Some(f.to_string()),
        _ => None,
    };
    if let Some(number) = number.filter(|_| expected.contains("string")) {
        let _ = set(table, path, Value::String(number.clone()));
        let message =
            format!("is the number {number}, but it is a string: write {name} = \"{number}\"");
        return (problem(key, message), Patch::Quoted(number));
    }
    if let Some(Value::String(s)) = &current {
        let s = s.trim();
        let unquoted = if expected.contains("bool") {
            s.parse::<bool>().ok().map(Value::Boolean)
        } else if expected.starts_with('u')
            || expected.starts_with('i')
            || expected.contains("integer")
        {
            s.parse::<i64>().ok().map(Value::Integer)
        } else if expected.starts_with('f') {
            s.parse::<f64>().ok().map(Value::Float)
        } else {
            None
        };
        if let Some(value) = unquoted {
            let _ = set(table, path, value.clone());
            let message = format!(
                "is the string \"{s}\", but it is not a string: write {name} = {value} (no quotes)"
            );
            return (problem(key, message), Patch::Retyped);
        }
    }
    let _ = remove(table, path);
    let found = match &current {
        Some(value) => describe(value),
        None => found.to_owned(),
    };
    let message = format!("is {found}, but it must be {}", kind(expected));
    (problem(key, message), Patch::Removed)
}

/// A value as the fix talks about it: `the string "x"`, `the number 600`, `an array`.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(n) => format!("the number {n}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "an array".into(),
        Value::Table(_) => "a table".into(),
    }
}

/// What serde's expected-type words ("u32", "a sequence", "struct X") mean in a TOML file.
fn kind(expected: &str) -> &str {
    match expected {
        "a sequence" => "an array, e.g. [\"a\", \"b\"]",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e if e.starts_with('u') || e.starts_with('i') => "a whole number",
        e if e.starts_with('f') => "a number",
        e => e,
    }
}

/// The `a`, `b` of serde's "expected one of `a`, `b`".
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The known key `name` was most likely meant to be, if one is close enough.
fn closest(name: &str, known: &[String]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1) + usize::from(k.len() > 6))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn quoted(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

mod path;
#[cfg(test)]
mod tests;
