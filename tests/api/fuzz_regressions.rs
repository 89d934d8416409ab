//! Inputs the fuzz targets (`fuzz/`, run with `scripts/fuzz`) crashed on, replayed through
//! the public API so a plain `cargo test` keeps them fixed. Each test names its target and
//! the saved input in `fuzz/regressions/<target>/`.

use tinybird_bff::tinybird::params::Params;
use tinybird_local::pipes::PipeSet;
use tinybird_local::template::ParamError;

/// `pipe_set`, `fuzz/regressions/pipe_set/nbsp-indent-drops-sql-line`: a `SQL >` block
/// whose lines mix a plain indent with a multi-byte whitespace (U+00A0, as pasted from a web
/// page) lost a whole line, silently. Here that line is the row filter, so the pipe served
/// every tenant's rows and no longer asked for `org_id`.
#[test]
fn a_row_filter_line_indented_with_a_no_break_space_is_kept() {
    let contents = "NODE endpoint\nSQL >\n  SELECT * FROM orders\n \u{a0}WHERE org_id = {{ String(org_id) }}\n\nTYPE endpoint\n";
    let (set, errors) = PipeSet::from_sources(&[("orders_by_org.pipe", contents)]);
    assert!(errors.is_empty(), "{errors:?}");
    let pipe = set.get("orders_by_org").expect("the pipe loads");
    assert_eq!(pipe.param_names(), ["org_id"]);
    assert_eq!(
        pipe.endpoint().render(&Params::default()),
        Err(ParamError::Missing {
            name: "org_id".into()
        })
    );
    let sql = pipe
        .endpoint()
        .render(&Params::parse("org_id=acme").unwrap())
        .unwrap()
        .sql;
    assert!(sql.contains("WHERE org_id = ?"), "{sql}");
}
