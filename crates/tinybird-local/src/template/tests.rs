//! Behaviour of pipe templates as a pipe author and an API caller see it.

use super::*;
use rusqlite::types::Value::{Integer, Null, Real, Text};

fn render(source: &str, query: &str) -> Result<RenderedSql, ParamError> {
    PipeTemplate::compile(source)
        .expect("template compiles")
        .render(&Params::parse(query).unwrap())
}

fn sql(source: &str, query: &str) -> (String, Vec<SqlValue>) {
    let rendered = render(source, query).expect("template renders");
    (rendered.sql, rendered.binds)
}

fn invalid(source: &str, query: &str) -> String {
    match render(source, query) {
        Err(err @ ParamError::Invalid { .. }) => err.to_string(),
        other => panic!("expected an invalid parameter, got {other:?}"),
    }
}

#[test]
fn string_and_int_bind_as_placeholders() {
    let (text, binds) = sql(
        "%\nSELECT * FROM t WHERE org = {{ String(org) }} LIMIT {{ Int32(limit, 10) }}",
        "org=acme",
    );
    assert_eq!(text, "SELECT * FROM t WHERE org = ? LIMIT ?");
    assert_eq!(binds, [Text("acme".into()), Integer(10)]);
    assert_eq!(sql("{{ Int32(limit, 10) }}", "limit=5").1, [Integer(5)]);
    assert_eq!(sql("{{ Int32(limit, '7') }}", "").1, [Integer(7)]);
    assert_eq!(sql("{{ Int32(limit, default=3) }}", "").1, [Integer(3)]);
}

#[test]
fn integer_types_are_range_checked_and_errors_name_param_and_type() {
    assert_eq!(
        invalid("{{ Int32(limit) }}", "limit=3000000000"),
        "parameter limit: '3000000000' is not a valid Int32 (out of range -2147483648..2147483647)"
    );
    assert_eq!(
        render("{{ Int32(limit) }}", "limit=3000000000"),
        Err(ParamError::Invalid {
            name: "limit".into(),
            ty: "Int32".into(),
            reason: "'3000000000' is not a valid Int32 (out of range -2147483648..2147483647)"
                .into(),
        })
    );
    assert!(invalid("{{ Int8(n) }}", "n=128").contains("Int8 (out of range -128..127)"));
    assert!(invalid("{{ UInt8(n) }}", "n=-1").contains("UInt8"));
    assert!(invalid("{{ Int16(n) }}", "n=40000").contains("Int16"));
    assert!(invalid("{{ UInt16(n) }}", "n=70000").contains("UInt16"));
    assert!(invalid("{{ UInt32(n) }}", "n=4294967296").contains("UInt32"));
    assert!(invalid("{{ Int64(n) }}", "n=9223372036854775808").contains("Int64"));
    assert!(invalid("{{ Int32(n) }}", "n=abc").contains("'abc' is not a valid Int32"));
    assert_eq!(sql("{{ Int8(n) }}", "n=-128").1, [Integer(-128)]);
    assert_eq!(
        sql("{{ Int64(n) }}", "n=-9223372036854775808").1,
        [Integer(i64::MIN)]
    );
    // Above i64::MAX SQLite has no integer; the exact digits travel as text.
    assert_eq!(
        sql("{{ UInt64(n) }}", "n=18446744073709551615").1,
        [Text("18446744073709551615".into())]
    );
    assert!(invalid("{{ UInt64(n) }}", "n=18446744073709551616").contains("UInt64"));
}

#[test]
fn floats_dates_and_booleans() {
    assert_eq!(sql("{{ Float64(x) }}", "x=1.5").1, [Real(1.5)]);
    assert_eq!(sql("{{ Float32(x) }}", "x=2").1, [Real(2.0)]);
    assert!(invalid("{{ Float32(x) }}", "x=1e39").contains("Float32"));
    assert!(invalid("{{ Float64(x) }}", "x=nan").contains("Float64"));
    assert_eq!(
        sql("{{ Date(d) }}", "d=2024-02-29").1,
        [Text("2024-02-29".into())]
    );
    assert!(invalid("{{ Date(d) }}", "d=2023-02-29").contains("expected YYYY-MM-DD"));
    assert!(invalid("{{ Date(d) }}", "d=2024-2-1").contains("Date"));
    assert_eq!(
        sql("{{ DateTime(t) }}", "t=2024-01-02+03:04:05").1,
        [Text("2024-01-02 03:04:05".into())]
    );
    assert!(invalid("{{ DateTime(t) }}", "t=2024-01-02T03:04:05").contains("DateTime"));
    for (raw, expected) in [("0", 0), ("false", 0), ("FALSE", 0), ("1", 1), ("no", 1)] {
        let query = format!("b={raw}");
        assert_eq!(
            sql("{{ Boolean(b) }}", &query).1,
            [Integer(expected)],
            "{raw}"
        );
    }
}

#[test]
fn missing_and_empty_values() {
    assert_eq!(
        render("WHERE org = {{ String(org_id) }}", "other=1"),
        Err(ParamError::Missing {
            name: "org_id".into()
        })
    );
    assert_eq!(
        ParamError::Missing {
            name: "org_id".into()
        }
        .to_string(),
        "missing required parameter org_id"
    );
    // Empty counts as absent for typed values, but is a real (empty) String.
    assert!(matches!(
        render("{{ Int32(n) }}", "n="),
        Err(ParamError::Missing { .. })
    ));
    assert_eq!(sql("{{ Int32(n, 4) }}", "n=").1, [Integer(4)]);
    assert_eq!(sql("{{ String(s, 'x') }}", "s=").1, [Text(String::new())]);
    assert_eq!(sql("{{ String(s, None) }}", "").1, [Null]);
}

#[test]
fn arrays_from_repeated_keys_and_commas() {
    let source = "WHERE id IN {{ Array(ids, 'Int32') }}";
    let expected = (
        "WHERE id IN (?, ?, ?)".to_owned(),
        vec![Integer(1), Integer(2), Integer(3)],
    );
    assert_eq!(sql(source, "ids=1&ids=2&ids=3"), expected);
    assert_eq!(sql(source, "ids=1,2,3"), expected);
    assert_eq!(
        sql("{{ Array(tags, 'String', 'a,b') }}", "").1,
        [Text("a".into()), Text("b".into())]
    );
    assert_eq!(sql("IN {{ Array(ids, 'Int32', '') }}", "").0, "IN ()");
    assert!(invalid(source, "ids=1,x").contains("'x' is not a valid Int32"));
    assert!(matches!(
        render(source, ""),
        Err(ParamError::Missing { .. })
    ));
}

#[test]
fn if_elif_else_end_and_nested_blocks() {
    let source = "%
SELECT 1
{% if defined(a) %}
  AND a = {{ String(a) }}
  {% if defined(b) and Int32(b) > 2 %} AND b = {{ Int32(b) }} {% end %}
{% elif not defined(c) %}
  AND none
{% else %}
  AND c = {{ String(c) }}
{% end %}
{% for v in Array(vs, 'Int32', '') %} OR v = {{ v }}{% end %}";
    let squash = |query: &str| {
        let (text, binds) = sql(source, query);
        (text.split_whitespace().collect::<Vec<_>>().join(" "), binds)
    };
    assert_eq!(
        squash("a=x&b=3"),
        (
            "SELECT 1 AND a = ? AND b = ?".into(),
            vec![Text("x".into()), Integer(3)]
        )
    );
    assert_eq!(squash("a=x&b=1").0, "SELECT 1 AND a = ?");
    assert_eq!(squash("").0, "SELECT 1 AND none");
    assert_eq!(squash("a=&c=z").0, "SELECT 1 AND c = ?");
    assert_eq!(squash("vs=4,5").0, "SELECT 1 AND none OR v = ? OR v = ?");
    // `endif` works too, and comparisons see the typed value.
    let sort = "ORDER BY r {% if String(sort, 'desc') == 'asc' %}ASC{% else %}DESC{% endif %}";
    assert_eq!(sql(sort, "sort=asc").0, "ORDER BY r ASC");
    assert_eq!(sql(sort, "").0, "ORDER BY r DESC");
}

#[test]
fn injection_attempt_stays_a_bind() {
    let source = "SELECT * FROM t WHERE org_id = {{ String(org_id) }}";
    let (text, binds) = sql(source, "org_id=x%27+OR+%271%27%3D%271");
    assert_eq!(text, "SELECT * FROM t WHERE org_id = ?");
    assert_eq!(binds, [Text("x' OR '1'='1".into())]);
}

#[test]
fn bare_parameter_output_is_refused() {
    match render("WHERE a = {{ x }}", "x=1") {
        Err(ParamError::Template { message }) => {
            assert!(message.contains("String(x)"), "{message}")
        }
        other => panic!("bare param must be refused, got {other:?}"),
    }
    assert!(matches!(
        render("{{ x|upper }}{{ x ~ '' }}", "x=1").map(|r| r.binds),
        Ok(binds) if !binds.contains(&Text("1".into()))
    ));
}

#[test]
fn compile_errors_carry_lines() {
    let err = PipeTemplate::compile("%\nSELECT\n{% if defined(a) %}\nx\n{% end %}\n{% end %}")
        .unwrap_err();
    assert_eq!(err.line, 6);
    let err = PipeTemplate::compile("SELECT\nWHERE a = {{ String(a) \n").unwrap_err();
    assert_eq!(err.line, 2, "{err}");
    let err = PipeTemplate::compile("SELECT\n\nWHERE a = {{ Strin(a) }}").unwrap_err();
    assert_eq!(err.line, 3);
    assert!(err.message.starts_with("unknown function Strin"), "{err}");
    let err = PipeTemplate::compile("SELECT\n{{ String(token) }}").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.message.contains("reserves"), "{err}");
    let err = PipeTemplate::compile("SELECT\n{% if defined(a) %}\nx\n").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.message.contains("never closed"), "{err}");
    let err = PipeTemplate::compile("{% macro m() %}{{ String(a) }}{% end %}").unwrap_err();
    assert!(err.message.contains("macros"), "{err}");
    assert!(PipeTemplate::compile("{% set y %}{{ String(a) }}{% end %}").is_err());
    for reserved in ["q", "__tb__x", "output_format_json_quote"] {
        let source = format!("{{% if defined({reserved}) %}}1{{% end %}}");
        assert!(PipeTemplate::compile(&source).is_err(), "{reserved}");
    }
}

#[test]
fn lists_referenced_parameters_sorted() {
    let template = PipeTemplate::compile(
        "{% if defined(z) %}{{ String(a, description='x') }}{% end %}\
         {% for i in Array(ids, 'Int32', '') %}{{ i }}{% end %}",
    )
    .unwrap();
    assert_eq!(template.param_names(), ["a", "ids", "z"]);
}

#[test]
fn rendered_sql_runs_in_sqlite_with_its_binds() {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE orders (org_id TEXT, product_id INTEGER, amount REAL);
         INSERT INTO orders VALUES ('acme', 1, 10), ('acme', 2, 5), ('acme', 1, 7),
                                   ('other', 1, 100), ('x'' OR ''1''=''1', 3, 1);",
    )
    .unwrap();
    let template = PipeTemplate::compile(
        "%
        SELECT product_id, sum(amount) AS revenue FROM orders
        WHERE org_id = {{ String(org_id) }}
        {% if defined(products) %} AND product_id IN {{ Array(products, 'Int32') }} {% end %}
        GROUP BY product_id ORDER BY revenue DESC LIMIT {{ Int32(limit, 10) }}",
    )
    .unwrap();
    let run = |query: &str| -> Vec<(i64, f64)> {
        let rendered = template.render(&Params::parse(query).unwrap()).unwrap();
        let mut stmt = db.prepare(&rendered.sql).unwrap();
        stmt.query_map(rusqlite::params_from_iter(rendered.binds.iter()), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    assert_eq!(run("org_id=acme"), [(1, 17.0), (2, 5.0)]);
    assert_eq!(run("org_id=acme&limit=1"), [(1, 17.0)]);
    assert_eq!(run("org_id=acme&products=2"), [(2, 5.0)]);
    // The classic injection only matches the row whose org_id is literally that text.
    assert_eq!(run("org_id=x%27+OR+%271%27%3D%271"), [(3, 1.0)]);
}

#[test]
fn template_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PipeTemplate>();
}

#[test]
fn names_print_as_quoted_identifiers_and_refuse_anything_else() {
    let (text, binds) = sql(
        "SELECT {{ columns(cols, 'a,b') }} FROM t ORDER BY {{ symbol(sort) }}",
        "sort=ts",
    );
    assert_eq!(text, "SELECT `a`, `b` FROM t ORDER BY `ts`");
    assert!(binds.is_empty());
    assert_eq!(sql("SELECT {{ column(c, 't.x') }}", "").0, "SELECT `t`.`x`");
    for hostile in ["ts`--", "a b", "1x", "x;DROP"] {
        let query = format!("sort={}", urlencode(hostile));
        match render("{{ symbol(sort) }}", &query) {
            Err(ParamError::Invalid { name, .. }) => assert_eq!(name, "sort"),
            other => panic!("{hostile}: {other:?}"),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn sql_and_split_to_array_and_datetime64_bind_their_values() {
    let (text, binds) = sql(
        "WHERE {{ sql_and(org_id=String(org, None), day__gte=Date(start, None), id__in=Array(ids, 'Int32', None)) }}",
        "org=acme&ids=1,2",
    );
    assert_eq!(text, "WHERE (`id` IN (?, ?) AND `org_id` = ?)");
    assert_eq!(binds, [Integer(1), Integer(2), Text("acme".into())]);
    assert_eq!(
        sql("WHERE {{ sql_and(a=String(x, None)) }}", "").0,
        "WHERE (1)"
    );
    let (text, binds) = sql("has({{ split_to_array(tags, '') }}, tag)", "tags=a,b");
    assert_eq!(text, "has([?, ?], tag)");
    assert_eq!(binds, [Text("a".into()), Text("b".into())]);
    assert_eq!(
        sql("{{ DateTime64(t) }}", "t=2024-01-02 03:04:05.678").1,
        [Text("2024-01-02 03:04:05.678".into())]
    );
}

#[test]
fn for_loops_and_defined_guards_work() {
    let (text, binds) = sql(
        "%\nSELECT 1{% for c in Array(cols, 'String', 'a,b') %}, {{ String(c) }}{% end %}{% if defined(x) and x != '' %} WHERE x = {{ String(x) }}{% end %}",
        "",
    );
    assert_eq!(text, "SELECT 1, ?, ?");
    assert_eq!(binds, [Text("a".into()), Text("b".into())]);
    assert!(
        sql(
            "{% if defined(x) and x != '' %}{{ String(x) }}{% end %}",
            "x=v"
        )
        .0
        .contains('?')
    );
    match render("{{ error('nope', 401) }}", "") {
        Err(ParamError::Raised { message, status }) => {
            assert_eq!((message.as_str(), status), ("nope", 401))
        }
        other => panic!("{other:?}"),
    }
}
