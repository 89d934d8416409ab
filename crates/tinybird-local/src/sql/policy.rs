//! The authorizer policy of `/v0/sql`: what a statement may touch, decided per action.
//!
//! SQLite calls the authorizer while it compiles a statement, once per column read, function
//! call, pragma, write and so on, with the innermost view (or named subquery) responsible for
//! the access as the "accessor". The policy is a pure function of that call, so it is unit
//! tested here without a database; [`super::sandbox`] installs it.
//!
//! What it allows, by [`Mode`]:
//! - reads of `main` tables: the admin, anything; otherwise only from inside one of the
//!   request's secret filter views (the accessor names it), never from the user's SQL. The
//!   [`Mode::Check`] pass has no filter views at all, so there every `main` read is refused;
//! - reads of `temp` objects: only the request's own views (or stand-in tables);
//! - function calls on [`ALLOWED_FUNCTIONS`]; `SELECT` and recursive CTEs;
//! - nothing else: no pragma, `ATTACH`, write, DDL or transaction control.
//!
//! One SQLite quirk shapes [`Mode::Run`]: when a query uses no column of a table (`SELECT
//! count(*) FROM orders`), SQLite reports a read of column `""` after flattening the views,
//! with the view accessor lost. In `Run` that report is accepted for a granted table; the
//! check pass (which refuses it) has already proved the statement names no table directly.

use std::collections::HashSet;

use rusqlite::hooks::{AuthAction, AuthContext};

/// Which pass of a request the policy guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The workspace admin token: every table, unfiltered.
    Admin,
    /// The structural pass: granted data sources are empty stand-in tables in `temp`, and
    /// nothing in `main` may be read at all.
    Check,
    /// The real pass: granted data sources are filter views over `main`.
    Run,
}

/// Why an action was refused; the message is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// A data source the token has no `DATASOURCES:READ` scope for.
    #[error("token has no DATASOURCES:READ scope for data source {0}: mint one that includes it")]
    NoScope(String),
    /// A granted data source read around its filter (`main.orders`, a shadowing CTE, ...).
    #[error(
        "data source {0} can only be read by its plain name (e.g. `FROM {0}`), which applies the token's row filter; `main.{0}` and similar direct reads are not allowed"
    )]
    Direct(String),
    /// SQLite's own tables or objects of another request stage.
    #[error("{0} is internal and cannot be read")]
    Internal(String),
    /// A function not on the allow-list.
    #[error("function {0} is not allowed in /v0/sql")]
    Function(String),
    /// Anything but reading: pragma, attach, write, DDL, transactions.
    #[error("{0} is not allowed: /v0/sql runs one read-only SELECT")]
    Statement(String),
}

impl Denial {
    /// Whether the refusal is about data access (403) rather than the statement (400).
    pub fn is_access(&self) -> bool {
        matches!(
            self,
            Denial::NoScope(_) | Denial::Direct(_) | Denial::Internal(_)
        )
    }
}

/// The decision function, built per request from the token's grants.
#[derive(Debug, Clone)]
pub struct Policy {
    mode: Mode,
    /// Lower-cased names of the granted data sources (tables in `main`, views in `temp`).
    granted: HashSet<String>,
    /// Lower-cased names of this request's secret filter views in `temp`.
    filter_views: HashSet<String>,
    /// Lower-cased tables of the `tinybird` schema (service data sources) the token reads.
    service: HashSet<String>,
}

impl Policy {
    /// A policy for `mode` over the granted data sources and the secret filter view names.
    pub fn new<'a>(
        mode: Mode,
        granted: impl IntoIterator<Item = &'a str>,
        filter_views: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self {
            mode,
            granted: granted.into_iter().map(str::to_ascii_lowercase).collect(),
            filter_views: filter_views
                .into_iter()
                .map(str::to_ascii_lowercase)
                .collect(),
            service: HashSet::new(),
        }
    }

    /// Also allows reading these tables of the `tinybird` schema (service data sources).
    pub fn with_service<'a>(mut self, tables: impl IntoIterator<Item = &'a str>) -> Self {
        self.service = tables.into_iter().map(str::to_ascii_lowercase).collect();
        self
    }

    /// The admin's policy: any table, still read-only and allow-listed functions.
    pub fn admin() -> Self {
        Self::new(Mode::Admin, [], [])
    }

    /// Decides one authorizer call.
    pub fn decide(&self, ctx: &AuthContext<'_>) -> Result<(), Denial> {
        match ctx.action {
            AuthAction::Select | AuthAction::Recursive => Ok(()),
            AuthAction::Read {
                table_name,
                column_name,
            } => self.read(table_name, column_name, ctx.database_name, ctx.accessor),
            AuthAction::Function { function_name } => {
                let name = function_name.to_ascii_lowercase();
                // The ClickHouse translation's own pure functions are allowed too.
                let clickhouse = crate::clickhouse::sqlite::FUNCTIONS.contains(&name.as_str());
                if ALLOWED_FUNCTIONS.contains(&name.as_str()) || clickhouse {
                    Ok(())
                } else {
                    Err(Denial::Function(function_name.to_owned()))
                }
            }
            AuthAction::Pragma { pragma_name, .. } => {
                Err(Denial::Statement(format!("PRAGMA {pragma_name}")))
            }
            AuthAction::Attach { .. } => Err(Denial::Statement("ATTACH".into())),
            AuthAction::Detach { .. } => Err(Denial::Statement("DETACH".into())),
            AuthAction::Insert { .. } | AuthAction::Update { .. } | AuthAction::Delete { .. } => {
                Err(Denial::Statement("writing".into()))
            }
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                Err(Denial::Statement("transaction control".into()))
            }
            _ => Err(Denial::Statement("this statement".into())),
        }
    }

    fn read(
        &self,
        table: &str,
        column: &str,
        database: Option<&str>,
        accessor: Option<&str>,
    ) -> Result<(), Denial> {
        let lower = table.to_ascii_lowercase();
        match database.map(str::to_ascii_lowercase).as_deref() {
            // The "no column used" notice of a subquery or CTE: it carries no data, and the
            // reads inside it were authorized one by one.
            None => Ok(()),
            Some("main") => self.read_main(table, &lower, column, accessor),
            Some("temp") if self.mode == Mode::Admin => Err(Denial::Internal(table.to_owned())),
            Some("temp") if self.granted.contains(&lower) || self.filter_views.contains(&lower) => {
                Ok(())
            }
            Some("temp") => Err(Denial::Internal(table.to_owned())),
            Some("tinybird") if self.mode == Mode::Admin || self.service.contains(&lower) => Ok(()),
            Some("tinybird") => Err(Denial::NoScope(format!("tinybird.{table}"))),
            Some(other) => Err(Denial::Statement(format!(
                "reading attached database {other}"
            ))),
        }
    }

    fn read_main(
        &self,
        table: &str,
        lower: &str,
        column: &str,
        accessor: Option<&str>,
    ) -> Result<(), Denial> {
        if self.mode == Mode::Admin {
            return Ok(());
        }
        if lower.starts_with("sqlite_") {
            return Err(Denial::Internal(table.to_owned()));
        }
        // Table-valued functions read like tables of `main`; say what they are.
        if lower.starts_with("pragma_") || lower == "json_each" || lower == "json_tree" {
            return Err(Denial::Statement(format!(
                "the table-valued function {table}"
            )));
        }
        let from_filter_view =
            accessor.is_some_and(|a| self.filter_views.contains(&a.to_ascii_lowercase()));
        let granted = self.granted.contains(lower);
        match self.mode {
            Mode::Run if from_filter_view => Ok(()),
            // See the module doc: a flattened filter view using no column of its table.
            Mode::Run if granted && column.is_empty() && accessor.is_none() => Ok(()),
            _ if granted => Err(Denial::Direct(table.to_owned())),
            _ => Err(Denial::NoScope(table.to_owned())),
        }
    }
}

/// Functions a `/v0/sql` statement may call: SQLite's core scalar, date, math, JSON,
/// aggregate and window functions. Left out on purpose: `load_extension`, `readfile`,
/// `writefile`, `fts3_tokenizer`, `sqlite_*` introspection, `changes`-style connection
/// state, and blob makers (`zeroblob`, `randomblob`).
#[rustfmt::skip]
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // scalar
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "if", "ifnull",
    "iif", "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min",
    "nullif", "octet_length", "printf", "quote", "random", "replace", "round", "rtrim", "sign",
    "substr", "substring", "trim", "typeof", "unhex", "unicode", "unlikely", "upper",
    // date and time
    "current_date", "current_time", "current_timestamp", "date", "datetime", "julianday",
    "strftime", "time", "timediff", "unixepoch",
    // math
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos",
    "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow",
    "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    // aggregate
    "avg", "count", "group_concat", "median", "percentile", "percentile_cont",
    "percentile_disc", "string_agg", "sum", "total",
    // window
    "cume_dist", "dense_rank", "first_value", "lag", "last_value", "lead", "nth_value", "ntile",
    "percent_rank", "rank", "row_number",
    // JSON values (not the json_each/json_tree tables)
    "->", "->>", "json", "json_array", "json_array_length", "json_extract", "json_group_array",
    "json_group_object", "json_insert", "json_object", "json_patch", "json_quote",
    "json_remove", "json_replace", "json_set", "json_type", "json_valid",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'a>(
        table: &'a str,
        column: &'a str,
        db: Option<&'a str>,
        accessor: Option<&'a str>,
    ) -> AuthContext<'a> {
        AuthContext {
            action: AuthAction::Read {
                table_name: table,
                column_name: column,
            },
            database_name: db,
            accessor,
        }
    }

    fn other(action: AuthAction<'_>) -> AuthContext<'_> {
        AuthContext {
            action,
            database_name: None,
            accessor: None,
        }
    }

    fn policy(mode: Mode) -> Policy {
        Policy::new(mode, ["orders"], ["tbrls_s3cret_0"])
    }

    #[test]
    fn main_tables_are_read_only_through_the_filter_view() {
        let run = policy(Mode::Run);
        let via_view = read("orders", "org_id", Some("main"), Some("tbrls_S3CRET_0"));
        assert_eq!(run.decide(&via_view), Ok(()));
        // Direct, or through a CTE or view the user named after the data source.
        for accessor in [None, Some("orders"), Some("x")] {
            assert_eq!(
                run.decide(&read("orders", "org_id", Some("main"), accessor)),
                Err(Denial::Direct("orders".into())),
                "{accessor:?}"
            );
        }
        assert_eq!(
            run.decide(&read("orgs", "plan", Some("main"), None)),
            Err(Denial::NoScope("orgs".into()))
        );
        // The filter itself may read other tables (it comes from the signed token).
        assert_eq!(
            run.decide(&read("orgs", "plan", Some("main"), Some("tbrls_s3cret_0"))),
            Ok(())
        );
    }

    #[test]
    fn the_check_pass_refuses_every_main_read() {
        let check = policy(Mode::Check);
        assert_eq!(
            check.decide(&read("orders", "", Some("main"), None)),
            Err(Denial::Direct("orders".into()))
        );
        assert_eq!(
            check.decide(&read("orders", "org_id", Some("main"), Some("orders"))),
            Err(Denial::Direct("orders".into()))
        );
        assert_eq!(
            check.decide(&read("orders", "org_id", Some("temp"), None)),
            Ok(())
        );
        // Only the run pass accepts the column-less notice SQLite gives flattened views.
        let run = policy(Mode::Run);
        assert_eq!(run.decide(&read("orders", "", Some("main"), None)), Ok(()));
        assert_eq!(
            run.decide(&read("orgs", "", Some("main"), None)),
            Err(Denial::NoScope("orgs".into()))
        );
    }

    #[test]
    fn internal_and_attached_objects_are_refused() {
        let run = policy(Mode::Run);
        for (table, db) in [
            ("sqlite_temp_master", "temp"),
            ("sqlite_schema", "main"),
            ("sqlite_master", "main"),
            ("other_view", "temp"),
        ] {
            assert_eq!(
                run.decide(&read(table, "sql", Some(db), None)),
                Err(Denial::Internal(table.into()))
            );
        }
        for (table, db) in [
            ("orders", "evil"),
            ("pragma_table_info", "main"),
            ("json_each", "main"),
        ] {
            assert!(matches!(
                run.decide(&read(table, "x", Some(db), None)),
                Err(Denial::Statement(_))
            ));
        }
        assert_eq!(
            Policy::admin().decide(&read("anything", "x", Some("main"), None)),
            Ok(())
        );
        assert!(
            Policy::admin()
                .decide(&read("orders", "x", Some("temp"), None))
                .is_err()
        );
    }

    #[test]
    fn only_allow_listed_functions_run() {
        for mode in [Mode::Admin, Mode::Check, Mode::Run] {
            let p = policy(mode);
            for ok in ["count", "SUM", "strftime", "->>", "row_number", "coalesce"] {
                let call = other(AuthAction::Function { function_name: ok });
                assert_eq!(p.decide(&call), Ok(()), "{ok}");
            }
            for bad in [
                "load_extension",
                "readfile",
                "writefile",
                "fts3_tokenizer",
                "sqlite_version",
                "zeroblob",
                "edit",
            ] {
                let call = other(AuthAction::Function { function_name: bad });
                assert_eq!(p.decide(&call), Err(Denial::Function(bad.into())));
            }
        }
    }

    #[test]
    fn nothing_but_reading_is_allowed_even_for_the_admin() {
        for mode in [Mode::Admin, Mode::Check, Mode::Run] {
            let p = policy(mode);
            let actions = [
                AuthAction::Pragma {
                    pragma_name: "table_info",
                    pragma_value: Some("orgs"),
                },
                AuthAction::Attach {
                    filename: "/etc/passwd",
                },
                AuthAction::Detach { database_name: "x" },
                AuthAction::Insert {
                    table_name: "orders",
                },
                AuthAction::Update {
                    table_name: "orders",
                    column_name: "amount",
                },
                AuthAction::Delete {
                    table_name: "orders",
                },
                AuthAction::CreateTempView {
                    view_name: "orders",
                },
                AuthAction::DropTempView {
                    view_name: "orders",
                },
                AuthAction::Transaction {
                    operation: rusqlite::hooks::TransactionOperation::Begin,
                },
            ];
            for action in actions {
                let denial = p.decide(&other(action)).unwrap_err();
                assert!(!denial.is_access(), "{action:?} -> {denial}");
            }
            assert_eq!(p.decide(&other(AuthAction::Select)), Ok(()));
            assert_eq!(p.decide(&other(AuthAction::Recursive)), Ok(()));
        }
        assert!(Denial::NoScope("x".into()).is_access());
    }
}
