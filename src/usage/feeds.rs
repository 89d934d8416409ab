//! One feed per workspace: its `pipe_stats_rt`, read with its own token, its cursor, and how
//! reading it goes. Every feed is polled into the one store (docs/usage.md, "Several
//! workspaces"); with Redis each has its own lease, cursor and status keys.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;

use super::{SourceStatus, Usage, UsageSettings, lock, poller, rows};

/// One workspace's usage record: where it is read, how far, and how that goes.
pub(super) struct Feed {
    /// The workspace's name (cells read here carry it).
    pub(super) workspace: String,
    /// Its `/v0/sql` and the token that reads it.
    pub(super) source: poller::Source,
    /// Suffix of its Redis keys (lease, cursor, status): empty for the first workspace, so a
    /// one-workspace deployment keeps the keys it had; `:<name>` for the others.
    pub(super) suffix: String,
    /// How the last poll went.
    pub(super) status: Mutex<SourceStatus>,
    /// The cursor, without Redis (with Redis it lives there, for whichever instance polls).
    pub(super) cursor: Mutex<rows::Cursor>,
}

/// A feed per source of `settings`, reading the base URL of its workspace in `workspaces`
/// (name and URL).
pub(super) fn build(
    settings: &UsageSettings,
    workspaces: &[(String, String)],
) -> anyhow::Result<Vec<Feed>> {
    let mut feeds = Vec::new();
    for (i, source) in settings.sources.iter().enumerate() {
        let (_, url) = workspaces
            .iter()
            .find(|(name, _)| *name == source.workspace)
            .ok_or_else(|| anyhow::anyhow!("usage: no workspace {:?}", source.workspace))?;
        feeds.push(Feed {
            workspace: source.workspace.clone(),
            source: poller::Source::new(url, &source.token)?,
            suffix: if i == 0 {
                String::new()
            } else {
                format!(":{}", source.workspace)
            },
            status: Mutex::new(SourceStatus::default()),
            cursor: Mutex::new(rows::Cursor::default()),
        });
    }
    Ok(feeds)
}

impl Usage {
    /// Whether a workspace's usage record has not been read for a while (three polls, at
    /// least 10s): its tenants' budgets would be counted short.
    pub fn stale(&self) -> bool {
        let grace = (self.settings.poll_interval * 3).max(Duration::from_secs(10));
        self.status()
            .last_success
            .is_none_or(|t| Utc::now().timestamp() - t > grace.as_secs() as i64)
    }

    /// How reading the records goes, all workspaces together: ok when every one is, the
    /// oldest last success, and each failing workspace's error.
    pub fn status(&self) -> SourceStatus {
        let all = self.statuses();
        let several = all.len() > 1;
        let errors: Vec<String> = all
            .iter()
            .filter_map(|(w, s)| {
                let e = s.error.as_ref()?;
                Some(if several {
                    format!("{w}: {e}")
                } else {
                    e.clone()
                })
            })
            .collect();
        SourceStatus {
            ok: all.iter().all(|(_, s)| s.ok),
            last_success: all.values().map(|s| s.last_success).min().flatten(),
            last_attempt: all.values().filter_map(|s| s.last_attempt).max(),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        }
    }

    /// How reading each workspace's record goes.
    pub fn statuses(&self) -> BTreeMap<String, SourceStatus> {
        self.feeds
            .iter()
            .map(|f| (f.workspace.clone(), lock(&f.status).clone()))
            .collect()
    }
}
