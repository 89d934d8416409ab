//! The import rule of docs/architecture.md, checked on the source so it survives the next
//! change: the HTTP layer alone knows the server, imports point down (process → `http` →
//! `config` → domain services → infrastructure → rules → leaves), and domain services do not
//! import each other (what two share moves down).
//!
//! Every `crate::<module>` path in code (comments are skipped: a doc may point anywhere) is
//! checked against the layer of the file it is in. Below all of it are the workspace crates
//! (crates/): that the local endpoint never imports the server is Cargo's to enforce, since
//! `tinybird-local` cannot name the BFF it is a dependency of; the last test here keeps the
//! crates' own dependencies pointing down (the local endpoint on the contract, the contract on
//! no crate of ours).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, top down; a file may use its own layer's modules and any layer below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "process",
        &["main", "lib", "cli", "keys_cli", "run", "demo", "init"],
    ),
    ("http", &["http"]),
    ("config", &["config"]),
    (
        "services",
        &["auth", "proxy", "ratelimit", "health", "usage", "keys"],
    ),
    ("infrastructure", &["metrics", "redis", "audit"]),
    ("rules", &["grants", "tinybird"]),
    ("leaves", &["user", "error", "client_ip", "redact"]),
];

/// Exceptions, each with its reason: `(file prefix, module it may use)`.
const ALLOWED: &[(&str, &str, &str)] = &[
    // Sections validate next to the code that uses them; they report with the config's leaf.
    (
        "src/auth/",
        "config::problem",
        "config's leaf: Problem, EnvLookup, parsers",
    ),
    ("src/proxy/", "config::problem", "config's leaf"),
    ("src/ratelimit/", "config::problem", "config's leaf"),
    ("src/redis", "config::problem", "config's leaf"),
    ("src/audit.rs", "config::problem", "config's leaf"),
    ("src/usage/", "config::problem", "config's leaf"),
    ("src/keys/", "config::problem", "config's leaf"),
];

fn layer_of_module(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The top-level module a source file belongs to (`src/auth/oidc/flow.rs` → `auth`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix("src").unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comments (line comments, and `/* */` outside strings are not used
/// in this codebase for code-like text, so lines are enough).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        // The first `//` outside a string literal (URLs hold one) starts a comment.
        let cut = line
            .match_indices("//")
            .map(|(at, _)| at)
            .find(|at| line[..*at].matches('"').count() % 2 == 0);
        let code = cut.map_or(line, |at| &line[..at]);
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// `crate::a::b` paths in `code`: the module `a` and the path `a::b`.
fn crate_paths(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let word = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let module = word(rest);
        let second = rest
            .strip_prefix(&module)
            .and_then(|r| r.strip_prefix("::"))
            .map(word)
            .unwrap_or_default();
        out.push((module.clone(), format!("{module}::{second}")));
    }
    out
}

#[test]
fn imports_point_down_and_only_the_http_layer_knows_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    files.sort();
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let mut broken = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let name = file.to_string_lossy().into_owned();
        let module = module_of(file);
        seen_modules.insert(module.clone());
        let Some(layer) = layer_of_module(&module) else {
            broken.push(format!(
                "{name}: module {module} is in no layer of this test"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let tests_start = text.find("#[cfg(test)]").unwrap_or(text.len());
        for (line, code) in code_lines(&text[..tests_start]) {
            if code.contains("AppState") && !name.starts_with("src/http/") {
                broken.push(format!("{name}:{line}: names AppState outside src/http/"));
            }
            for (used, path) in crate_paths(code) {
                let allowed = ALLOWED
                    .iter()
                    .any(|(prefix, p, _)| name.starts_with(prefix) && path == *p);
                if used == module || allowed {
                    continue;
                }
                let Some(used_layer) = layer_of_module(&used) else {
                    broken.push(format!("{name}:{line}: crate::{used} is in no layer"));
                    continue;
                };
                if used_layer < layer {
                    broken.push(format!(
                        "{name}:{line}: {} imports upward: crate::{path} ({})",
                        LAYERS[layer].0, LAYERS[used_layer].0
                    ));
                }
                if LAYERS[layer].0 == "services" && used_layer == layer {
                    broken.push(format!(
                        "{name}:{line}: domain services import each other: crate::{path} (move what they share down)"
                    ));
                }
                let leaf = LAYERS.len() - 1;
                if layer == leaf && used_layer == leaf && used != module {
                    // Leaves stand alone, except `error`, which every layer reports through.
                    if used != "error" {
                        broken.push(format!("{name}:{line}: leaf imports leaf crate::{path}"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    for (_, mods) in LAYERS {
        for m in *mods {
            assert!(
                seen_modules.contains(*m),
                "layer lists {m}, which has no file"
            );
        }
    }
}

#[test]
fn the_checker_sees_what_it_must() {
    assert_eq!(
        crate_paths("use crate::http::state::AppState; crate::grants::x"),
        [
            ("http".to_owned(), "http::state".to_owned()),
            ("grants".to_owned(), "grants::x".to_owned())
        ]
    );
    let code: Vec<_> = code_lines("//! crate::http\nlet u = \"http://x\"; // crate::app\nfoo()")
        .map(|(_, c)| c.to_owned())
        .collect();
    assert_eq!(code, ["let u = \"http://x\"; ", "foo()"]);
    assert_eq!(module_of(Path::new("src/auth/oidc/flow.rs")), "auth");
    assert_eq!(layer_of_module("http"), Some(1));
}

/// The workspace crates a manifest depends on (its `path` dependencies), by package name.
fn path_dependencies(manifest: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(manifest))
        .unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let doc: toml::Table = text.parse().unwrap();
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| doc.get(*section).and_then(toml::Value::as_table))
        .flat_map(|deps| deps.iter())
        .filter(|(_, spec)| spec.get("path").is_some())
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn the_workspace_crates_point_down() {
    // The BFF stands on both; neither crate can name the BFF (Cargo refuses the cycle).
    assert_eq!(
        path_dependencies("Cargo.toml"),
        BTreeSet::from(["tinybird-contract".to_owned(), "tinybird-local".to_owned()])
    );
    // The offline Tinybird knows the contract and nothing else of ours.
    assert_eq!(
        path_dependencies("crates/tinybird-local/Cargo.toml"),
        BTreeSet::from(["tinybird-contract".to_owned()])
    );
    // The contract is the bottom: the BFF's and the local endpoint's shared facts.
    assert_eq!(
        path_dependencies("crates/tinybird-contract/Cargo.toml"),
        BTreeSet::new()
    );
}
