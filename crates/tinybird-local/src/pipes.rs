//! Tinybird `.pipe` datafiles loaded into the pipes the local endpoint serves.
//!
//! Only what an endpoint needs is read: the pipe `DESCRIPTION >`, each `NODE`'s name and
//! `SQL >` block, and `TYPE endpoint`. Other keywords (`TOKEN`, `TAGS`, node descriptions,
//! ...) are skipped so files written for Tinybird load unchanged; `TYPE materialized`, `copy`
//! and `sink` are refused (they write, which the local endpoint never does). The endpoint
//! node is the one marked `TYPE endpoint`, else the last. As in Tinybird, a node may read the
//! nodes above it by name: at a call, the endpoint and the nodes it reads (transitively) are
//! rendered, each with the call's parameters, and become CTEs of one ClickHouse query
//! (see [`Pipe::prepare`]). A broken file is reported with `file:line` beside the pipes that
//! did load, so one typo does not take the whole demo down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::types::Value as SqlValue;
use sha2::{Digest, Sha256};

use super::clickhouse::{OutColumn, TranslateError, TranslateLimits, Translator};
use super::template::{ParamError, PipeTemplate};
use tinybird_contract::names::is_valid_pipe_name;
use tinybird_contract::params::Params;

/// One servable pipe.
#[derive(Debug)]
pub struct Pipe {
    /// The file stem; what `/v0/pipes/<name>.json` and JWT scopes use.
    pub name: String,
    /// `t_` + 32 hex chars derived from the name, so ids are stable across restarts.
    pub id: String,
    /// The pipe's `DESCRIPTION >` text, dedented (empty when absent).
    pub description: String,
    /// Every node up to the endpoint, in file order; the last one is served.
    pub nodes: Vec<PipeNode>,
    /// Where the pipe came from (a path, or the embedded file's name).
    pub file: PathBuf,
}

/// One node of a pipe: its name (what later nodes read it by) and its compiled SQL.
#[derive(Debug)]
pub struct PipeNode {
    /// The `NODE` name.
    pub name: String,
    /// The node's SQL template.
    pub template: PipeTemplate,
}

/// A pipe call ready for SQLite: translated SQL, binds in placeholder order, result types.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// SQLite SQL with `?N` placeholders.
    pub sql: String,
    /// The values of the placeholders, in order.
    pub binds: Vec<SqlValue>,
    /// Result columns as ClickHouse types them, when known.
    pub columns: Option<Vec<OutColumn>>,
}

/// Why a pipe call cannot run (the caller's 400, or the status a template's `error()` chose).
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// A parameter is missing or invalid, or the template raised an error.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The rendered SQL is outside the ClickHouse the local endpoint runs.
    #[error("{0}")]
    Translate(#[from] TranslateError),
}

impl PipeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            PipeError::Param(ParamError::Raised { status, .. }) => *status,
            PipeError::Translate(TranslateError::Timeout) => 408,
            _ => 400,
        }
    }
}

impl Pipe {
    /// The endpoint node's template (the node Tinybird serves).
    pub fn endpoint(&self) -> &PipeTemplate {
        &self
            .nodes
            .last()
            .expect("a pipe has an endpoint node")
            .template
    }

    /// Every parameter any node reads (Tinybird: parameters declared in any node are the
    /// pipe's), sorted.
    pub fn param_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| n.template.param_names())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Renders the endpoint node and the nodes it reads, and translates them into one query
    /// within the default limits (tests and benchmarks; the endpoint renders, then
    /// translates off the async workers).
    pub fn prepare(&self, params: &Params, translator: &Translator) -> Result<Prepared, PipeError> {
        self.render(params)?
            .translate(translator, &TranslateLimits::default())
    }

    /// Renders the endpoint node and the nodes it reads, with the call's parameters.
    pub fn render(&self, params: &Params) -> Result<RenderedPipe, PipeError> {
        let last = self.nodes.len() - 1;
        let mut rendered: Vec<Option<super::template::RenderedSql>> = vec![None; self.nodes.len()];
        rendered[last] = Some(self.nodes[last].template.render(params)?);
        // A node may read only nodes above it: walk upwards, rendering what is read.
        for i in (0..last).rev() {
            let name = &self.nodes[i].name;
            let read = rendered[i + 1..]
                .iter()
                .flatten()
                .any(|r| mentions(&r.sql, name));
            if read {
                rendered[i] = Some(self.nodes[i].template.render(params)?);
            }
        }
        let mut nodes = Vec::new();
        let mut binds = Vec::new();
        for (node, r) in self.nodes.iter().zip(rendered) {
            if let Some(r) = r {
                binds.extend(r.binds);
                nodes.push((node.name.clone(), r.sql));
            }
        }
        let (_, endpoint) = nodes.pop().expect("the endpoint was rendered");
        Ok(RenderedPipe {
            nodes,
            endpoint,
            binds,
        })
    }
}

/// A pipe call rendered: the nodes it reads and the endpoint's SQL, still ClickHouse.
#[derive(Debug, Clone)]
pub struct RenderedPipe {
    /// (name, SQL) of each node the endpoint reads, in file order.
    pub nodes: Vec<(String, String)>,
    /// The endpoint node's SQL.
    pub endpoint: String,
    /// The values of the `?` placeholders, in order.
    pub binds: Vec<SqlValue>,
}

impl RenderedPipe {
    fn node_refs(&self) -> Vec<(&str, &str)> {
        self.nodes
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect()
    }

    /// The translation, if this text was translated before (cheap: no thread needed).
    pub fn cached(&self, translator: &Translator) -> Option<Result<Prepared, PipeError>> {
        let hit = translator.cached_pipe(&self.node_refs(), &self.endpoint)?;
        Some(self.prepared(hit))
    }

    /// Translates into one SQLite query within `limits` (recursive: run it off the async
    /// workers, see `local::offload`).
    pub fn translate(
        &self,
        translator: &Translator,
        limits: &TranslateLimits,
    ) -> Result<Prepared, PipeError> {
        let translated = translator.pipe_within(&self.node_refs(), &self.endpoint, limits);
        self.prepared(translated)
    }

    fn prepared(
        &self,
        translated: Result<std::sync::Arc<super::clickhouse::Translated>, TranslateError>,
    ) -> Result<Prepared, PipeError> {
        let translated = translated?;
        Ok(Prepared {
            sql: translated.sql.clone(),
            binds: self.binds.clone(),
            columns: translated.columns.clone(),
        })
    }
}

/// Whether `sql` names `node` as a whole word (outside nothing: a node name inside a string
/// literal only costs rendering that node).
fn mentions(sql: &str, node: &str) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| word == node)
}

/// A `.pipe` file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct PipeLoadError {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line in that file (0 when the file as a whole is at fault, e.g. unreadable).
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The pipes the local endpoint serves, looked up by name or id.
#[derive(Debug, Default)]
pub struct PipeSet {
    /// Sorted by name, so listings are stable.
    pipes: Vec<Pipe>,
    /// Name and id of every pipe, to its index in `pipes`.
    index: HashMap<String, usize>,
}

impl PipeSet {
    /// Loads every `*.pipe` file of a directory. Broken files are returned as errors *beside*
    /// the pipes that loaded (the caller logs them and serves the rest).
    pub fn load_dir(dir: &Path) -> std::io::Result<(PipeSet, Vec<PipeLoadError>)> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "pipe") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let results = files.into_iter().map(|path| {
            let contents = std::fs::read_to_string(&path).map_err(|err| PipeLoadError {
                file: path.clone(),
                line: 0,
                message: format!("cannot read the file ({err}); pipe files must be UTF-8"),
            })?;
            parse_pipe(&path, &contents)
        });
        Ok(Self::build(results))
    }

    /// Same from in-memory (file name, contents) pairs: used for the pipes embedded in the binary.
    pub fn from_sources(sources: &[(&str, &str)]) -> (PipeSet, Vec<PipeLoadError>) {
        Self::build(
            sources
                .iter()
                .map(|(file, contents)| parse_pipe(Path::new(file), contents)),
        )
    }

    /// Looks up by pipe name or by pipe id.
    pub fn get(&self, name_or_id: &str) -> Option<&Pipe> {
        self.index.get(name_or_id).map(|&i| &self.pipes[i])
    }

    /// Every pipe, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Pipe> {
        self.pipes.iter()
    }

    /// Indexes the pipes that parsed; a second pipe with the same name is an error, the first
    /// one stays.
    fn build(
        results: impl Iterator<Item = Result<Pipe, PipeLoadError>>,
    ) -> (PipeSet, Vec<PipeLoadError>) {
        let (mut pipes, mut errors) = (Vec::new(), Vec::new());
        for result in results {
            match result {
                Ok(pipe) => pipes.push(pipe),
                Err(err) => errors.push(err),
            }
        }
        pipes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut set = PipeSet::default();
        for pipe in pipes {
            if let Some(&first) = set.index.get(&pipe.name) {
                errors.push(PipeLoadError {
                    message: format!(
                        "a pipe named {} is already loaded from {}: rename one of the files",
                        pipe.name,
                        set.pipes[first].file.display()
                    ),
                    file: pipe.file,
                    line: 0,
                });
                continue;
            }
            set.index.insert(pipe.name.clone(), set.pipes.len());
            set.index.insert(pipe.id.clone(), set.pipes.len());
            set.pipes.push(pipe);
        }
        (set, errors)
    }
}

/// The deterministic id of a pipe: `t_` + the first 32 hex chars of sha256(name).
fn pipe_id(name: &str) -> String {
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("t_{}", &digest[..32])
}

/// A node's SQL and where it starts.
#[derive(Default)]
struct Node {
    name: String,
    sql: String,
    /// File line of the `SQL >` header; template line `n` is file line `header + n`.
    header_line: usize,
    is_endpoint: bool,
}

fn parse_pipe(file: &Path, contents: &str) -> Result<Pipe, PipeLoadError> {
    let error = |line: usize, message: String| PipeLoadError {
        file: file.to_owned(),
        line,
        message,
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    if !is_valid_pipe_name(&name) {
        return Err(error(
            0,
            format!(
                "'{name}' is not a valid pipe name: rename the file to letters, digits and _ \
                 (not starting with a digit, at most 128 characters)"
            ),
        ));
    }
    let lines: Vec<&str> = contents.lines().collect();
    let mut description = String::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let number = i + 1;
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Err(error(
                number,
                "indented line outside a block: put it under a `SQL >` or `DESCRIPTION >` \
                 header, or remove the indentation"
                    .into(),
            ));
        }
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        if !keyword.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            return Err(error(
                number,
                format!(
                    "expected a keyword such as NODE, SQL >, DESCRIPTION > or TYPE endpoint, \
                     found `{line}`"
                ),
            ));
        }
        let block = if rest == ">" {
            let (text, next) = read_block(&lines, i);
            i = next;
            Some(text)
        } else {
            None
        };
        match keyword {
            "NODE" => {
                if !is_valid_pipe_name(rest) || nodes.iter().any(|n| n.name == rest) {
                    return Err(error(
                        number,
                        format!("`NODE {rest}`: node names are unique letters, digits and _"),
                    ));
                }
                nodes.push(Node {
                    name: rest.to_owned(),
                    ..Node::default()
                });
            }
            // After the first node, a DESCRIPTION describes that node, not the pipe.
            "DESCRIPTION" if nodes.is_empty() => {
                description = block.unwrap_or_else(|| rest.trim_matches('"').to_owned());
            }
            "SQL" => {
                let Some(sql) = block else {
                    return Err(error(
                        number,
                        "write `SQL >` and the SQL indented below".into(),
                    ));
                };
                if nodes.is_empty() {
                    nodes.push(Node::default());
                }
                let node = nodes.last_mut().expect("a node was just ensured");
                node.sql = sql;
                node.header_line = number;
            }
            "TYPE" if rest.eq_ignore_ascii_case("endpoint") => {
                if let Some(node) = nodes.last_mut() {
                    node.is_endpoint = true;
                }
            }
            "TYPE" if !rest.is_empty() => {
                let kind = rest.trim_matches('"').to_ascii_lowercase();
                return Err(error(
                    number,
                    format!(
                        "TYPE {kind}: materialized views, copy and sink pipes write data, which \
                         the local endpoint never does; serve endpoints only, or use Tinybird Local"
                    ),
                ));
            }
            // TOKEN, TAGS, TYPE materialized, node DESCRIPTION, ...: not needed to serve.
            _ => {}
        }
    }
    let endpoint = nodes
        .iter()
        .position(|n| n.is_endpoint)
        .or(nodes.len().checked_sub(1))
        .filter(|&i| nodes[i].header_line > 0)
        .ok_or_else(|| {
            error(
                0,
                "no SQL found: a pipe needs `NODE <name>`, then `SQL >` with indented SQL, \
                 then `TYPE endpoint`"
                    .into(),
            )
        })?;
    let mut compiled = Vec::new();
    for (i, node) in nodes.into_iter().take(endpoint + 1).enumerate() {
        if node.header_line == 0 {
            return Err(error(0, format!("node {} has no `SQL >` block", node.name)));
        }
        let template = PipeTemplate::compile(&node.sql)
            .map_err(|err| error(node.header_line + err.line, err.message))?;
        let name = if node.name.is_empty() {
            format!("node_{i}")
        } else {
            node.name
        };
        compiled.push(PipeNode { name, template });
    }
    Ok(Pipe {
        id: pipe_id(&name),
        name,
        description,
        nodes: compiled,
        file: file.to_owned(),
    })
}

/// Reads the indented lines from `start` (blank lines included, trailing ones dropped),
/// dedented by their common indentation. Returns the text and the index after the block.
fn read_block(lines: &[&str], start: usize) -> (String, usize) {
    let mut end = start;
    while end < lines.len() && (lines[end].trim().is_empty() || lines[end].starts_with([' ', '\t']))
    {
        end += 1;
    }
    while end > start && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let body = &lines[start..end];
    // Indentation is counted in whitespace characters, not bytes: a multi-byte space (a
    // pasted U+00A0) must never make a line's cut fall mid-character and drop the line.
    let leading = |l: &str| l.chars().take_while(|c| c.is_whitespace()).count();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| leading(l))
        .min()
        .unwrap_or(0);
    let text = body
        .iter()
        .map(|l| {
            let cut = l.char_indices().nth(indent).map_or(l.len(), |(i, _)| i);
            l[cut..].trim_end()
        })
        .collect::<Vec<_>>()
        .join("\n");
    (text, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinybird_contract::params::Params;

    const TOP: &str = "DESCRIPTION >
    Top products by revenue for one organisation

TOKEN read_top READ

NODE endpoint
SQL >
    %
    SELECT product_id, sum(amount) AS revenue
    FROM orders
    WHERE org_id = {{ String(org_id) }}
    GROUP BY product_id
    ORDER BY revenue DESC
    LIMIT {{ Int32(limit, 10) }}

TYPE endpoint
";

    #[test]
    fn parses_a_single_node_pipe() {
        let (set, errors) = PipeSet::from_sources(&[("top.pipe", TOP)]);
        assert!(errors.is_empty(), "{errors:?}");
        let pipe = set.get("top").expect("pipe loaded");
        assert_eq!(
            pipe.description,
            "Top products by revenue for one organisation"
        );
        assert_eq!(pipe.param_names(), ["limit", "org_id"]);
        let rendered = pipe.nodes[0]
            .template
            .render(&Params::parse("org_id=acme").unwrap())
            .unwrap();
        assert!(
            rendered.sql.starts_with("SELECT product_id"),
            "{}",
            rendered.sql
        );
        assert!(rendered.sql.contains("WHERE org_id = ?\nGROUP BY"));
        assert_eq!(rendered.binds.len(), 2);
    }

    #[test]
    fn looks_up_by_deterministic_id() {
        let (set, _) = PipeSet::from_sources(&[("top.pipe", TOP)]);
        let pipe = set.get("top").unwrap();
        assert!(
            pipe.id.starts_with("t_") && pipe.id.len() == 34,
            "{}",
            pipe.id
        );
        assert_eq!(pipe.id, pipe_id("top"));
        assert_eq!(set.get(&pipe.id).unwrap().name, "top");
        assert!(set.get("t_00000000000000000000000000000000").is_none());
    }

    #[test]
    fn picks_the_endpoint_node_else_the_last() {
        let multi = "NODE a\nSQL >\n    SELECT 1\nTYPE endpoint\n\nNODE b\nSQL >\n    SELECT 2\n";
        let last = "NODE a\nSQL >\n    SELECT 1\n\nNODE b\nSQL >\n    SELECT 2\n";
        let (set, errors) = PipeSet::from_sources(&[("multi.pipe", multi), ("last.pipe", last)]);
        assert!(errors.is_empty(), "{errors:?}");
        let sql = |name: &str| {
            let pipe = set.get(name).unwrap();
            pipe.nodes
                .last()
                .unwrap()
                .template
                .render(&Params::default())
                .unwrap()
                .sql
        };
        assert_eq!(sql("multi"), "SELECT 1");
        assert_eq!(sql("last"), "SELECT 2");
        assert_eq!(
            set.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["last", "multi"]
        );
    }

    #[test]
    fn nodes_read_the_nodes_above_them_and_params_of_any_node_are_the_pipes() {
        let source = "NODE mine\nSQL >\n    %\n    SELECT org_id, amount FROM orders WHERE org_id = {{ String(org_id) }}\n\n\
                      NODE unused\nSQL >\n    %\n    SELECT {{ Int32(never_sent) }} AS x\n\n\
                      NODE endpoint\nSQL >\n    %\n    SELECT org_id, count() AS n FROM mine GROUP BY org_id LIMIT {{ Int32(limit, 5) }}\n\nTYPE endpoint\n";
        let (set, errors) = PipeSet::from_sources(&[("multi.pipe", source)]);
        assert!(errors.is_empty(), "{errors:?}");
        let pipe = set.get("multi").unwrap();
        assert_eq!(pipe.param_names(), ["limit", "never_sent", "org_id"]);
        let translator = Translator::new(std::sync::Arc::new(Default::default()));
        let prepared = pipe
            .prepare(&Params::parse("org_id=acme").unwrap(), &translator)
            .expect("the unused node's required parameter is not asked for");
        assert!(
            prepared.sql.starts_with("WITH `mine` AS (SELECT"),
            "{}",
            prepared.sql
        );
        assert!(!prepared.sql.contains("unused"), "{}", prepared.sql);
        assert_eq!(
            prepared.binds,
            [SqlValue::Text("acme".into()), SqlValue::Integer(5)]
        );
        let err = pipe.prepare(&Params::default(), &translator).unwrap_err();
        assert_eq!(err.to_string(), "missing required parameter org_id");
    }

    #[test]
    fn writing_pipes_are_refused_with_their_line() {
        let source = "NODE mv\nSQL >\n    SELECT 1 AS x\nTYPE materialized\nDATASOURCE target\n";
        let (_, errors) = PipeSet::from_sources(&[("mv.pipe", source)]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4);
        assert!(errors[0].message.contains("materialized"), "{}", errors[0]);
    }

    #[test]
    fn a_template_error_keeps_the_status_its_author_chose() {
        let source = "NODE endpoint\nSQL >\n    %\n    {% if not defined(org_id) %}{{ error('org_id is required', 403) }}{% end %}\n    SELECT 1\n";
        let (set, errors) = PipeSet::from_sources(&[("guarded.pipe", source)]);
        assert!(errors.is_empty(), "{errors:?}");
        let translator = Translator::new(std::sync::Arc::new(Default::default()));
        let err = set
            .get("guarded")
            .unwrap()
            .prepare(&Params::default(), &translator)
            .unwrap_err();
        assert_eq!(
            (err.status(), err.to_string().as_str()),
            (403, "org_id is required")
        );
    }

    #[test]
    fn broken_file_is_reported_with_file_and_line_while_others_load() {
        let broken = TOP.replace("String(org_id)", "Strin(org_id)");
        let (set, errors) = PipeSet::from_sources(&[
            ("top.pipe", TOP),
            ("broken.pipe", &broken),
            ("bad-name.pipe", TOP),
            ("empty.pipe", "DESCRIPTION >\n    nothing\n"),
        ]);
        assert!(set.get("top").is_some());
        assert_eq!(set.iter().count(), 1);
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(
            messages[0].starts_with("broken.pipe:11: unknown function Strin"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("not a valid pipe name"),
            "{messages:?}"
        );
        assert!(messages[2].contains("no SQL found"), "{messages:?}");
    }

    #[test]
    fn template_syntax_error_lines_are_file_lines() {
        let source = "NODE n\nSQL >\n    %\n    SELECT 1\n    {% if defined(a) %}\n\n";
        let (_, errors) = PipeSet::from_sources(&[("open.pipe", source)]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, PathBuf::from("open.pipe"));
        assert!(errors[0].line >= 5, "{}", errors[0]);
    }

    #[test]
    fn loads_a_directory() {
        let dir = std::env::temp_dir().join(format!("tbff-pipes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("top.pipe"), TOP).unwrap();
        std::fs::write(dir.join("bad.pipe"), "NODE x\nSQL >\n    {{ Int32(q) }}\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a pipe").unwrap();
        let (set, errors) = PipeSet::load_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            set.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["top"]
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, dir.join("bad.pipe"));
        assert_eq!(errors[0].line, 3);
        assert!(PipeSet::load_dir(&dir).is_err());
    }
}
