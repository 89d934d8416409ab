//! Checks shared by the fuzz targets: the fixed users grants are evaluated against, and the
//! invariants every compiled grant set must keep whatever config it came from.
//!
//! The grant invariants are the ones the fail-closed design promises (see `src/grants.rs`):
//! an `Ok` access is never empty, never carries a blank fixed param or filter, and a
//! data-source filter's values never escape their SQL literals. The last one is checked
//! differentially: the user's `id` is never used to *match* a grant, so swapping it for a
//! hostile string must change nothing in a rendered filter except the contents of string
//! literals (and numbers or booleans computed from the id, e.g. `length`).

use std::collections::BTreeMap;

use tinybird_bff::user::User;
use tinybird_bff::grants::{Access, GrantConfig, Grants};

/// An id full of everything that could break out of an SQL literal in either dialect.
pub const HOSTILE_ID: &str = "z' OR 'a'='a' -- \\' ; \" ` /* \0 \u{1} ''\\\\";

/// Builds a user (a helper because `User` has no constructor).
pub fn user(id: &str, tenant: Option<&str>, roles: &[&str], attrs: &[(&str, &str)]) -> User {
    User {
        id: id.to_owned(),
        tenant: tenant.map(str::to_owned),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Users that match the seeds' grants in different ways (and one that matches nothing).
pub fn fixed_users() -> Vec<User> {
    vec![
        user(
            "alice",
            Some("acme"),
            &["viewer"],
            &[("plan", "pro"), ("region", "eu")],
        ),
        user("root", None, &["admin", "viewer"], &[("plan", "")]),
        user("", Some(" "), &[], &[]),
        user(
            "mallory",
            Some("x' OR '1'='1"),
            &["viewer", "admin"],
            &[("plan", "pro"), ("region", "a\\'b")],
        ),
    ]
}

/// Compiles `configs` and, if that succeeds, evaluates them for every user in `users`,
/// checking every invariant; panics (a fuzz crash) on a violation.
pub fn check_grants(configs: &[GrantConfig], users: &[User]) {
    let Ok(grants) = Grants::compile(configs) else {
        return;
    };
    // Config checks must not panic either.
    let _ = grants.referenced_pipes();
    let _ = grants.referenced_datasources();
    let _ = grants.referenced_attributes();
    for u in users {
        let result = grants.evaluate(u);
        assert_eq!(
            result,
            grants.evaluate(u),
            "evaluation is not deterministic"
        );
        let Ok(access) = result else { continue };
        check_access(&access, u);
        let mut hostile = u.clone();
        hostile.id = HOSTILE_ID.to_owned();
        if let Ok(other) = grants.evaluate(&hostile) {
            check_access(&other, &hostile);
            compare_filters(&access, &other, u);
        }
    }
}

fn check_access(access: &Access, u: &User) {
    assert!(
        !(access.pipes.is_empty() && access.datasources.is_empty()),
        "an Ok access with no scopes for {u:?}"
    );
    for pipe in &access.pipes {
        for (name, value) in &pipe.fixed_params {
            if let Some(s) = value.as_str() {
                assert!(
                    !s.trim().is_empty(),
                    "blank fixed param {name} on pipe {} for {u:?}",
                    pipe.pipe
                );
            }
        }
    }
    for ds in &access.datasources {
        assert!(
            !ds.filter.trim().is_empty(),
            "blank filter on {} for {u:?}",
            ds.datasource
        );
        for dialect in [Dialect::ClickHouse, Dialect::Sqlite] {
            let skeleton = skeleton(&ds.filter, dialect).unwrap_or_else(|e| {
                panic!(
                    "filter on {} for {u:?} does not lex as {dialect:?}: {e}: {:?}",
                    ds.datasource, ds.filter
                )
            });
            for bad in [";", "--", "/*", "\\"] {
                assert!(
                    !skeleton.contains(bad),
                    "{bad:?} outside a literal in the filter on {} for {u:?} ({dialect:?}): {:?}",
                    ds.datasource,
                    ds.filter
                );
            }
        }
    }
}

/// The same grants for a user and for the user with a hostile id: filters may differ only
/// inside literals.
fn compare_filters(plain: &Access, hostile: &Access, u: &User) {
    for ds in &plain.datasources {
        let Some(other) = hostile.datasource(&ds.datasource) else {
            continue;
        };
        for dialect in [Dialect::ClickHouse, Dialect::Sqlite] {
            let a = skeleton(&ds.filter, dialect).expect("checked above");
            let b = skeleton(&other.filter, dialect).expect("checked above");
            assert_eq!(
                a, b,
                "a hostile user id changed the SQL around the literals of the filter on {} \
                 ({dialect:?}); user {u:?}\n plain:   {:?}\n hostile: {:?}",
                ds.datasource, ds.filter, other.filter
            );
        }
    }
}

/// How a string literal is read.
#[derive(Debug, Clone, Copy)]
pub enum Dialect {
    /// `''` is a quote and `\` escapes the next character.
    ClickHouse,
    /// Only `''` is a quote; `\` is an ordinary character.
    Sqlite,
}

/// The SQL with every value (string literal, number, `(-n)`, `true`/`false`) replaced by
/// `V`: what is left is the SQL structure. Values of different types are not told apart,
/// since a template may compute a number or boolean from the id. Errs on an unclosed quote.
pub fn skeleton(sql: &str, dialect: Dialect) -> Result<String, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' || c == '`' {
            // Quoted identifiers come only from the config, but lex them the same way so a
            // quote inside one is not taken for a literal's start.
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(format!("unclosed {c} quote"));
                };
                if matches!(dialect, Dialect::ClickHouse) && d == '\\' {
                    i += 2;
                    continue;
                }
                if d == c {
                    if chars.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            out.push(if c == '\'' { 'V' } else { 'I' });
        } else if c.is_ascii_digit() {
            while chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
            }
            out.push('V');
        } else {
            out.push(c);
        }
        i += 1;
    }
    let mut out = out.replace("true", "V").replace("false", "V");
    loop {
        let next = out.replace("(-V)", "V").replace("V.V", "V");
        if next == out {
            return Ok(out);
        }
        out = next;
    }
}
