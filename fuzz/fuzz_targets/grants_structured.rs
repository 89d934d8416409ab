//! Fuzzes grant compilation and evaluation on `GrantConfig`s built straight from fuzz data,
//! with templates assembled from the pieces a real template is made of (`{{`, `user.tenant`,
//! filters, operators, SQL words) so the fuzzer reaches rendering rather than stopping at
//! TOML syntax. The user is fuzzed too. Same invariants as `grants_toml`.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tinybird_bff::user::User;
use tinybird_bff::grants::{AttributeValues, GrantConfig, MatchConfig};

/// A word that often matches the fixed users (or anything else).
#[derive(Debug, Arbitrary)]
enum Word {
    Viewer,
    Admin,
    Acme,
    Pro,
    Plan,
    Region,
    Empty,
    Other(String),
}

impl Word {
    fn text(&self) -> String {
        match self {
            Word::Viewer => "viewer".into(),
            Word::Admin => "admin".into(),
            Word::Acme => "acme".into(),
            Word::Pro => "pro".into(),
            Word::Plan => "plan".into(),
            Word::Region => "region".into(),
            Word::Empty => String::new(),
            Word::Other(s) => s.clone(),
        }
    }
}

/// One piece of a template's source text.
#[derive(Debug, Arbitrary)]
enum Piece {
    Open,
    Close,
    Pipe,
    Id,
    Tenant,
    Roles,
    Attribute(Word),
    Filter(u8),
    Sql(u8),
    Text(String),
}

const FILTERS: &[&str] = &[
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "replace('a', 'b')",
    "join(',')",
    "first",
    "last",
    "length",
    "string",
    "default('x')",
    "safe",
];
const SQL: &[&str] = &[
    " ",
    "org_id = ",
    " AND ",
    " OR ",
    " IN (",
    ")",
    "(",
    " - ",
    " + ",
    "'",
    "\"",
    "`",
    ",",
    " ~ ",
    " if ",
    " else ",
    " == ",
    "not ",
    "[0]",
    "[1:]",
    "1",
    "-1",
    "0.5",
    "true",
    "none",
    ";",
    "--",
];

fn source(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Open => out.push_str("{{ "),
            Piece::Close => out.push_str(" }}"),
            Piece::Pipe => out.push('|'),
            Piece::Id => out.push_str("user.id"),
            Piece::Tenant => out.push_str("user.tenant"),
            Piece::Roles => out.push_str("user.roles"),
            Piece::Attribute(w) => {
                out.push_str("user.attributes.");
                out.push_str(&w.text());
            }
            Piece::Filter(i) => out.push_str(FILTERS[usize::from(*i) % FILTERS.len()]),
            Piece::Sql(i) => out.push_str(SQL[usize::from(*i) % SQL.len()]),
            Piece::Text(t) => out.push_str(t),
        }
    }
    out
}

#[derive(Debug, Arbitrary)]
enum Fixed {
    Template(Vec<Piece>),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Array,
    Table,
}

impl Fixed {
    fn value(&self) -> toml::Value {
        match self {
            Fixed::Template(p) => toml::Value::String(source(p)),
            Fixed::Integer(n) => toml::Value::Integer(*n),
            Fixed::Float(f) => toml::Value::Float(*f),
            Fixed::Boolean(b) => toml::Value::Boolean(*b),
            Fixed::Array => toml::Value::Array(vec![toml::Value::Integer(1)]),
            Fixed::Table => toml::Value::Table(toml::map::Map::new()),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Matcher {
    roles: Option<Vec<Word>>,
    tenants: Option<Vec<Word>>,
    attributes: Vec<(Word, Vec<Word>)>,
    any_user: bool,
}

#[derive(Debug, Arbitrary)]
struct Grant {
    name: Word,
    pipes: Vec<Word>,
    matcher: Matcher,
    fixed_params: Vec<(Word, Fixed)>,
    allow_sql_over_pipe: bool,
    datasources: Vec<(Word, Vec<Piece>)>,
}

#[derive(Debug, Arbitrary)]
struct FuzzUser {
    id: Word,
    tenant: Option<Word>,
    roles: Vec<Word>,
    attributes: Vec<(Word, Word)>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    grants: Vec<Grant>,
    user: FuzzUser,
}

fn words(ws: &[Word]) -> Vec<String> {
    ws.iter().map(Word::text).collect()
}

fn config(g: &Grant) -> GrantConfig {
    GrantConfig {
        name: g.name.text(),
        pipes: words(&g.pipes),
        matcher: MatchConfig {
            roles: g.matcher.roles.as_deref().map(words),
            tenants: g.matcher.tenants.as_deref().map(words),
            attributes: g
                .matcher
                .attributes
                .iter()
                .map(|(k, vs)| {
                    let value = match vs.as_slice() {
                        [one] => AttributeValues::One(one.text()),
                        many => AttributeValues::AnyOf(words(many)),
                    };
                    (k.text(), value)
                })
                .collect(),
            any_user: g.matcher.any_user,
        },
        fixed_params: g
            .fixed_params
            .iter()
            .map(|(k, v)| (k.text(), v.value()))
            .collect(),
        allow_sql_over_pipe: g.allow_sql_over_pipe,
        datasources: g
            .datasources
            .iter()
            .map(|(k, p)| (k.text(), source(p)))
            .collect(),
    }
}

fuzz_target!(|input: Input| {
    let configs: Vec<GrantConfig> = input.grants.iter().map(config).collect();
    let mut users = tinybird_bff_fuzz::fixed_users();
    users.push(User {
        id: input.user.id.text(),
        tenant: input.user.tenant.as_ref().map(Word::text),
        roles: words(&input.user.roles),
        attributes: input
            .user
            .attributes
            .iter()
            .map(|(k, v)| (k.text(), v.text()))
            .collect::<BTreeMap<_, _>>(),
    });
    tinybird_bff_fuzz::check_grants(&configs, &users);
});
