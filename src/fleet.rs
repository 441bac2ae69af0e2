//! This server as a host of its registry: it registers at start (refused if a running server
//! already holds its name, or if the hosts serving answer with another token), takes the instances no host owns yet, heartbeats while it runs on a
//! shared (PostgreSQL) registry, and says it stopped at a clean stop. The rules are in
//! [`crate::hosts`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Db;
use crate::db::hosts::{Host, NewHost, fleet_value, mark_lost, set_fleet_value};
use crate::hosts::{
    Claimant, Standing, TOKEN_KEY, TokenStep, fleet_token, may_take, standing, this_machine,
    token_hash,
};

/// Registers this server as host `config.host`; how many instances it took over.
pub async fn join(db: &Db, config: &Config) -> anyhow::Result<u64> {
    let machine = this_machine();
    let limit = chrono::Duration::from_std(config.host_lost_after)?;
    if let Some(existing) = Host::find(db, &config.host).await? {
        let me = Claimant {
            name: &config.host,
            machine: &machine.id,
        };
        may_take(&existing, &me, chrono::Utc::now(), limit, alive).map_err(anyhow::Error::msg)?;
    }
    let now = chrono::Utc::now();
    let others_serving: Vec<String> = Host::list(db)
        .await?
        .into_iter()
        .filter(|h| h.name != config.host && standing(h, now, limit).serving())
        .map(|h| h.name)
        .collect();
    let mine = token_hash(&config.token);
    let stored = fleet_value(db, TOKEN_KEY).await?;
    if fleet_token(stored.as_deref(), &mine, &others_serving).map_err(anyhow::Error::msg)?
        == TokenStep::Set
    {
        set_fleet_value(db, TOKEN_KEY, &mine).await?;
    }
    let clis: serde_json::Map<String, serde_json::Value> = config
        .cli_versions
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let url = if config.advertise_url.is_empty() {
        &config.public_url
    } else {
        &config.advertise_url
    };
    Host::register(
        db,
        &NewHost {
            name: &config.host,
            url,
            version: env!("CARGO_PKG_VERSION"),
            clis: &serde_json::Value::Object(clis).to_string(),
            labels: &serde_json::to_string(&config.labels)?,
            max_instances: config.env_controls.max_instances.map(|n| n as i64),
            free_memory_mb: free_memory_mb(),
            machine: &machine.id,
            pid: i64::from(std::process::id()),
        },
    )
    .await?;
    Ok(crate::db::hosts::claim_unowned(db, &config.host).await?)
}

/// Whether `pid` is a process on this machine. This process counts: a server it runs still
/// holds the name until it stops.
fn alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// `MemAvailable` from /proc/meminfo, in MiB.
pub fn free_memory_mb() -> Option<i64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Writes the heartbeat every `every` until `stop`; a failed one is retried at the next beat
/// (the database's health says the outage once). Each beat also looks for hosts gone silent
/// past `lost_after` and marks what they ran `host_lost`; `on_lost` hears of each host this
/// host was the one to mark (once per loss, fleet-wide).
pub async fn heartbeat(
    db: Db,
    name: String,
    every: Duration,
    lost_after: Duration,
    stop: CancellationToken,
    on_lost: impl Fn(&str, &str) + Send + 'static,
) {
    let limit = chrono::Duration::from_std(lost_after).unwrap_or(chrono::Duration::seconds(15));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = Host::heartbeat(&db, &name, free_memory_mb()).await {
            db.health().failed(&e);
            tracing::debug!(error = %e, "heartbeat not written");
            continue;
        }
        if let Err(e) = mark_the_lost(&db, &name, limit, &on_lost).await {
            tracing::debug!(error = %e, "could not look for lost hosts");
        }
    }
}

/// Marks the running instances of every host silent past `limit` as `host_lost`.
async fn mark_the_lost(
    db: &Db,
    me: &str,
    limit: chrono::Duration,
    on_lost: &(impl Fn(&str, &str) + Send),
) -> sqlx::Result<()> {
    let now = chrono::Utc::now();
    for host in Host::list(db).await? {
        if host.name == me {
            continue;
        }
        if let Standing::Lost { since } = standing(&host, now, limit) {
            let reason = format!("host {} has been silent since {since}", host.name);
            let marked = mark_lost(db, &host.name, &reason).await?;
            if marked > 0 {
                tracing::warn!(
                    host = %host.name,
                    "{reason}: its {marked} running instances are host_lost until it is back"
                );
                on_lost(&host.name, &reason);
            }
        }
    }
    Ok(())
}

/// Says the host stopped (a clean stop): the others do not wait out its heartbeat.
pub async fn leave(db: &Db, name: &str) {
    if let Err(e) = Host::set_state(db, name, "stopped").await {
        tracing::warn!(error = %e, "could not record that this host stopped");
    }
}
