//! Fuzzes the local endpoint's template engine (`tinybird_local::template`).
//!
//! Input layout (so seeds are plain text): the template source, a NUL byte, then a query
//! string for the request params. `PipeTemplate::compile` runs on the source; if it
//! compiles, `render` runs twice:
//! - with the fuzzed params: no panic, and the SQL has exactly one `?` per bind when the
//!   source has no `?` of its own (at least one per bind otherwise): a bind without its
//!   placeholder shifts every later value onto the wrong column;
//! - with every parameter the template reads set to a marker string: the marker must never
//!   appear in the SQL text, because values are only ever bound, never spliced (the
//!   injection guarantee of the module).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinybird_local::template::PipeTemplate;
use tinybird_bff::tinybird::params::Params;

/// Long and odd enough that no template reassembles it from its own text by accident.
const MARKER: &str = "zQ9'\"mk)--;x\u{1}Marker7";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, query) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(template) = PipeTemplate::compile(source) else {
        return;
    };
    let names = template.param_names();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "param_names not sorted"
    );
    let params = Params::parse(query).unwrap_or_default();
    if let Ok(rendered) = template.render(&params) {
        let placeholders = rendered.sql.matches('?').count();
        assert!(
            placeholders >= rendered.binds.len(),
            "{} binds but only {placeholders} `?` in {:?}",
            rendered.binds.len(),
            rendered.sql
        );
        if !source.contains('?') {
            assert_eq!(
                placeholders,
                rendered.binds.len(),
                "`?` and binds do not pair up in {:?} (binds {:?})",
                rendered.sql,
                rendered.binds
            );
        }
    }
    if source.contains(MARKER) {
        return;
    }
    let mut hostile = Params::default();
    for name in &names {
        hostile.push(name.clone(), MARKER);
    }
    if let Ok(rendered) = template.render(&hostile) {
        assert!(
            !rendered.sql.contains(MARKER),
            "a parameter value reached the SQL text: {:?}",
            rendered.sql
        );
    }
});
