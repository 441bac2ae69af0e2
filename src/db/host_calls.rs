//! Acts handed to the host that runs an instance ([`crate::handover`]): a row per act in
//! flight.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    pub id: String,
    pub host: String,
    pub from_host: String,
    pub instance_id: String,
    /// JSON: a [`crate::handover::Act`].
    pub act: String,
    pub caller: Option<String>,
    pub state: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub done_at: Option<String>,
}

/// A new act for `host`.
pub struct NewCall<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub from_host: &'a str,
    pub instance_id: &'a str,
    pub act: &'a str,
    pub caller: Option<&'a str>,
}

impl HostCall {
    pub async fn insert(db: &super::Db, call: &NewCall<'_>) -> sqlx::Result<()> {
        let now = super::now();
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "INSERT INTO host_calls (id, host, from_host, instance_id, act, caller, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                    call.id, call.host, call.from_host, call.instance_id, call.act, call.caller, now
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "INSERT INTO host_calls (id, host, from_host, instance_id, act, caller, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) /* postgres */",
                    call.id, call.host, call.from_host, call.instance_id, call.act, call.caller, now
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    pub async fn find(db: &super::Db, id: &str) -> sqlx::Result<Option<HostCall>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(HostCall, "SELECT * FROM host_calls WHERE id = ?", id)
                    .fetch_optional(pool)
                    .await
            },
            postgres: |pool| {
                sqlx::query_as!(HostCall, "SELECT * FROM host_calls WHERE id = $1 /* postgres */", id)
                    .fetch_optional(pool)
                    .await
            },
        )
    }

    /// The acts waiting for `host`, oldest first.
    pub async fn queued(db: &super::Db, host: &str) -> sqlx::Result<Vec<HostCall>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    HostCall,
                    "SELECT * FROM host_calls WHERE host = ? AND state = 'queued'
                     ORDER BY created_at, id",
                    host
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    HostCall,
                    "SELECT * FROM host_calls WHERE host = $1 AND state = 'queued'
                     ORDER BY created_at, id /* postgres */",
                    host
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// Moves a call from `from` to `to` (with its answer or error); false when it was not in
    /// `from` any more (another taker, a caller that withdrew it).
    pub async fn settle(
        db: &super::Db,
        id: &str,
        from: &str,
        to: &str,
        result: Option<&str>,
        error: Option<&str>,
    ) -> sqlx::Result<bool> {
        let now = super::now();
        let done_at = matches!(to, "done" | "failed").then_some(now);
        let changed = super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "UPDATE host_calls SET state = ?, result = ?, error = ?, done_at = ?
                     WHERE id = ? AND state = ?",
                    to, result, error, done_at, id, from
                )
                .execute(pool)
                .await?
                .rows_affected()
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE host_calls SET state = $1, result = $2, error = $3, done_at = $4
                     WHERE id = $5 AND state = $6 /* postgres */",
                    to, result, error, done_at, id, from
                )
                .execute(pool)
                .await?
                .rows_affected()
            },
        );
        Ok(changed == 1)
    }

    pub async fn delete(db: &super::Db, id: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!("DELETE FROM host_calls WHERE id = ?", id)
                    .execute(pool)
                    .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!("DELETE FROM host_calls WHERE id = $1 /* postgres */", id)
                    .execute(pool)
                    .await?;
                Ok(())
            },
        )
    }

    /// Forgets answered acts older than `before` whose caller never came back for them (its
    /// host stopped mid-wait).
    pub async fn purge_answered(db: &super::Db, host: &str, before: &str) -> sqlx::Result<u64> {
        Ok(super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "DELETE FROM host_calls
                     WHERE host = ? AND state IN ('done', 'failed') AND done_at < ?",
                    host, before
                )
                .execute(pool)
                .await?
                .rows_affected()
            },
            postgres: |pool| {
                sqlx::query!(
                    "DELETE FROM host_calls
                     WHERE host = $1 AND state IN ('done', 'failed') AND done_at < $2
                     /* postgres */",
                    host, before
                )
                .execute(pool)
                .await?
                .rows_affected()
            },
        ))
    }
}
