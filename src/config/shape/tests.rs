//! The shape reader on small tables shaped like the config's: every problem in one run.

// The structs exist to be read into; most fields are only there to be matched by name.
#![allow(dead_code)]

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    public_url: String,
    #[serde(default)]
    token: Token,
    #[serde(default)]
    session: Session,
    #[serde(default)]
    grants: Vec<Grant>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    rps: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Session {
    #[serde(default)]
    store: Store,
    #[serde(default)]
    secure: Option<bool>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Store {
    #[default]
    File,
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    name: String,
    #[serde(default)]
    pipes: Vec<String>,
}

fn no_hints(_: &str) -> Vec<String> {
    Vec::new()
}

fn problems(text: &str) -> Vec<String> {
    match read::<File>(text, "f.toml", &no_hints) {
        Ok(shape) => shape.merge(Vec::new()),
        Err(p) => p,
    }
    .iter()
    .map(ToString::to_string)
    .collect()
}

#[test]
fn a_clean_file_reads_with_no_problem() {
    let shape = read::<File>(
        "public_url = \"x\"\n[token]\nttl = \"10m\"\n",
        "f",
        &no_hints,
    )
    .unwrap();
    assert!(shape.is_clean());
    assert_eq!(shape.config.token.ttl.as_deref(), Some("10m"));
}

#[test]
fn every_unknown_key_is_reported_with_the_closest_known_one() {
    let found = problems(
        "public_url = \"x\"\npublc_url = \"y\"\n[token]\ntll = \"10m\"\n[session]\nstroe = \"file\"\n[[grants]]\nname = \"a\"\npipez = []\n",
    );
    assert_eq!(
        found,
        [
            "publc_url: unknown key; did you mean `public_url`? (the top level takes public_url, token, session, grants)",
            "token.tll: unknown key; did you mean `ttl`? ([token] takes ttl, rps)",
            "session.stroe: unknown key; did you mean `store`? ([session] takes store, secure)",
            "grants[0].pipez: unknown key; did you mean `pipes`? ([[grants]] takes name, pipes)",
        ]
    );
}

#[test]
fn a_key_like_none_gets_the_list_and_no_guess() {
    let found = problems("public_url = \"x\"\n[token]\nregion = \"eu\"\n");
    assert_eq!(
        found,
        ["token.region: unknown key ([token] takes ttl, rps)"]
    );
}

#[test]
fn wrong_types_say_what_to_write() {
    let found = problems(
        "public_url = 3000\n[token]\nttl = 600\nrps = \"20\"\n[session]\nsecure = \"true\"\n",
    );
    assert_eq!(
        found,
        [
            "public_url: is the number 3000, but it is a string: write public_url = \"3000\"",
            "token.ttl: is the number 600, but it is a string: write ttl = \"600\"",
            "token.rps: is the string \"20\", but it is not a string: write rps = 20 (no quotes)",
            "session.secure: is the string \"true\", but it is not a string: write secure = true (no quotes)",
        ]
    );
}

#[test]
fn a_number_the_validators_read_as_a_bad_duration_is_fixed_in_seconds() {
    let shape = read::<File>("public_url = \"x\"\n[token]\nttl = 600\n", "f", &no_hints).unwrap();
    assert_eq!(shape.config.token.ttl.as_deref(), Some("600"));
    let merged = shape.merge(vec![
        problem("token.ttl", "\"600\" is not a duration (time unit needed)"),
        problem("grants", "no [[grants]]"),
    ]);
    let merged: Vec<String> = merged.iter().map(ToString::to_string).collect();
    assert_eq!(
        merged,
        [
            "token.ttl: is the number 600, but durations are strings with a unit: write ttl = \"600s\" (or \"10m\", \"12h\")",
            "grants: no [[grants]]",
        ]
    );
}

#[test]
fn an_unknown_choice_suggests_the_closest() {
    let found = problems("public_url = \"x\"\n[session]\nstore = \"memroy\"\n");
    assert_eq!(
        found,
        [
            "session.store: \"memroy\" is not one of \"file\", \"memory\", \"redis\": write \"memory\""
        ]
    );
}

#[test]
fn a_missing_key_is_reported_and_the_rest_still_read() {
    let shape = read::<File>(
        "[token]\nttll = \"1m\"\n[[grants]]\npipes = [\"a\"]\n",
        "f",
        &no_hints,
    )
    .unwrap();
    let merged: Vec<String> = shape
        .merge(vec![problem("public_url", "\"\" is not a URL")])
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        merged,
        [
            "token.ttll: unknown key; did you mean `ttl`? ([token] takes ttl, rps)",
            "grants[0].name: is required in [[grants]] (demo/config.toml shows it with an example value)",
            "public_url: is required in the top level (demo/config.toml shows it with an example value)",
        ],
        "the placeholder's own complaint is dropped"
    );
}

#[test]
fn a_missing_table_gets_a_table_placeholder() {
    #[derive(Debug, Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        inner: Token,
    }
    let shape = read::<Outer>("", "f", &no_hints).unwrap();
    assert_eq!(
        shape.merge(Vec::new())[0].to_string(),
        "inner: is required in the top level (demo/config.toml shows it with an example value)"
    );
}

#[test]
fn a_syntax_error_is_reported_alone_with_its_line() {
    let found = problems("public_url = \"x\"\n[token\nttl = 600\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("f.toml: TOML parse error at line 2"),
        "{found:?}"
    );
}

#[test]
fn a_wrong_type_with_no_sure_fix_is_taken_out_and_named() {
    let found = problems("public_url = \"x\"\n[[grants]]\nname = \"a\"\npipes = \"top\"\n");
    assert_eq!(
        found,
        ["grants[0].pipes: is the string \"top\", but it must be an array, e.g. [\"a\", \"b\"]"]
    );
}

#[test]
fn a_flattened_table_names_its_keys_from_the_hints() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        #[serde(flatten)]
        inner: Token,
    }
    assert_eq!(keys_of::<Token>(), ["ttl", "rps"]);
    let hints = |table: &str| match table {
        "" => keys_of::<Token>(),
        _ => Vec::new(),
    };
    let found: Vec<String> = match read::<Outer>("tll = \"1m\"\n", "f", &hints) {
        Ok(shape) => shape.merge(Vec::new()),
        Err(p) => p,
    }
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        found,
        ["tll: unknown key; did you mean `ttl`? (the top level takes ttl, rps)"]
    );
}
