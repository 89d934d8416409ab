//! The I/O of the usage service: one poll of `pipe_stats_rt` through the SQL API, and the
//! Redis side (the polling lease, the shared cursor, the stream of polled cells, budget
//! counters, names minted and request ids proxied by every instance).
//!
//! The usage token goes in an `Authorization` header, never the URL; Tinybird's error text is
//! not relayed (its 403 bodies can echo the token), only the status and what to do.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ::redis::AsyncCommands;
use chrono::Utc;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::rows::{self, Cursor, StatRow};
use super::store::{Batch, Key, NO_TENANT, Path, UNKNOWN};
use super::{Feed, Owner, SourceStatus, Usage, budget, lock};
use crate::redis::Redis;

/// A counter pair as read: requests and read bytes.
type Pair = (Option<u64>, Option<u64>);
/// A counter pair before and after a poll's spending: `((requests, bytes), (requests, bytes))`.
type Moved = ((u64, u64), (u64, u64));

/// Polled cells kept on the stream (by age), like Tinybird's TTL.
const STREAM_KEEP_MS: i64 = 7 * 86_400 * 1000;
/// How long shared names and proxied ids live in Redis.
const SHARED_TTL: u64 = 8 * 86_400;

/// Where and how `pipe_stats_rt` is read.
pub struct Source {
    client: reqwest::Client,
    url: Url,
    token: SecretString,
}

impl Source {
    /// `{tinybird_url}/v0/sql`, read with `token`.
    pub fn new(tinybird_url: &str, token: &SecretString) -> anyhow::Result<Self> {
        let url = Url::parse(&format!("{}/v0/sql", tinybird_url.trim_end_matches('/')))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            url,
            token: token.clone(),
        })
    }

    /// Runs one query; the error says what an operator should do, never what Tinybird said.
    pub async fn fetch(&self, sql: &str) -> Result<Vec<StatRow>, String> {
        let response = self
            .client
            .post(self.url.clone())
            .bearer_auth(self.token.expose_secret())
            .form(&[("q", sql)])
            .send()
            .await
            .map_err(|e| format!("Tinybird unreachable: {}", e.without_url()))?;
        let status = response.status();
        if status == reqwest::StatusCode::FORBIDDEN || status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(format!(
                "the usage token was refused ({}): it needs DATASOURCES:READ:tinybird.pipe_stats_rt",
                status.as_u16()
            ));
        }
        if !status.is_success() {
            return Err(format!(
                "Tinybird answered {} to the usage query",
                status.as_u16()
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the usage answer: {}", e.without_url()))?;
        rows::parse(&body)
    }
}

/// The pipes of `pipes` that `token` can read on `tinybird_url` (a usage token should read
/// none: only `tinybird.pipe_stats_rt`). For `check`; only the status is looked at.
pub async fn overreach(
    tinybird_url: &str,
    token: &SecretString,
    pipes: &[String],
) -> Result<Vec<String>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut readable = Vec::new();
    for pipe in pipes {
        let url = format!(
            "{}/v0/pipes/{pipe}.json?q=SELECT%201",
            tinybird_url.trim_end_matches('/')
        );
        let status = client
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| format!("Tinybird unreachable: {}", e.without_url()))?
            .status();
        // 403: not in the token's scopes. Anything else means the token got past the scope check.
        if status != reqwest::StatusCode::FORBIDDEN && status != reqwest::StatusCode::UNAUTHORIZED {
            readable.push(pipe.clone());
        }
    }
    Ok(readable)
}

/// Attributes rows of `workspace`'s record to owners: the request ids the proxy made first,
/// then the JWT names.
pub fn attribute(
    rows: &[StatRow],
    names: &HashMap<String, Owner>,
    proxied: &HashMap<String, Owner>,
    workspace: &str,
) -> Batch {
    Batch::fold(rows.iter().map(|r| {
        let (owner, path) = match proxied.get(&r.request_id) {
            Some(o) => (Some(o), Path::Proxy),
            None => (names.get(&r.token_name), Path::Direct),
        };
        let key = match owner {
            Some(o) => Key {
                tenant: o.tenant.clone().unwrap_or_else(|| NO_TENANT.to_owned()),
                user: o.user.clone(),
                pipe: r.pipe_name.clone(),
                path,
                workspace: workspace.to_owned(),
            },
            None => Key {
                tenant: UNKNOWN.to_owned(),
                user: r.token_name.clone(),
                pipe: r.pipe_name.clone(),
                path,
                workspace: workspace.to_owned(),
            },
        };
        (
            r.start_datetime.and_utc().timestamp(),
            key,
            r.status_code.min(999) as u16,
            r.duration * 1000.0,
            r.read_bytes,
            r.read_rows,
        )
    }))
}

/// Budget spending of one poll: `(tenant, day, month) → (requests, read bytes)`.
fn spending(batch: &Batch) -> HashMap<(String, String, String), (u64, u64)> {
    let mut out: HashMap<_, (u64, u64)> = HashMap::new();
    for (minute, key, cell) in &batch.cells {
        if key.tenant == UNKNOWN {
            continue;
        }
        let at = chrono::DateTime::from_timestamp(*minute, 0).unwrap_or_default();
        let e = out
            .entry((
                key.tenant.clone(),
                budget::day_key(at),
                budget::month_key(at),
            ))
            .or_default();
        e.0 += cell.requests;
        e.1 += cell.read_bytes;
    }
    out
}

/// Records that `name` belongs to `owner` for every instance.
pub async fn share_name(redis: &Redis, name: &str, owner: &Owner) {
    let Ok(json) = serde_json::to_string(owner) else {
        return;
    };
    let mut conn = redis.conn();
    let r: ::redis::RedisResult<()> = conn
        .set_ex(
            redis.key(&format!("usage:{{names}}:{name}")),
            json,
            SHARED_TTL,
        )
        .await;
    redis.observe("usage_name", r).ok();
}

fn proxied_key(redis: &Redis, hour: i64) -> String {
    redis.key(&format!("usage:px:{hour}"))
}

/// Records that the proxy made request `id` for `owner`.
pub async fn share_proxied(redis: &Redis, id: &str, owner: &Owner) {
    let Ok(json) = serde_json::to_string(owner) else {
        return;
    };
    let key = proxied_key(redis, Utc::now().timestamp() / 3600);
    let mut conn = redis.conn();
    let r: ::redis::RedisResult<()> = ::redis::pipe()
        .hset(&key, id, json)
        .ignore()
        .expire(&key, SHARED_TTL as i64)
        .ignore()
        .query_async(&mut conn)
        .await;
    redis.observe("usage_proxied", r).ok();
}

/// A tenant's counters for one period; a day's and a month's are read and counted together
/// in one pipeline, so they share the tenant's hash tag (Cluster slot).
fn spent_key(redis: &Redis, tenant: &str, period: &str) -> String {
    let tag = crate::redis::tag(tenant);
    redis.key(&format!("usage:spent:{tag}:{tenant}:{period}"))
}

/// A tenant's counters for `day` and `month`.
pub async fn read_spent(
    redis: &Redis,
    tenant: &str,
    day: &str,
    month: &str,
) -> Result<budget::Spent, ()> {
    let mut conn = redis.conn();
    let r: ::redis::RedisResult<(Pair, Pair)> = ::redis::pipe()
        .cmd("HMGET")
        .arg(spent_key(redis, tenant, day))
        .arg("r")
        .arg("b")
        .cmd("HMGET")
        .arg(spent_key(redis, tenant, month))
        .arg("r")
        .arg("b")
        .query_async(&mut conn)
        .await;
    let ((dr, db), (mr, mb)) = redis.observe("usage_spent", r).map_err(|_| ())?;
    Ok(budget::Spent {
        day_requests: dr.unwrap_or(0),
        day_read_bytes: db.unwrap_or(0),
        month_requests: mr.unwrap_or(0),
        month_read_bytes: mb.unwrap_or(0),
    })
}

impl Usage {
    /// One period: poll each workspace's record this instance holds the lease of (all of
    /// them without Redis), then apply what was polled.
    pub(super) async fn tick(&self) {
        match self.redis.clone() {
            None => {
                for feed in &self.feeds {
                    let mut cursor = lock(&feed.cursor).clone();
                    if let Some(batch) = self.poll(feed, &mut cursor).await {
                        *lock(&feed.cursor) = cursor;
                        lock(&self.store).apply(&batch, Utc::now().timestamp());
                    }
                }
            }
            Some(redis) => {
                for feed in &self.feeds {
                    if self.lead(&redis, feed).await {
                        self.poll_shared(&redis, feed).await;
                    } else {
                        self.follow_status(&redis, feed).await;
                    }
                }
                self.follow(&redis).await;
            }
        }
    }

    /// Polls `feed` once: new rows, attributed and folded, with the budgets counted.
    async fn poll(&self, feed: &Feed, cursor: &mut Cursor) -> Option<Batch> {
        let s = &self.settings;
        let (lookback, backfill) = (s.lookback.as_secs() as i64, s.backfill.as_secs() as i64);
        let now = Utc::now();
        let sql = rows::query(cursor.since(now, backfill, lookback), s.max_rows);
        lock(&feed.status).last_attempt = Some(now.timestamp());
        let fetched = feed.source.fetch(&sql).await;
        let rows = match fetched {
            Ok(rows) => rows,
            Err(error) => {
                self.failed(feed, error);
                return None;
            }
        };
        let fresh = cursor.admit(rows, lookback, s.max_rows);
        let (names, proxied) = self.owners(&fresh).await;
        let batch = attribute(&fresh, &names, &proxied, &feed.workspace);
        self.count(&batch).await;
        {
            let mut status = lock(&feed.status);
            status.ok = true;
            status.error = None;
            status.last_success = Some(Utc::now().timestamp());
        }
        self.metrics.usage_poll("ok");
        for (_, key, cell) in &batch.cells {
            let path = if key.path == Path::Direct {
                "direct"
            } else {
                "proxy"
            };
            self.metrics
                .usage_rows(&key.tenant, path, cell.requests, cell.read_bytes);
        }
        Some(batch)
    }

    fn failed(&self, feed: &Feed, error: String) {
        tracing::warn!(workspace = %feed.workspace, error = %error, "usage: cannot read tinybird.pipe_stats_rt");
        self.metrics.usage_poll("error");
        let mut status = lock(&feed.status);
        status.ok = false;
        status.error = Some(error);
    }

    /// Owners of the rows' names and request ids: this process's caches, then Redis.
    async fn owners(&self, fresh: &[StatRow]) -> (HashMap<String, Owner>, HashMap<String, Owner>) {
        let mut names = HashMap::new();
        let mut proxied = HashMap::new();
        let mut unknown = HashSet::new();
        let mut hours = HashSet::new();
        for r in fresh {
            if let Some(o) = self.proxied.get(&r.request_id) {
                proxied.insert(r.request_id.clone(), o);
            } else if self.redis.is_some() {
                let h = r.start_datetime.and_utc().timestamp() / 3600;
                hours.extend([h, h + 1]);
            }
            if !names.contains_key(&r.token_name) {
                match self.names.get(&r.token_name) {
                    Some(o) => {
                        names.insert(r.token_name.clone(), o);
                    }
                    None => {
                        unknown.insert(r.token_name.clone());
                    }
                }
            }
        }
        let Some(redis) = &self.redis else {
            return (names, proxied);
        };
        let mut conn = redis.conn();
        if !unknown.is_empty() {
            let unknown: Vec<String> = unknown.into_iter().collect();
            let keys: Vec<String> = unknown
                .iter()
                .map(|n| redis.key(&format!("usage:{{names}}:{n}")))
                .collect();
            let r: ::redis::RedisResult<Vec<Option<String>>> =
                ::redis::cmd("MGET").arg(&keys).query_async(&mut conn).await;
            if let Ok(found) = redis.observe("usage_names", r) {
                for (name, json) in unknown.into_iter().zip(found) {
                    if let Some(o) = json.and_then(|j| serde_json::from_str::<Owner>(&j).ok()) {
                        self.names.insert(name.clone(), o.clone());
                        if let (Some(t), Some(p)) = (&o.tenant, &o.plan) {
                            self.plans.insert(t.clone(), p.clone());
                        }
                        names.insert(name, o);
                    }
                }
            }
        }
        for h in hours {
            let r: ::redis::RedisResult<HashMap<String, String>> =
                conn.hgetall(proxied_key(redis, h)).await;
            if let Ok(ids) = redis.observe("usage_proxied", r) {
                for (id, json) in ids {
                    if let Ok(o) = serde_json::from_str::<Owner>(&json) {
                        proxied.insert(id, o);
                    }
                }
            }
        }
        (names, proxied)
    }

    /// Adds a poll's spending to the budget counters, and warns at thresholds.
    async fn count(&self, batch: &Batch) {
        for ((tenant, day, month), (requests, bytes)) in spending(batch) {
            let added = match &self.redis {
                None => {
                    let mut c = lock(&self.counters);
                    // Only the current periods are read; older ones can go.
                    let now = Utc::now();
                    let (today, this_month) = (budget::day_key(now), budget::month_key(now));
                    c.retain(|(_, p), _| [&today, &this_month, &day, &month].contains(&p));
                    let mut add = |p: &str| {
                        let e = c.entry((tenant.clone(), p.to_owned())).or_default();
                        let before = *e;
                        e.0 += requests;
                        e.1 += bytes;
                        (before, *e)
                    };
                    Some((add(&day), add(&month)))
                }
                Some(redis) => {
                    self.count_shared(redis, &tenant, &day, &month, requests, bytes)
                        .await
                }
            };
            if let Some((d, m)) = added {
                self.warn(&tenant, d, m);
            }
        }
    }

    async fn count_shared(
        &self,
        redis: &Redis,
        tenant: &str,
        day: &str,
        month: &str,
        requests: u64,
        bytes: u64,
    ) -> Option<(Moved, Moved)> {
        let (dk, mk) = (
            spent_key(redis, tenant, day),
            spent_key(redis, tenant, month),
        );
        let mut conn = redis.conn();
        let r: ::redis::RedisResult<(u64, u64, u64, u64)> = ::redis::pipe()
            .hincr(&dk, "r", requests)
            .hincr(&dk, "b", bytes)
            .hincr(&mk, "r", requests)
            .hincr(&mk, "b", bytes)
            .expire(&dk, 2 * 86_400)
            .ignore()
            .expire(&mk, 32 * 86_400)
            .ignore()
            .query_async(&mut conn)
            .await;
        let (dr, db, mr, mb) = redis.observe("usage_count", r).ok()?;
        let before = |r: u64, b: u64| (r - requests, b - bytes);
        Some(((before(dr, db), (dr, db)), (before(mr, mb), (mr, mb))))
    }

    /// An audit line and a metric per budget threshold a poll crossed.
    fn warn(&self, tenant: &str, day: Moved, month: Moved) {
        let plan = self.plans.get(tenant);
        let limits = self.settings.limits_for(Some(tenant), plan.as_deref());
        let near = self.settings.near;
        let lines = [
            (
                budget::Kind::DailyRequests,
                limits.daily_requests,
                day.0.0,
                day.1.0,
            ),
            (
                budget::Kind::DailyReadBytes,
                limits.daily_read_bytes,
                day.0.1,
                day.1.1,
            ),
            (
                budget::Kind::MonthlyRequests,
                limits.monthly_requests,
                month.0.0,
                month.1.0,
            ),
            (
                budget::Kind::MonthlyReadBytes,
                limits.monthly_read_bytes,
                month.0.1,
                month.1.1,
            ),
        ];
        for (kind, limit, before, after) in lines {
            let Some(limit) = limit else { continue };
            for threshold in budget::crossed(before, after, limit, near) {
                tracing::warn!(
                    tenant,
                    budget = kind.as_str(),
                    threshold,
                    spent = after,
                    limit,
                    "usage budget threshold crossed"
                );
                self.metrics.budget_warning(Some(tenant), kind.as_str());
                self.audit
                    .budget_warning(tenant, kind.as_str(), threshold, after, limit);
            }
        }
    }

    /// Takes or keeps `feed`'s polling lease (two poll intervals long): one instance polls
    /// each workspace's record.
    async fn lead(&self, redis: &Redis, feed: &Feed) -> bool {
        let key = redis.key(&format!("usage:leader{}", feed.suffix));
        let ms = (self.settings.poll_interval * 2).as_millis() as u64;
        let mut conn = redis.conn();
        let r: ::redis::RedisResult<Option<String>> = ::redis::cmd("SET")
            .arg(&key)
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await;
        match redis.observe("usage_lease", r) {
            Ok(Some(_)) => true,
            Ok(None) => {
                let holder: ::redis::RedisResult<Option<String>> = conn.get(&key).await;
                if redis
                    .observe("usage_lease", holder)
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(&self.instance)
                {
                    let r: ::redis::RedisResult<()> = conn.pexpire(&key, ms as i64).await;
                    redis.observe("usage_lease", r).is_ok()
                } else {
                    false
                }
            }
            Err(_) => {
                self.failed(feed, "the shared store (Redis) is unreachable".into());
                false
            }
        }
    }

    /// Polls `feed` with its shared cursor and publishes the cells and the status.
    async fn poll_shared(&self, redis: &Redis, feed: &Feed) {
        let mut conn = redis.conn();
        let key = redis.key(&format!("usage:cursor{}", feed.suffix));
        let r: ::redis::RedisResult<Option<String>> = conn.get(&key).await;
        let Ok(saved) = redis.observe("usage_cursor", r) else {
            return;
        };
        let mut cursor: Cursor = saved
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let batch = self.poll(feed, &mut cursor).await;
        if let Some(batch) = &batch
            && !batch.cells.is_empty()
        {
            let Ok(json) = serde_json::to_string(batch) else {
                return;
            };
            let min_id = Utc::now().timestamp_millis() - STREAM_KEEP_MS;
            let r: ::redis::RedisResult<String> = ::redis::cmd("XADD")
                .arg(redis.key("usage:batches"))
                .arg("MINID")
                .arg("~")
                .arg(min_id)
                .arg("*")
                .arg("b")
                .arg(json)
                .query_async(&mut conn)
                .await;
            if redis.observe("usage_publish", r).is_err() {
                return;
            }
        }
        if batch.is_some() {
            let json = serde_json::to_string(&cursor).unwrap_or_default();
            let r: ::redis::RedisResult<()> = conn.set(&key, json).await;
            redis.observe("usage_cursor", r).ok();
        }
        let status = serde_json::to_string(&*lock(&feed.status)).unwrap_or_default();
        let r: ::redis::RedisResult<()> = conn
            .set_ex(
                redis.key(&format!("usage:status{}", feed.suffix)),
                status,
                86_400,
            )
            .await;
        redis.observe("usage_status", r).ok();
    }

    /// Takes `feed`'s poller's status (another instance polls it).
    async fn follow_status(&self, redis: &Redis, feed: &Feed) {
        let mut conn = redis.conn();
        let key = redis.key(&format!("usage:status{}", feed.suffix));
        let r: ::redis::RedisResult<Option<String>> = conn.get(key).await;
        if let Ok(Some(json)) = redis.observe("usage_status", r)
            && let Ok(status) = serde_json::from_str::<SourceStatus>(&json)
        {
            *lock(&feed.status) = status;
        }
    }

    /// Applies the cells published since the last ones applied (all kept ones at start).
    async fn follow(&self, redis: &Redis) {
        let mut conn = redis.conn();
        loop {
            let last = lock(&self.followed).clone();
            let r: ::redis::RedisResult<Vec<(String, Vec<Vec<u8>>)>> = ::redis::cmd("XRANGE")
                .arg(redis.key("usage:batches"))
                .arg(format!("({last}"))
                .arg("+")
                .arg("COUNT")
                .arg(100)
                .query_async(&mut conn)
                .await;
            let Ok(entries) = redis.observe("usage_follow", r) else {
                return;
            };
            let done = entries.len() < 100;
            let now = Utc::now().timestamp();
            for (id, fields) in entries {
                if let Some(batch) = fields
                    .get(1)
                    .and_then(|b| serde_json::from_slice::<Batch>(b).ok())
                {
                    lock(&self.store).apply(&batch, now);
                }
                *lock(&self.followed) = id;
            }
            if done {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_to_the_proxy_by_request_id_then_to_the_minted_name_else_unknown() {
        let row = |id: &str, name: &str| StatRow {
            start_datetime: chrono::NaiveDateTime::parse_from_str(
                "2026-01-02 03:04:05",
                "%Y-%m-%d %H:%M:%S",
            )
            .unwrap(),
            pipe_name: "top".into(),
            duration: 0.01,
            read_bytes: 100,
            read_rows: 1,
            request_id: id.into(),
            token_name: name.into(),
            status_code: 200,
        };
        let alice = Owner {
            user: "alice".into(),
            tenant: Some("acme".into()),
            plan: None,
        };
        let names = HashMap::from([("alice@acme".to_owned(), alice.clone())]);
        let proxied = HashMap::from([("r2".to_owned(), alice)]);
        let batch = attribute(
            &[
                row("r1", "alice@acme"),
                row("r2", "alice@acme"),
                row("r3", "mallory@evil"),
            ],
            &names,
            &proxied,
            "eu",
        );
        assert!(batch.cells.iter().all(|(_, k, _)| k.workspace == "eu"));
        let keys: Vec<(String, String, Path)> = batch
            .cells
            .iter()
            .map(|(_, k, _)| (k.tenant.clone(), k.user.clone(), k.path))
            .collect();
        assert_eq!(
            keys,
            [
                ("(unknown)".into(), "mallory@evil".into(), Path::Direct),
                ("acme".into(), "alice".into(), Path::Direct),
                ("acme".into(), "alice".into(), Path::Proxy),
            ]
        );
        let spent = spending(&batch);
        assert_eq!(
            spent[&("acme".into(), "20260102".into(), "202601".into())],
            (2, 200)
        );
        assert_eq!(spent.len(), 1, "unknown names count against no budget");
    }
}
