//! Paths into a TOML table (`grants[0].pipes`): how problems name a key, and how the shape
//! reader looks up, replaces and takes out the value at one.

use toml::{Table, Value};

/// One step of a path in the file: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A key of a table.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// `[token]`, `[[grants]]`, "the top level": where a key sits, as a person reads the file.
pub fn section(path: &[Step]) -> String {
    if path.is_empty() {
        return "the top level".into();
    }
    match path.last() {
        Some(Step::Index(_)) => format!("[[{}]]", render(&path[..path.len() - 1])),
        _ => format!("[{}]", render(path)),
    }
}

/// `token.ttl`, `grants[0].pipes`: the key as problems name it.
pub fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The value at `path`.
pub fn get<'a>(table: &'a Table, path: &[Step]) -> Option<&'a Value> {
    let (Step::Key(first), rest) = path.split_first()? else {
        return None;
    };
    let mut value = table.get(first)?;
    for step in rest {
        value = match step {
            Step::Key(k) => value.as_table()?.get(k)?,
            Step::Index(i) => value.as_array()?.get(*i)?,
        };
    }
    Some(value)
}

/// Puts `new` at `path` (its table or array must exist).
pub fn set(table: &mut Table, path: &[Step], new: Value) -> Option<()> {
    let (last, init) = path.split_last()?;
    let holder = container(table, init)?;
    match (holder, last) {
        (Holder::Table(t), Step::Key(k)) => {
            t.insert(k.clone(), new);
        }
        (Holder::Array(a), Step::Index(i)) => *a.get_mut(*i)? = new,
        _ => return None,
    }
    Some(())
}

/// Takes the value at `path` out (an array element is emptied, not removed).
pub fn remove(table: &mut Table, path: &[Step]) -> Option<()> {
    let (last, init) = path.split_last()?;
    match (container(table, init)?, last) {
        (Holder::Table(t), Step::Key(k)) => t.remove(k).map(|_| ()),
        // An array element cannot go without renumbering the others: empty it instead.
        (Holder::Array(a), Step::Index(i)) => {
            *a.get_mut(*i)? = Value::Table(Table::new());
            Some(())
        }
        _ => None,
    }
}

/// A table or an array that holds values.
pub enum Holder<'a> {
    /// A table.
    Table(&'a mut Table),
    /// An array.
    Array(&'a mut Vec<Value>),
}

/// The table or array at `path` (the whole file for an empty path).
pub fn container<'a>(table: &'a mut Table, path: &[Step]) -> Option<Holder<'a>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(Holder::Table(table));
    };
    let Step::Key(first) = first else { return None };
    let mut value = table.get_mut(first)?;
    for step in rest {
        value = match step {
            Step::Key(k) => value.as_table_mut()?.get_mut(k)?,
            Step::Index(i) => value.as_array_mut()?.get_mut(*i)?,
        };
    }
    match value {
        Value::Table(t) => Some(Holder::Table(t)),
        Value::Array(a) => Some(Holder::Array(a)),
        _ => None,
    }
}
