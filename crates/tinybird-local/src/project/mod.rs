//! A Tinybird project folder, as `tb deploy` reads it, loaded for the local endpoint:
//! `datasources/*.datasource` become tables, `fixtures/<datasource>.ndjson|csv` their rows,
//! and `endpoints/*.pipe` (or `pipes/*.pipe`) the pipes served. The embedded demo is the
//! same kind of project (`demo/` in the repository) whose rows are generated from a seed.
//!
//! A broken file is reported with its file and line beside everything that did load, so
//! one typo never takes the whole project down.

pub mod datasource;
pub mod demo;
pub mod engines;
pub mod fixtures;
pub mod ingest;
pub mod materialize;

use std::path::{Path, PathBuf};

use datasource::Datasource;
use fixtures::Fixture;

use super::pipes::PipeLoadError;

/// The embedded demo project: `(path inside demo/, contents)`.
pub const DEMO_FILES: &[(&str, &str)] = &[
    (
        "datasources/orders.datasource",
        include_str!("../../../../demo/datasources/orders.datasource"),
    ),
    (
        "datasources/products.datasource",
        include_str!("../../../../demo/datasources/products.datasource"),
    ),
    (
        "datasources/orgs.datasource",
        include_str!("../../../../demo/datasources/orgs.datasource"),
    ),
    (
        "endpoints/top_products.pipe",
        include_str!("../../../../demo/endpoints/top_products.pipe"),
    ),
    (
        "endpoints/sales_by_day.pipe",
        include_str!("../../../../demo/endpoints/sales_by_day.pipe"),
    ),
    (
        "endpoints/recent_orders.pipe",
        include_str!("../../../../demo/endpoints/recent_orders.pipe"),
    ),
    (
        "endpoints/orgs_overview.pipe",
        include_str!("../../../../demo/endpoints/orgs_overview.pipe"),
    ),
];

/// A loaded project folder.
#[derive(Debug, Default)]
pub struct Project {
    /// Data sources that parsed.
    pub datasources: Vec<Datasource>,
    /// Pipe files: (path, contents), parsed by `PipeSet`.
    pub pipes: Vec<(PathBuf, String)>,
    /// Fixture files by data source name.
    pub fixtures: Vec<(String, PathBuf, Fixture)>,
    /// Files that could not be used.
    pub problems: Vec<PipeLoadError>,
}

impl Project {
    /// The embedded demo (no fixtures: its rows are generated).
    pub fn embedded_demo() -> Self {
        let mut project = Project::default();
        for (path, contents) in DEMO_FILES {
            project.add(Path::new(path), contents.to_string());
        }
        project
    }

    /// Reads a project folder: `*.datasource` and `*.pipe` files in it and in its
    /// `datasources/`, `endpoints/`, `pipes/` and `materializations/` folders, fixtures in
    /// `fixtures/`. Fails only when the folder itself cannot be read.
    pub fn load_dir(dir: &Path) -> std::io::Result<Self> {
        let mut project = Project::default();
        let mut files = list(dir)?;
        for sub in [
            "datasources",
            "endpoints",
            "pipes",
            "materializations",
            "copies",
            "sinks",
            "fixtures",
        ] {
            let path = dir.join(sub);
            if path.is_dir() {
                files.extend(list(&path)?);
            }
        }
        files.sort();
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(contents) => project.add(&path, contents),
                Err(err) => project.problems.push(PipeLoadError {
                    file: path.clone(),
                    line: 0,
                    message: format!("cannot read the file ({err}); project files must be UTF-8"),
                }),
            }
        }
        Ok(project)
    }

    /// Only the pipes of a folder (`--pipes DIR`), over the demo's data sources.
    pub fn pipes_dir(dir: &Path) -> std::io::Result<Self> {
        let mut project = Project::embedded_demo();
        project.pipes.clear();
        for path in list(dir)? {
            if path.extension().is_some_and(|e| e == "pipe") {
                match std::fs::read_to_string(&path) {
                    Ok(contents) => project.pipes.push((path, contents)),
                    Err(err) => project.problems.push(PipeLoadError {
                        file: path,
                        line: 0,
                        message: format!("cannot read the file ({err}); pipe files must be UTF-8"),
                    }),
                }
            }
        }
        project.pipes.sort();
        Ok(project)
    }

    fn add(&mut self, path: &Path, contents: String) {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        match path.extension().and_then(|e| e.to_str()) {
            Some("datasource") => match datasource::parse(path, &contents) {
                Ok(ds) => self.datasources.push(ds),
                Err(err) => self.problems.push(err),
            },
            Some("pipe") => self.pipes.push((path.to_owned(), contents)),
            Some("ndjson") | Some("json") if is_fixture(path) => {
                self.fixtures
                    .push((stem, path.to_owned(), Fixture::Ndjson(contents)));
            }
            Some("csv") if is_fixture(path) => {
                self.fixtures
                    .push((stem, path.to_owned(), Fixture::Csv(contents)));
            }
            _ => {}
        }
    }

    /// Whether this is the demo's shape with no rows of its own: its rows are generated.
    pub fn wants_demo_rows(&self) -> bool {
        let demo = Project::embedded_demo();
        self.fixtures.is_empty()
            && demo
                .datasources
                .iter()
                .all(|d| self.datasources.contains(d))
    }
}

fn is_fixture(path: &Path) -> bool {
    path.parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "fixtures")
}

fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}
