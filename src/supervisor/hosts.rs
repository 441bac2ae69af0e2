//! The registry's hosts as `troupe hosts`, `GET /api/hosts` and the dashboard show them: each
//! host's row, how it stands now, and how many live instances it runs.

use serde::Serialize;

use super::Supervisor;
use crate::db::hosts::{Host, live_counts};
use crate::error::Result;
use crate::hosts::{Standing, standing};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HostView {
    pub name: String,
    /// How other hosts and clients reach it.
    pub url: String,
    /// `up`, `draining`, `stopped` or `lost` (silent past the heartbeat limit).
    pub state: String,
    /// This server itself.
    pub this: bool,
    pub version: String,
    /// Each CLI's version as the host found it at start.
    pub clis: serde_json::Value,
    pub labels: Vec<String>,
    /// Live instances it runs.
    pub instances: i64,
    pub max_instances: Option<i64>,
    pub free_memory_mb: Option<i64>,
    pub started_at: String,
    pub heartbeat_at: String,
}

impl Supervisor {
    /// Every host of the registry, by name.
    pub async fn hosts(&self) -> Result<Vec<HostView>> {
        let pool = &self.shared.pool;
        let counts = live_counts(pool).await?;
        let limit = chrono::Duration::from_std(self.shared.config.host_lost_after)
            .unwrap_or(chrono::Duration::seconds(15));
        let now = chrono::Utc::now();
        let me = &self.shared.config.host;
        Ok(Host::list(pool)
            .await?
            .into_iter()
            .map(|h| {
                let this = &h.name == me;
                // This server knows it runs; on SQLite it writes no heartbeat at all.
                let state = if this {
                    Standing::Up.as_str()
                } else {
                    standing(&h, now, limit).as_str()
                };
                let state = if this && h.state == "draining" {
                    "draining"
                } else {
                    state
                };
                HostView {
                    instances: counts
                        .iter()
                        .find(|(n, _)| *n == h.name)
                        .map_or(0, |(_, c)| *c),
                    state: state.to_string(),
                    this,
                    clis: serde_json::from_str(&h.clis).unwrap_or_default(),
                    labels: serde_json::from_str(&h.labels).unwrap_or_default(),
                    name: h.name,
                    url: h.url,
                    version: h.version,
                    max_instances: h.max_instances,
                    free_memory_mb: h.free_memory_mb,
                    started_at: h.started_at,
                    heartbeat_at: h.heartbeat_at,
                }
            })
            .collect())
    }
}
