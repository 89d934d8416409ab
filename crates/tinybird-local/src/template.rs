//! Tinybird pipe templates rendered into SQLite SQL with every parameter bound, never spliced.
//!
//! A pipe's SQL is a Tornado-style template (`{{ String(org_id) }}`, `{% if defined(x) %}`,
//! `{% end %}`). We translate the Tornado bits to minijinja (see `preprocess`) and render with:
//!
//! - every name the template reads as a [`Param`] object carrying the name and raw values, so
//!   the type functions (see `types`) can name the parameter in errors;
//! - type functions that return plain typed values, so `{% if String(s, 'a') == 'b' %}` works;
//! - an output formatter that turns *everything* printed by `{{ }}` into a `?` placeholder plus
//!   a bind value (a list becomes `(?, ?)`). A bare `{{ x }}` is refused: the pipe author must
//!   say which type the value has. Even a literal `{{ 'DESC' }}` becomes a bind, which is the
//!   price of never letting text from `{{ }}` reach the SQL.
//!
//! Choices Tinybird leaves undocumented (docs/tinybird.md, "Calling a pipe"), kept here so they are easy to change:
//! - `defined(x)` (and `{% if x %}`) is true when `x` is present with a non-empty value.
//! - A raw parameter compared directly (`{% if x == 'a' %}`) is never equal to anything: wrap
//!   it in a type function (`String(x) == 'a'`).
//! - A raw parameter used in an expression (`x ~ ''`, `x|upper`) reads as the text
//!   `<parameter x>`, never its value.
//! - Macros and `{% set %}` blocks are refused at compile, `|safe` output at render: their text
//!   already holds placeholders whose binds would be out of order.
//! - `UInt64` values above `i64::MAX` bind as text (SQLite integers are 64-bit signed).

mod extras;
mod preprocess;
mod types;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use minijinja::value::{Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use rusqlite::types::Value as SqlValue;

use tinybird_contract::params::Params;

/// Name of the one template in each environment.
const TEMPLATE_NAME: &str = "pipe";
/// Context variable holding the per-render bind list; `__tb__` names cannot be parameters.
const BINDS_VAR: &str = "__tb__binds";
/// Tinybird's other template functions (see `extras`).
const EXTRA_FUNCTIONS: &[&str] = &[
    "column",
    "columns",
    "symbol",
    "sql_and",
    "split_to_array",
    "error",
];
/// Globals minijinja defines itself; they are not pipe parameters.
const BUILTIN_GLOBALS: &[&str] = &["range", "loop", "caller", "self"];
/// Parameter names Tinybird keeps for itself (docs/tinybird.md, "Reserved parameters").
const RESERVED: &[&str] = &[
    "q",
    "token",
    "format",
    "debug",
    "explain",
    "pipeline",
    "query_id",
    "tag",
    "template_parameters",
];

/// A pipe's SQL template, compiled once when the pipe is loaded.
pub struct PipeTemplate {
    /// Holds the compiled template, the type functions and the binding formatter.
    env: Environment<'static>,
    /// Sorted names of the parameters the template reads.
    params: Vec<String>,
}

/// Why a template could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TemplateError {
    /// 1-based line within the template source.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// SQL ready for SQLite: `?` placeholders in `sql`, their values in order in `binds`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedSql {
    /// The SQL text; it contains no parameter value.
    pub sql: String,
    /// One value per `?`, in order.
    pub binds: Vec<SqlValue>,
}

/// Why a template could not be rendered for a request (a 400 for the caller).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ParamError {
    /// A parameter without a default was not sent (or sent empty, for a non-String type).
    #[error("missing required parameter {name}")]
    Missing {
        /// The parameter's name.
        name: String,
    },
    /// A value does not parse as its declared type.
    #[error("parameter {name}: {reason}")]
    Invalid {
        /// The parameter's name.
        name: String,
        /// The declared type, e.g. `Int32`.
        ty: String,
        /// The offending value and what was expected.
        reason: String,
    },
    /// The pipe's own `{{ error('...', status) }}`.
    #[error("{message}")]
    Raised {
        /// The pipe author's message.
        message: String,
        /// The HTTP status the pipe author chose (400 unless given).
        status: u16,
    },
    /// Any other render failure, usually a mistake in the pipe itself.
    #[error("{message}")]
    Template {
        /// What went wrong, with the template line when known.
        message: String,
    },
}

/// A parameter as the template sees it: its name and raw values (none when absent).
#[derive(Debug)]
pub(crate) struct Param {
    name: String,
    values: Vec<String>,
}

impl Param {
    fn is_defined(&self) -> bool {
        self.values.iter().any(|v| !v.is_empty())
    }
}

impl Object for Param {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.is_defined()
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the raw value: string concatenation must not smuggle it anywhere.
        write!(f, "<parameter {}>", self.name)
    }
}

/// The values bound so far in one render, in placeholder order.
#[derive(Debug, Default)]
struct BindSink(Mutex<Vec<SqlValue>>);

impl Object for BindSink {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

impl std::fmt::Debug for PipeTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeTemplate")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PipeTemplate {
    /// Compiles Tinybird template text (with or without its leading `%` line).
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        let source = preprocess::strip_marker(source);
        let tags = preprocess::scan(&source);
        let jinja = preprocess::translate_ends(&source, &tags)?;
        let mut env = environment();
        env.add_template_owned(TEMPLATE_NAME, jinja)
            .map_err(|err| TemplateError {
                line: err.line().unwrap_or(1),
                message: err
                    .detail()
                    .map_or_else(|| err.kind().to_string(), str::to_owned),
            })?;
        let referenced = env
            .get_template(TEMPLATE_NAME)
            .map(|t| t.undeclared_variables(false))
            .unwrap_or_default();
        let idents = preprocess::identifiers(&source, &tags);
        let is_function = |name: &str| {
            name == "defined"
                || name == "Array"
                || types::SCALAR_TYPES.contains(&name)
                || EXTRA_FUNCTIONS.contains(&name)
        };
        let line_of = |name: &str| {
            idents
                .iter()
                .find(|i| i.name == name && !i.is_member)
                .map_or(1, |i| i.line)
        };
        if let Some(call) = idents.iter().find(|i| {
            i.is_call && !i.is_member && referenced.contains(i.name) && !is_function(i.name)
        }) {
            return Err(TemplateError {
                line: call.line,
                message: format!(
                    "unknown function {}: pipe templates may call {}, Array, defined and {}",
                    call.name,
                    types::SCALAR_TYPES.join(", "),
                    EXTRA_FUNCTIONS.join(", ")
                ),
            });
        }
        let mut params = BTreeSet::new();
        for name in referenced {
            if is_reserved(&name) {
                return Err(TemplateError {
                    line: line_of(&name),
                    message: format!(
                        "{name} is a name Tinybird reserves for itself and never passes to a \
                         pipe (q, token, format, debug, explain, pipeline, query_id, tag, \
                         template_parameters, __tb__*, output_format_*): rename the parameter"
                    ),
                });
            }
            if !is_function(&name) && !BUILTIN_GLOBALS.contains(&name.as_str()) {
                params.insert(name);
            }
        }
        Ok(Self {
            env,
            params: params.into_iter().collect(),
        })
    }

    /// Names of the parameters the template references (for docs/`/v0/pipes` listing), sorted.
    pub fn param_names(&self) -> Vec<String> {
        self.params.clone()
    }

    /// Renders for one request: every `{{ }}` value becomes a `?` with its value in `binds`.
    pub fn render(&self, params: &Params) -> Result<RenderedSql, ParamError> {
        let sink = Arc::new(BindSink::default());
        let context = self
            .params
            .iter()
            .map(|name| {
                let param = Param {
                    name: name.clone(),
                    values: params.all(name).map(str::to_owned).collect(),
                };
                (name.clone(), Value::from_object(param))
            })
            .chain([(BINDS_VAR.to_owned(), Value::from_dyn_object(sink.clone()))]);
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|err| to_param_error(&err))?;
        let sql = template
            .render(Value::from_iter(context))
            .map_err(|err| to_param_error(&err))?;
        let binds = std::mem::take(&mut *sink.0.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(RenderedSql {
            sql: sql.trim().to_owned(),
            binds,
        })
    }
}

fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name) || name.starts_with("__tb__") || name.starts_with("output_format_")
}

/// An environment with Tinybird's functions and the binding formatter.
fn environment() -> Environment<'static> {
    // `empty()` rather than `new()`: the crate is built without minijinja's serde feature, and
    // a pipe needs only a few of the builtins, added below.
    let mut env = Environment::empty();
    env.set_debug(false);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for ty in types::SCALAR_TYPES {
        env.add_function(*ty, move |args: Rest<Value>| types::scalar(ty, &args));
    }
    env.add_function("Array", |args: Rest<Value>| types::array(&args));
    env.add_function("defined", |value: Value| types::defined(&value));
    env.add_function("symbol", |args: Rest<Value>| extras::column("symbol", args));
    env.add_function("column", |args: Rest<Value>| extras::column("column", args));
    env.add_function("columns", extras::columns);
    env.add_function("split_to_array", extras::split_to_array);
    env.add_function("sql_and", extras::sql_and);
    env.add_function("error", extras::error);
    env.add_function("range", minijinja::functions::range);
    env.add_test("defined", |value: Value| types::defined(&value));
    env.add_test("undefined", |value: Value| !types::defined(&value));
    env.add_test("none", minijinja::tests::is_none);
    env.add_filter("length", minijinja::filters::length);
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("trim", minijinja::filters::trim);
    env.set_formatter(bind_output);
    env
}

/// Prints `?` (or `(?, ?)` for a list) and records the value(s) as binds.
fn bind_output(out: &mut Output<'_>, state: &State<'_, '_>, value: &Value) -> Result<(), Error> {
    let sink = state.lookup(BINDS_VAR);
    let sink = sink
        .as_ref()
        .and_then(|s| s.downcast_object_ref::<BindSink>())
        .ok_or_else(|| refuse("values printed inside a macro cannot be bound: inline it"))?;
    let mut binds = sink.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(names) = value.downcast_object_ref::<extras::Identifiers>() {
        return out.write_str(&names.sql()).map_err(Error::from);
    }
    if let Some(fragment) = value.downcast_object_ref::<extras::Fragment>() {
        binds.extend(fragment.binds.iter().cloned());
        return out
            .write_str(&format!("({})", fragment.sql))
            .map_err(Error::from);
    }
    if let Some(array) = value.downcast_object_ref::<extras::ArrayValues>() {
        let mut marks = Vec::new();
        for item in &array.0 {
            binds.push(sql_value(item)?);
            marks.push("?");
        }
        return out
            .write_str(&format!("[{}]", marks.join(", ")))
            .map_err(Error::from);
    }
    let is_list = matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable);
    if is_list && value.downcast_object_ref::<Param>().is_none() {
        let items: Vec<Value> = value.try_iter()?.collect();
        let mut text = String::from("(");
        for (i, item) in items.iter().enumerate() {
            binds.push(sql_value(item)?);
            text.push_str(if i == 0 { "?" } else { ", ?" });
        }
        text.push(')');
        return out.write_str(&text).map_err(Error::from);
    }
    binds.push(sql_value(value)?);
    out.write_str("?").map_err(Error::from)
}

/// The SQLite value for one printed template value.
pub(super) fn sql_value(value: &Value) -> Result<SqlValue, Error> {
    if let Some(param) = value.downcast_object_ref::<Param>() {
        return Err(refuse(&format!(
            "{{{{ {0} }}}} prints parameter {0} without a type: wrap it in a type function \
             such as {{{{ String({0}) }}}} or {{{{ Int32({0}) }}}}",
            param.name
        )));
    }
    if value.is_safe() {
        return Err(refuse(
            "{{ }} printed already-rendered text (a macro, a {% set %} block or |safe): \
             print values with a type function instead",
        ));
    }
    Ok(match value.kind() {
        ValueKind::Undefined | ValueKind::None => SqlValue::Null,
        ValueKind::Bool => SqlValue::Integer(i64::from(value.is_true())),
        ValueKind::Number if value.is_integer() => match i64::try_from(value.clone()) {
            Ok(n) => SqlValue::Integer(n),
            Err(_) => SqlValue::Text(value.to_string()),
        },
        ValueKind::Number => SqlValue::Real(f64::try_from(value.clone())?),
        ValueKind::String => SqlValue::Text(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bytes => SqlValue::Blob(value.as_bytes().unwrap_or_default().to_vec()),
        kind => {
            return Err(refuse(&format!(
                "{{{{ }}}} cannot print a {kind} (nested lists and maps have no SQL form)"
            )));
        }
    })
}

fn refuse(message: &str) -> Error {
    types::param_error(ParamError::Template {
        message: message.to_owned(),
    })
}

/// Recovers the [`ParamError`] a function raised, or describes the template failure.
fn to_param_error(err: &Error) -> ParamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(param) = current.downcast_ref::<ParamError>() {
            return match param {
                ParamError::Template { message } => ParamError::Template {
                    message: with_line(message, err),
                },
                other => other.clone(),
            };
        }
        source = current.source();
    }
    let detail = err
        .detail()
        .map_or_else(|| err.kind().to_string(), str::to_owned);
    let message = match err.kind() {
        ErrorKind::UndefinedError => format!("{detail}: the pipe reads something that is not set"),
        _ => detail,
    };
    ParamError::Template {
        message: with_line(&message, err),
    }
}

fn with_line(message: &str, err: &Error) -> String {
    match err.line() {
        Some(line) => format!("template line {line}: {message}"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
