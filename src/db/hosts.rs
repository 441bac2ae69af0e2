//! The hosts of a fleet, one row per `troupe serve` that has used the registry.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub url: String,
    pub version: String,
    /// JSON object: each CLI's version as the host found it at start.
    pub clis: String,
    /// JSON array of strings.
    pub labels: String,
    pub max_instances: Option<i64>,
    pub free_memory_mb: Option<i64>,
    pub state: String,
    pub machine: String,
    pub pid: i64,
    pub started_at: String,
    pub heartbeat_at: String,
}

/// What a host says of itself when it starts.
pub struct NewHost<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub version: &'a str,
    pub clis: &'a str,
    pub labels: &'a str,
    pub max_instances: Option<i64>,
    pub free_memory_mb: Option<i64>,
    pub machine: &'a str,
    pub pid: i64,
}

impl Host {
    pub async fn find(db: &super::Db, name: &str) -> sqlx::Result<Option<Host>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(Host, "SELECT * FROM hosts WHERE name = ?", name)
                    .fetch_optional(pool)
                    .await
            },
            postgres: |pool| {
                sqlx::query_as!(Host, "SELECT * FROM hosts WHERE name = $1 /* postgres */", name)
                    .fetch_optional(pool)
                    .await
            },
        )
    }

    /// Every host that has used the registry, by name.
    pub async fn list(db: &super::Db) -> sqlx::Result<Vec<Host>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(Host, "SELECT * FROM hosts ORDER BY name")
                    .fetch_all(pool)
                    .await
            },
            postgres: |pool| {
                sqlx::query_as!(Host, "SELECT * FROM hosts ORDER BY name /* postgres */")
                    .fetch_all(pool)
                    .await
            },
        )
    }

    /// Writes the host's row as it starts (up, started and heartbeat now), over any row an
    /// earlier run of that name left.
    pub async fn register(db: &super::Db, new: &NewHost<'_>) -> sqlx::Result<()> {
        let now = super::now();
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "INSERT INTO hosts (name, url, version, clis, labels, max_instances,
                                        free_memory_mb, state, machine, pid, started_at, heartbeat_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, 'up', ?, ?, ?, ?)
                     ON CONFLICT (name) DO UPDATE SET
                         url = excluded.url, version = excluded.version, clis = excluded.clis,
                         labels = excluded.labels, max_instances = excluded.max_instances,
                         free_memory_mb = excluded.free_memory_mb, state = 'up',
                         machine = excluded.machine, pid = excluded.pid,
                         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                    new.name, new.url, new.version, new.clis, new.labels, new.max_instances,
                    new.free_memory_mb, new.machine, new.pid, now, now
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "INSERT INTO hosts (name, url, version, clis, labels, max_instances,
                                        free_memory_mb, state, machine, pid, started_at, heartbeat_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'up', $8, $9, $10, $10)
                     ON CONFLICT (name) DO UPDATE SET
                         url = excluded.url, version = excluded.version, clis = excluded.clis,
                         labels = excluded.labels, max_instances = excluded.max_instances,
                         free_memory_mb = excluded.free_memory_mb, state = 'up',
                         machine = excluded.machine, pid = excluded.pid,
                         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
                     /* postgres */",
                    new.name, new.url, new.version, new.clis, new.labels, new.max_instances,
                    new.free_memory_mb, new.machine, new.pid, now
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    /// The host is alive, with this much memory free.
    pub async fn heartbeat(
        db: &super::Db,
        name: &str,
        free_memory_mb: Option<i64>,
    ) -> sqlx::Result<()> {
        let now = super::now();
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "UPDATE hosts SET heartbeat_at = ?, free_memory_mb = ? WHERE name = ?",
                    now, free_memory_mb, name
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE hosts SET heartbeat_at = $1, free_memory_mb = $2 WHERE name = $3
                     /* postgres */",
                    now, free_memory_mb, name
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    /// `up`, `draining` or `stopped`.
    pub async fn set_state(db: &super::Db, name: &str, state: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!("UPDATE hosts SET state = ? WHERE name = ?", state, name)
                    .execute(pool)
                    .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE hosts SET state = $1 WHERE name = $2 /* postgres */",
                    state, name
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }
}

impl Host {
    /// Forgets the host's row.
    pub async fn delete(db: &super::Db, name: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!("DELETE FROM hosts WHERE name = ?", name)
                    .execute(pool)
                    .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!("DELETE FROM hosts WHERE name = $1 /* postgres */", name)
                    .execute(pool)
                    .await?;
                Ok(())
            },
        )
    }
}

/// Gives instances no host owns yet (rows from before hosts existed) to `host`; how many.
pub async fn claim_unowned(db: &super::Db, host: &str) -> sqlx::Result<u64> {
    let claimed = super::on!(db,
        sqlite: |pool| {
            Ok(sqlx::query!("UPDATE instances SET host = ? WHERE host = ''", host)
                .execute(pool)
                .await?
                .rows_affected())
        },
        postgres: |pool| {
            Ok(sqlx::query!("UPDATE instances SET host = $1 WHERE host = '' /* postgres */", host)
                .execute(pool)
                .await?
                .rows_affected())
        },
    );
    db.instances_changed();
    claimed
}

/// Live instances per host, for the listing.
pub async fn live_counts(db: &super::Db) -> sqlx::Result<Vec<(String, i64)>> {
    super::on!(db,
        sqlite: |pool| {
            let rows = sqlx::query!(
                "SELECT host, COUNT(*) AS n FROM instances
                 WHERE state NOT IN ('terminated', 'failed', 'exited') GROUP BY host"
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.host, r.n)).collect())
        },
        postgres: |pool| {
            let rows = sqlx::query!(
                "SELECT host, COUNT(*) AS \"n!\" FROM instances
                 WHERE state NOT IN ('terminated', 'failed', 'exited') GROUP BY host /* postgres */"
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.host, r.n)).collect())
        },
    )
}

/// A value the hosts of a fleet share (`fleet` table).
pub async fn fleet_value(db: &super::Db, key: &str) -> sqlx::Result<Option<String>> {
    super::on!(db,
        sqlite: |pool| {
            sqlx::query_scalar!("SELECT value FROM fleet WHERE key = ?", key)
                .fetch_optional(pool)
                .await
        },
        postgres: |pool| {
            sqlx::query_scalar!("SELECT value FROM fleet WHERE key = $1 /* postgres */", key)
                .fetch_optional(pool)
                .await
        },
    )
}

pub async fn set_fleet_value(db: &super::Db, key: &str, value: &str) -> sqlx::Result<()> {
    let now = super::now();
    super::on!(db,
        sqlite: |pool| {
            sqlx::query!(
                "INSERT INTO fleet (key, value, updated_at) VALUES (?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                                                 updated_at = excluded.updated_at",
                key, value, now
            )
            .execute(pool)
            .await?;
            Ok(())
        },
        postgres: |pool| {
            sqlx::query!(
                "INSERT INTO fleet (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                                                 updated_at = excluded.updated_at
                 /* postgres */",
                key, value, now
            )
            .execute(pool)
            .await?;
            Ok(())
        },
    )
}

/// Marks what `host` was running (starting, idle, busy, waiting for permission) as
/// `host_lost`, with `reason`; how many. Messages are left as they are.
pub async fn mark_lost(db: &super::Db, host: &str, reason: &str) -> sqlx::Result<u64> {
    let now = super::now();
    let lost = super::on!(db,
        sqlite: |pool| {
            sqlx::query!(
                "UPDATE instances SET state = 'host_lost', state_reason = ?, state_since = ?
                 WHERE host = ? AND state IN ('starting', 'idle', 'busy', 'waiting_permission')",
                reason, now, host
            )
            .execute(pool)
            .await?
            .rows_affected()
        },
        postgres: |pool| {
            sqlx::query!(
                "UPDATE instances SET state = 'host_lost', state_reason = $1, state_since = $2
                 WHERE host = $3 AND state IN ('starting', 'idle', 'busy', 'waiting_permission')
                 /* postgres */",
                reason, now, host
            )
            .execute(pool)
            .await?
            .rows_affected()
        },
    );
    db.instances_changed();
    Ok(lost)
}
