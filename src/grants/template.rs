//! Fixed-param templates: compiled once at load, rendered per user.
//!
//! A template may only read `user.id`, `user.tenant`, `user.roles` and
//! `user.attributes.<name>`, and only through `{{ ... }}` expressions. That is checked
//! statically at load (minijinja's undeclared-variable analysis), which is what lets
//! `check` list every attribute a config needs, and what lets rendering fail closed: every
//! value a template reads must be present and non-blank *before* it renders. Only a few
//! string filters exist (no `default`), so a missing tenant can never turn into a shared
//! row filter.

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, Output, State, UndefinedBehavior, filters};
use serde::Serialize;

use crate::user::User;

/// One part of the user a template reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum UserRef {
    Id,
    Tenant,
    Roles,
    Attribute(String),
}

impl UserRef {
    /// The path as `check` and error messages show it: `tenant`, `attributes.region`.
    pub(super) fn path(&self) -> String {
        match self {
            UserRef::Id => "id".to_owned(),
            UserRef::Tenant => "tenant".to_owned(),
            UserRef::Roles => "roles".to_owned(),
            UserRef::Attribute(name) => format!("attributes.{name}"),
        }
    }

    /// Whether `user` has a usable (present, non-blank) value for this reference.
    fn is_present(&self, user: &User) -> bool {
        let usable = |s: &str| !s.trim().is_empty();
        match self {
            UserRef::Id => usable(&user.id),
            UserRef::Tenant => user.tenant.as_deref().is_some_and(usable),
            UserRef::Roles => user.roles.iter().any(|r| usable(r)),
            UserRef::Attribute(name) => user.attributes.get(name).is_some_and(|v| usable(v)),
        }
    }
}

/// Why a fixed param was refused at load; the caller adds the grant/param location.
#[derive(Debug)]
pub(super) enum TemplateProblem {
    Syntax(String),
    UnknownReference(String),
    AlwaysEmpty,
    /// Not a template at all: a TOML value of a type Tinybird cannot take.
    Unsupported(&'static str),
    /// A data-source filter that would put a value somewhere other than a plain literal.
    UnsafeSql(String),
}

/// Why a template could not be rendered for a user.
#[derive(Debug)]
pub(super) struct MissingValue {
    /// The path(s) to blame, e.g. `tenant`.
    pub(super) attribute: String,
}

/// Every fixed-param template of a config, parsed once.
pub(super) struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    pub(super) fn new() -> Self {
        // An empty environment plus a few string filters: no globals (`range`, `debug`)
        // and no `default` filter, which would read as if a missing value were allowed.
        let mut env = Environment::empty();
        for (name, filter) in FILTERS {
            filter(&mut env, name);
        }
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Values go into JSON claims, never HTML: a tenant `a&b` must stay `a&b`.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        Templates { env }
    }

    /// Like [`Templates::new`], but every `{{ ... }}` value is written by `formatter`
    /// (data-source filters quote each value as an SQL literal this way).
    pub(super) fn with_formatter<F>(formatter: F) -> Self
    where
        F: Fn(&mut Output<'_>, &State<'_, '_>, &Value) -> Result<(), minijinja::Error>
            + Send
            + Sync
            + 'static,
    {
        let mut templates = Self::new();
        templates.env.set_formatter(formatter);
        templates
    }

    /// Parses and checks `source` under the unique `key`, returning what it reads.
    pub(super) fn add(&mut self, key: &str, source: &str) -> Result<Vec<UserRef>, TemplateProblem> {
        self.add_probed(key, source).map(|(refs, _)| refs)
    }

    /// [`Templates::add`], also returning the dry run's output (rendered for a user whose
    /// every value is `1`), or `None` when the dry run failed on data.
    pub(super) fn add_probed(
        &mut self,
        key: &str,
        source: &str,
    ) -> Result<(Vec<UserRef>, Option<String>), TemplateProblem> {
        // Statements (`set`, `for`, `include`, ...) would make the static reference check
        // unreliable and have no use in a one-value row filter.
        if source.contains("{%") {
            return Err(TemplateProblem::Syntax(
                "only `{{ ... }}` expressions are allowed, not `{% ... %}` statements".into(),
            ));
        }
        self.env
            .add_template_owned(key.to_owned(), source.to_owned())
            .map_err(|e| TemplateProblem::Syntax(describe(&e)))?;
        let template = self.env.get_template(key).expect("template was just added");
        let mut refs = Vec::new();
        let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        names.sort();
        for name in names {
            refs.push(parse_ref(&name).ok_or(TemplateProblem::UnknownReference(name))?);
        }
        refs.sort();
        refs.dedup();

        // A dry run with placeholder values catches unknown filters and functions, which
        // minijinja only reports at render time. Data-dependent failures are left to
        // evaluation, where they fail closed.
        let placeholder = "1".to_owned();
        let dummy = User {
            id: placeholder.clone(),
            tenant: Some(placeholder.clone()),
            roles: vec![placeholder.clone()],
            attributes: refs
                .iter()
                .filter_map(|r| match r {
                    UserRef::Attribute(name) => Some((name.clone(), placeholder.clone())),
                    _ => None,
                })
                .collect(),
        };
        match template.render(Context::of(&dummy)) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnknownFilter
                        | ErrorKind::UnknownFunction
                        | ErrorKind::UnknownTest
                        | ErrorKind::UnknownMethod
                ) =>
            {
                let allowed: Vec<&str> = FILTERS.iter().map(|(name, _)| *name).collect();
                Err(TemplateProblem::Syntax(format!(
                    "{}; the filters available are {}",
                    describe(&e),
                    allowed.join(", ")
                )))
            }
            Ok(out) if refs.is_empty() && out.trim().is_empty() => {
                Err(TemplateProblem::AlwaysEmpty)
            }
            Ok(out) => Ok((refs, Some(out))),
            Err(_) => Ok((refs, None)),
        }
    }

    /// Renders the template `key` for `user`; blank results count as missing.
    pub(super) fn render(
        &self,
        key: &str,
        refs: &[UserRef],
        user: &User,
    ) -> Result<String, MissingValue> {
        if let Some(missing) = refs.iter().find(|r| !r.is_present(user)) {
            return Err(MissingValue {
                attribute: missing.path(),
            });
        }
        let blame_all = || MissingValue {
            attribute: refs
                .iter()
                .map(UserRef::path)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let template = self.env.get_template(key).map_err(|_| blame_all())?;
        let out = template
            .render(Context::of(user))
            .map_err(|_| blame_all())?;
        if out.trim().is_empty() {
            return Err(blame_all());
        }
        Ok(out)
    }
}

type AddFilter = fn(&mut Environment<'static>, &'static str);

/// The filters templates may use; `fn` pointers because each filter has its own type.
const FILTERS: [(&str, AddFilter); 11] = [
    ("lower", |env, name| env.add_filter(name, filters::lower)),
    ("upper", |env, name| env.add_filter(name, filters::upper)),
    ("title", |env, name| env.add_filter(name, filters::title)),
    ("capitalize", |env, name| {
        env.add_filter(name, filters::capitalize)
    }),
    ("trim", |env, name| env.add_filter(name, filters::trim)),
    ("replace", |env, name| {
        env.add_filter(name, filters::replace)
    }),
    ("join", |env, name| env.add_filter(name, filters::join)),
    ("first", |env, name| env.add_filter(name, filters::first)),
    ("last", |env, name| env.add_filter(name, filters::last)),
    ("length", |env, name| env.add_filter(name, filters::length)),
    ("string", |env, name| env.add_filter(name, filters::string)),
];

/// Maps `user.tenant` etc. to a [`UserRef`]; anything else is not allowed.
fn parse_ref(name: &str) -> Option<UserRef> {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["user", "id"] => Some(UserRef::Id),
        ["user", "tenant"] => Some(UserRef::Tenant),
        ["user", "roles"] => Some(UserRef::Roles),
        ["user", "attributes", attr] => Some(UserRef::Attribute((*attr).to_owned())),
        _ => None,
    }
}

fn describe(e: &minijinja::Error) -> String {
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    match e.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

/// The template context: `user` with exactly the fields templates may read.
#[derive(Serialize)]
struct Context<'a> {
    user: UserContext<'a>,
}

#[derive(Serialize)]
struct UserContext<'a> {
    id: &'a str,
    // Left out when absent, so strict mode makes `user.tenant` an error, not "none".
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    roles: &'a [String],
    attributes: &'a BTreeMap<String, String>,
}

impl<'a> Context<'a> {
    fn of(user: &'a User) -> Self {
        Context {
            user: UserContext {
                id: &user.id,
                tenant: user.tenant.as_deref(),
                roles: &user.roles,
                attributes: &user.attributes,
            },
        }
    }
}
