//! The registry's hosts as `troupe hosts`, `GET /api/hosts` and the dashboard show them: each
//! host's row, how it stands now, and how many live instances it runs.

use serde::Serialize;

use super::Supervisor;
use crate::db::hosts::{Host, live_counts};
use crate::error::{Error, Result};
use crate::hosts::{Candidate, Standing, standing};

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

impl Supervisor {
    /// Stops (or, with `drain` false, resumes) new spawns on host `name`; its instances go on.
    pub async fn drain_host(&self, name: &str, drain: bool, caller: Option<&str>) -> Result<()> {
        let pool = &self.shared.pool;
        let host = Host::find(pool, name).await?.ok_or_else(|| unknown(name))?;
        if host.state == "stopped" {
            return Err(Error::Refused(format!(
                "host {name} is stopped; it takes no spawns until it starts again"
            )));
        }
        Host::set_state(pool, name, if drain { "draining" } else { "up" }).await?;
        crate::db::audit::record(
            pool,
            caller,
            None,
            "host.drain",
            serde_json::json!({ "host": name, "drain": drain }),
        )
        .await;
        Ok(())
    }

    /// Suspends every running instance of host `name` (each through its owner): their
    /// conversations are kept for a later resume. The ids suspended, and those that could not
    /// be, with why.
    pub async fn suspend_host(
        &self,
        name: &str,
        caller: Option<&str>,
    ) -> Result<(Vec<String>, Vec<(String, String)>)> {
        use crate::states::InstanceState::*;
        let running: Vec<String> =
            crate::db::instances::Instance::unended_on(&self.shared.pool, name)
                .await?
                .into_iter()
                .filter(|i| matches!(i.state, Starting | Idle | Busy | WaitingPermission))
                .map(|i| i.id)
                .collect();
        let (mut done, mut not) = (Vec::new(), Vec::new());
        for id in self.deepest_first(running).await {
            match self.suspend(&id, caller).await {
                Ok(()) => done.push(id),
                Err(e) => not.push((id, e.to_string())),
            }
        }
        Ok((done, not))
    }

    /// Gives up on a host that will not come back: its instances that have not ended become
    /// failed (with that reason), and its row goes. Refused while the host runs. The ids of
    /// the instances given up.
    pub async fn forget_host(&self, name: &str, caller: Option<&str>) -> Result<Vec<String>> {
        let pool = &self.shared.pool;
        if name == self.shared.config.host {
            return Err(Error::Refused(format!(
                "host {name} is this server; stop it with its own signal, not forget"
            )));
        }
        let host = Host::find(pool, name).await?.ok_or_else(|| unknown(name))?;
        let limit = chrono::Duration::from_std(self.shared.config.host_lost_after)
            .unwrap_or(chrono::Duration::seconds(15));
        if standing(&host, chrono::Utc::now(), limit).serving() {
            return Err(Error::Refused(format!(
                "host {name} is running (last heartbeat {}); stop it first, or let it go \
                 silent, before forgetting it",
                host.heartbeat_at
            )));
        }
        let reason = format!("its host {name} was forgotten (troupe host forget)");
        let mut given_up = Vec::new();
        for inst in crate::db::instances::Instance::unended_on(pool, name).await? {
            self.shared.instance_failed(&inst.id, &reason).await;
            given_up.push(inst.id);
        }
        Host::delete(pool, name).await?;
        crate::db::audit::record(
            pool,
            caller,
            None,
            "host.forget",
            serde_json::json!({ "host": name, "instances": given_up }),
        )
        .await;
        Ok(given_up)
    }

    /// The host a new instance goes to ([`crate::hosts::place`]): the one asked for, else
    /// the parent's, else this one.
    pub(super) async fn placement(
        &self,
        req: &crate::supervisor::SpawnRequest,
        caller: Option<&str>,
    ) -> Result<String> {
        let pool = &self.shared.pool;
        let me = &self.shared.config.host;
        let wanted = req.host.as_deref().map(str::trim).filter(|w| !w.is_empty());
        let parent = req.parent_instance_id.as_deref().or(caller);
        let default = match parent {
            Some(p) => crate::db::instances::Instance::find(pool, p)
                .await?
                .map(|i| i.host)
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| me.clone()),
            None => me.clone(),
        };
        // This host's own limits (draining, room) are checked as the spawn runs.
        if wanted.is_none_or(|w| w == me) && &default == me {
            return Ok(me.clone());
        }
        let rows = Host::list(pool).await?;
        let counts = live_counts(pool).await?;
        let limit = chrono::Duration::from_std(self.shared.config.host_lost_after)
            .unwrap_or(chrono::Duration::seconds(15));
        let now = chrono::Utc::now();
        let fleet: Vec<Candidate> = rows
            .iter()
            .map(|h| Candidate {
                host: h,
                standing: match (&h.name == me, h.state.as_str()) {
                    (true, "draining") => Standing::Draining,
                    // This server knows it runs; on SQLite it writes no heartbeat at all.
                    (true, _) => Standing::Up,
                    (false, _) => standing(h, now, limit),
                },
                live: counts
                    .iter()
                    .find(|(n, _)| *n == h.name)
                    .map_or(0, |(_, c)| *c),
            })
            .collect();
        crate::hosts::place(wanted, &default, &fleet).map_err(Error::Refused)
    }

    /// Refuses a spawn on this host while it drains.
    pub(super) async fn check_not_draining(&self) -> Result<()> {
        let me = &self.shared.config.host;
        match Host::find(&self.shared.pool, me).await? {
            Some(h) if h.state == "draining" => Err(Error::Refused(format!(
                "this host ({me}) is draining: it takes no new instances. Spawn through another \
                 host, or `troupe host undrain {me}`"
            ))),
            _ => Ok(()),
        }
    }
}

fn unknown(name: &str) -> Error {
    Error::InvalidInput(format!(
        "no host named {name:?} in the registry; `troupe hosts` lists them"
    ))
}
