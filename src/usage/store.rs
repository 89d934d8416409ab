//! The usage record every instance keeps: Tinybird's rows folded into one-minute cells per
//! tenant, user, pipe and path (direct or through the BFF's proxy), and the report of a window
//! over them. Pure: the poller feeds it [`Batch`]es, the admin route reads [`Store::report`].
//!
//! A cell holds counts, sums and a duration histogram (log buckets, ~19% wide), so cells merge
//! exactly and p50/p95 come out within one bucket of the true value whatever the row count.
//! Cells older than [`KEEP`] (Tinybird's own `pipe_stats_rt` TTL) are dropped, and at most
//! `max_cells` are kept (the oldest minutes go first), so memory is bounded.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::budget::Standing;

/// How long cells are kept: 7 days, like `pipe_stats_rt`.
pub const KEEP: i64 = 7 * 86_400;
/// Tenant shown for rows whose JWT name the BFF never minted.
pub const UNKNOWN: &str = "(unknown)";
/// Tenant shown for users without one.
pub const NO_TENANT: &str = "(none)";

/// Histogram buckets: bucket `i` holds durations up to `0.5ms * 2^(i/4)`; 96 reach ~9 hours.
const BUCKETS: usize = 96;

fn bucket_of(ms: f64) -> usize {
    if ms <= 0.5 {
        return 0;
    }
    ((ms / 0.5).log2() * 4.0)
        .ceil()
        .clamp(0.0, (BUCKETS - 1) as f64) as usize
}

fn bucket_ms(i: usize) -> f64 {
    0.5 * 2f64.powf(i as f64 / 4.0)
}

/// How a request reached Tinybird.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// The browser called Tinybird with its JWT.
    Direct,
    /// The BFF's proxy called for the user.
    Proxy,
}

/// Whose requests a cell counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Key {
    /// Tenant ([`UNKNOWN`] when the name is not known, [`NO_TENANT`] without one).
    pub tenant: String,
    /// User id, or the raw token name when unknown.
    pub user: String,
    /// Pipe name (`query_api` for SQL).
    pub pipe: String,
    /// Direct or proxy.
    pub path: Path,
    /// The workspace whose record the row came from (empty in cells published before
    /// workspaces were told apart).
    #[serde(default)]
    pub workspace: String,
}

/// Counts of one key in one minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Requests.
    pub requests: u64,
    /// Answers 400 and above, 429 excepted.
    pub errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Rows read.
    pub read_rows: u64,
    /// Duration histogram, sparse: `(bucket, count)`.
    pub durations: Vec<(u8, u32)>,
}

impl Cell {
    /// Adds one request.
    pub fn add(&mut self, status: u16, duration_ms: f64, read_bytes: u64, read_rows: u64) {
        self.requests += 1;
        if status == 429 {
            self.rate_limited += 1;
        } else if status >= 400 {
            self.errors += 1;
        }
        self.read_bytes += read_bytes;
        self.read_rows += read_rows;
        let b = bucket_of(duration_ms) as u8;
        match self.durations.iter_mut().find(|(i, _)| *i == b) {
            Some((_, n)) => *n += 1,
            None => self.durations.push((b, 1)),
        }
    }

    /// Adds another cell.
    pub fn merge(&mut self, other: &Cell) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.rate_limited += other.rate_limited;
        self.read_bytes += other.read_bytes;
        self.read_rows += other.read_rows;
        for &(b, c) in &other.durations {
            match self.durations.iter_mut().find(|(i, _)| *i == b) {
                Some((_, n)) => *n += c,
                None => self.durations.push((b, c)),
            }
        }
    }
}

/// New rows of one poll, folded: `(unix minute start, key) → cell`. What the polling
/// instance publishes to the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The cells.
    pub cells: Vec<(i64, Key, Cell)>,
}

impl Batch {
    /// Folds a list of `(unix seconds, key, status, duration ms, read bytes, read rows)`.
    pub fn fold(rows: impl IntoIterator<Item = (i64, Key, u16, f64, u64, u64)>) -> Batch {
        let mut cells: HashMap<(i64, Key), Cell> = HashMap::new();
        for (at, key, status, ms, bytes, read_rows) in rows {
            cells
                .entry((at - at.rem_euclid(60), key))
                .or_default()
                .add(status, ms, bytes, read_rows);
        }
        let mut cells: Vec<_> = cells.into_iter().map(|((m, k), c)| (m, k, c)).collect();
        cells.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Batch { cells }
    }
}

/// The cells of every minute kept.
#[derive(Debug, Default)]
pub struct Store {
    minutes: BTreeMap<i64, HashMap<Key, Cell>>,
    cells: usize,
    max_cells: usize,
}

/// A window the report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// 15 minutes, 1-minute steps.
    M15,
    /// 1 hour, 1-minute steps.
    H1,
    /// 24 hours, 30-minute steps.
    H24,
    /// 7 days, 4-hour steps.
    D7,
}

impl Window {
    /// From `15m`, `1h`, `24h` or `7d`.
    pub fn parse(text: &str) -> Option<Window> {
        Some(match text {
            "15m" => Window::M15,
            "1h" => Window::H1,
            "24h" => Window::H24,
            "7d" => Window::D7,
            _ => return None,
        })
    }

    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::M15 => "15m",
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::D7 => "7d",
        }
    }

    /// Length and chart step, seconds.
    pub fn seconds(self) -> (i64, i64) {
        match self {
            Window::M15 => (900, 60),
            Window::H1 => (3600, 60),
            Window::H24 => (86_400, 1800),
            Window::D7 => (7 * 86_400, 4 * 3600),
        }
    }
}

/// Totals of a tenant, user or pipe over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Requests, both paths.
    pub requests: u64,
    /// Direct requests (the browser's JWT).
    pub direct: u64,
    /// Requests through the BFF's proxy.
    pub proxy: u64,
    /// Answers 400 and above, 429 excepted.
    pub errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Rows read.
    pub read_rows: u64,
    /// Median duration, ms (`null` without requests).
    pub p50_ms: Option<f64>,
    /// 95th percentile duration, ms.
    pub p95_ms: Option<f64>,
}

#[derive(Default)]
struct Acc {
    cell: Cell,
    direct: u64,
    proxy: u64,
}

impl Acc {
    fn add(&mut self, path: Path, cell: &Cell) {
        self.cell.merge(cell);
        match path {
            Path::Direct => self.direct += cell.requests,
            Path::Proxy => self.proxy += cell.requests,
        }
    }

    fn totals(&self) -> Totals {
        let c = &self.cell;
        Totals {
            requests: c.requests,
            direct: self.direct,
            proxy: self.proxy,
            errors: c.errors,
            rate_limited: c.rate_limited,
            read_bytes: c.read_bytes,
            read_rows: c.read_rows,
            p50_ms: percentile(&c.durations, 0.50),
            p95_ms: percentile(&c.durations, 0.95),
        }
    }
}

fn percentile(hist: &[(u8, u32)], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().map(|(_, n)| u64::from(*n)).sum();
    if total == 0 {
        return None;
    }
    let mut sorted = hist.to_vec();
    sorted.sort_unstable();
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, n) in sorted {
        seen += u64::from(n);
        if seen >= rank {
            // The bucket's upper bound, rounded to 0.1 ms.
            return Some((bucket_ms(b as usize) * 10.0).round() / 10.0);
        }
    }
    None
}

/// A tenant's totals, per user, per pipe, and its chart series, while summing.
type TenantAcc<'a> = (
    Acc,
    HashMap<&'a str, Acc>,
    HashMap<&'a str, Acc>,
    Vec<[u64; 3]>,
    std::collections::BTreeSet<&'a str>,
);

/// One user's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserReport {
    /// User id (the raw JWT name under [`UNKNOWN`]).
    pub user: String,
    /// Totals.
    #[serde(flatten)]
    pub totals: Totals,
}

/// One pipe's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipeReport {
    /// Pipe name (`query_api`: SQL).
    pub pipe: String,
    /// Totals.
    #[serde(flatten)]
    pub totals: Totals,
}

/// One tenant's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantReport {
    /// Tenant id.
    pub tenant: String,
    /// The workspaces its requests were read from (one, unless the workspace rule moved
    /// some of its users).
    pub workspaces: Vec<String>,
    /// Totals over both paths.
    #[serde(flatten)]
    pub totals: Totals,
    /// Per pipe, busiest first.
    pub pipes: Vec<PipeReport>,
    /// Per user, busiest first.
    pub users: Vec<UserReport>,
    /// The tenant's budget standing (filled by the service; `null` without a budget).
    pub budget: Option<Standing>,
    /// Chart series, aligned with the report's `steps`: `[direct, proxy, read_bytes]` per step.
    pub series: Vec<[u64; 3]>,
}

impl Store {
    /// An empty store holding at most `max_cells` cells.
    pub fn new(max_cells: usize) -> Self {
        Self {
            max_cells,
            ..Self::default()
        }
    }

    /// Adds a batch; drops what is older than [`KEEP`] before `now` and past the cell cap.
    pub fn apply(&mut self, batch: &Batch, now: i64) {
        for (minute, key, cell) in &batch.cells {
            if *minute < now - KEEP {
                continue;
            }
            let slot = self.minutes.entry(*minute).or_default();
            match slot.get_mut(key) {
                Some(c) => c.merge(cell),
                None => {
                    slot.insert(key.clone(), cell.clone());
                    self.cells += 1;
                }
            }
        }
        while let Some((&oldest, slot)) = self.minutes.first_key_value() {
            if oldest >= now - KEEP && self.cells <= self.max_cells {
                break;
            }
            self.cells -= slot.len();
            self.minutes.pop_first();
        }
    }

    /// Cells kept.
    pub fn len(&self) -> usize {
        self.cells
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.cells == 0
    }

    /// The window ending at `now`: per tenant (busiest first), per user and per pipe; the
    /// chart steps' start times come back beside.
    pub fn report(&self, window: Window, now: i64) -> (Vec<i64>, Vec<TenantReport>) {
        let (length, step) = window.seconds();
        let end = now - now.rem_euclid(step) + step;
        let start = end - length;
        let steps: Vec<i64> = (0..length / step).map(|i| start + i * step).collect();
        let mut tenants: HashMap<&str, TenantAcc<'_>> = HashMap::new();
        for (&minute, slot) in self.minutes.range(start..end) {
            let i = ((minute - start) / step) as usize;
            for (key, cell) in slot {
                let t = tenants.entry(&key.tenant).or_insert_with(|| {
                    (
                        Acc::default(),
                        HashMap::new(),
                        HashMap::new(),
                        vec![[0; 3]; steps.len()],
                        std::collections::BTreeSet::new(),
                    )
                });
                if !key.workspace.is_empty() {
                    t.4.insert(&key.workspace);
                }
                t.0.add(key.path, cell);
                t.1.entry(&key.user).or_default().add(key.path, cell);
                t.2.entry(&key.pipe).or_default().add(key.path, cell);
                let point = &mut t.3[i];
                point[if key.path == Path::Direct { 0 } else { 1 }] += cell.requests;
                point[2] += cell.read_bytes;
            }
        }
        let mut out: Vec<TenantReport> = tenants
            .into_iter()
            .map(|(tenant, (acc, users, pipes, series, workspaces))| {
                let mut users: Vec<UserReport> = users
                    .into_iter()
                    .map(|(u, a)| UserReport {
                        user: u.to_owned(),
                        totals: a.totals(),
                    })
                    .collect();
                users.sort_by(|a, b| {
                    b.totals
                        .requests
                        .cmp(&a.totals.requests)
                        .then(a.user.cmp(&b.user))
                });
                let mut pipes: Vec<PipeReport> = pipes
                    .into_iter()
                    .map(|(p, a)| PipeReport {
                        pipe: p.to_owned(),
                        totals: a.totals(),
                    })
                    .collect();
                pipes.sort_by(|a, b| {
                    b.totals
                        .requests
                        .cmp(&a.totals.requests)
                        .then(a.pipe.cmp(&b.pipe))
                });
                TenantReport {
                    tenant: tenant.to_owned(),
                    workspaces: workspaces.into_iter().map(str::to_owned).collect(),
                    totals: acc.totals(),
                    pipes,
                    users,
                    budget: None,
                    series,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.totals
                .requests
                .cmp(&a.totals.requests)
                .then(a.tenant.cmp(&b.tenant))
        });
        (steps, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, user: &str, path: Path) -> Key {
        Key {
            tenant: tenant.into(),
            user: user.into(),
            pipe: "top_products".into(),
            path,
            workspace: if tenant == "globex" { "us" } else { "eu" }.into(),
        }
    }

    #[test]
    fn a_window_sums_both_paths_per_tenant_user_and_pipe() {
        let now = 1_800_000_000;
        let mut rows = Vec::new();
        for i in 0..100 {
            rows.push((
                now - 30,
                key("acme", "alice", Path::Direct),
                200,
                f64::from(i + 1),
                10,
                1,
            ));
        }
        rows.push((now - 30, key("acme", "alice", Path::Proxy), 429, 5.0, 0, 0));
        rows.push((now - 7200, key("acme", "bob", Path::Direct), 500, 5.0, 0, 0));
        rows.push((now - 10, key("globex", "bob", Path::Direct), 200, 5.0, 7, 7));
        let mut store = Store::new(1000);
        store.apply(&Batch::fold(rows), now);
        let (steps, tenants) = store.report(Window::H1, now);
        assert_eq!(steps.len(), 60);
        let acme = &tenants[0];
        assert_eq!(acme.tenant, "acme");
        let t = &acme.totals;
        assert_eq!(
            (t.requests, t.direct, t.proxy, t.rate_limited, t.errors),
            (101, 100, 1, 1, 0)
        );
        assert_eq!(t.read_bytes, 1000);
        // Within one bucket (19%) of the true 50 and 95 ms.
        let (p50, p95) = (t.p50_ms.unwrap(), t.p95_ms.unwrap());
        assert!((50.0..60.0).contains(&p50), "{p50}");
        assert!((95.0..114.0).contains(&p95), "{p95}");
        assert_eq!(acme.users.len(), 1, "bob's call is outside the hour");
        assert_eq!(acme.series.iter().map(|p| p[0]).sum::<u64>(), 100);
        assert_eq!(acme.workspaces, ["eu"]);
        assert_eq!(
            tenants[1].workspaces,
            ["us"],
            "each tenant with its workspace"
        );
        let (_, day) = store.report(Window::H24, now);
        assert_eq!(day[0].totals.errors, 1);
    }

    #[test]
    fn cells_are_bounded_by_age_and_count() {
        let now = 1_800_000_000;
        let mut store = Store::new(3);
        let rows = (0..5).map(|i| (now - i * 60, key("acme", "a", Path::Direct), 200, 1.0, 0, 0));
        store.apply(&Batch::fold(rows), now);
        assert_eq!(store.len(), 3);
        store.apply(
            &Batch::fold([(now - KEEP - 60, key("a", "a", Path::Direct), 200, 1.0, 0, 0)]),
            now,
        );
        assert_eq!(store.len(), 3, "too old to keep");
    }
}
