//! Fuzzes `.pipe` datafile loading (`tinybird_local::pipes::PipeSet::from_sources`).
//!
//! Input layout (so seeds are plain text): `name\0contents\0name\0contents...`. Nothing may
//! panic; every pipe that loads must be found by its name and by its id (`t_` + 32 hex
//! chars), and each file either loads or is reported, never silently dropped.
//!
//! The same bytes also drive a second, structured check: they pick the indentation (spaces,
//! tabs and Unicode whitespace such as U+00A0 from a copy-paste) of each line of a `SQL >`
//! block whose lines are distinct tokens; every token must reach the rendered SQL, since a
//! dropped line may be a row filter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinybird_local::pipes::PipeSet;
use tinybird_bff::tinybird::names::is_valid_pipe_name;

/// Whitespace a copy-pasted `.pipe` file may indent with.
const INDENT: [char; 6] = [' ', '\t', '\u{a0}', '\u{3000}', '\u{2003}', ' '];

fn check_indentation(data: &[u8]) {
    let mut contents = String::from("NODE endpoint\nSQL >\n");
    let mut tokens = Vec::new();
    for (i, pair) in data.chunks(2).take(12).enumerate() {
        let (width, pick) = (pair[0], pair.get(1).copied().unwrap_or(0));
        // A block line must start with a space or a tab; the rest is any whitespace.
        contents.push(if width & 0x80 == 0 { ' ' } else { '\t' });
        for k in 0..(width % 5) {
            contents.push(INDENT[usize::from((pick >> k) % 6)]);
        }
        let token = format!("tok{i}x");
        contents.push_str(&token);
        contents.push('\n');
        tokens.push(token);
    }
    contents.push_str("\nTYPE endpoint\n");
    let (set, errors) = PipeSet::from_sources(&[("indented.pipe", contents.as_str())]);
    assert!(errors.is_empty(), "{errors:?} for {contents:?}");
    let pipe = set.get("indented").expect("loaded");
    let sql = pipe
        .endpoint()
        .render(&Default::default())
        .expect("no params")
        .sql;
    for token in &tokens {
        assert!(
            sql.contains(token.as_str()),
            "SQL line {token} was dropped: file {contents:?} rendered {sql:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check_indentation(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = text.split('\0').collect();
    let sources: Vec<(&str, &str)> = parts
        .chunks(2)
        .map(|c| (c[0], c.get(1).copied().unwrap_or("")))
        .collect();
    let (set, errors) = PipeSet::from_sources(&sources);
    let loaded = set.iter().count();
    assert!(
        loaded + errors.len() >= sources.len(),
        "{} files in, {loaded} loaded and {} errors",
        sources.len(),
        errors.len()
    );
    for pipe in set.iter() {
        assert!(
            is_valid_pipe_name(&pipe.name),
            "loaded bad name {:?}",
            pipe.name
        );
        assert!(
            pipe.id.len() == 34
                && pipe.id.starts_with("t_")
                && pipe.id[2..].chars().all(|c| c.is_ascii_hexdigit()),
            "bad id {:?}",
            pipe.id
        );
        assert_eq!(set.get(&pipe.name).map(|p| &p.id), Some(&pipe.id));
        assert_eq!(set.get(&pipe.id).map(|p| &p.name), Some(&pipe.name));
        let _ = pipe.endpoint().render(&Default::default());
    }
});
