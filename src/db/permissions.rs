//! Permission requests and their decisions.

/// One permission request, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PermissionAsk {
    pub id: String,
    pub instance_id: String,
    pub message_id: Option<String>,
    pub tool_name: String,
    /// JSON, as the CLI sent it.
    pub tool_input: String,
    pub summary: String,
    /// pending | allowed | denied | expired
    pub state: crate::states::AskState,
    pub decided_by: Option<String>,
    pub message: Option<String>,
    pub asked_at: String,
    pub decided_at: Option<String>,
}

pub struct NewRequest<'a> {
    pub id: &'a str,
    pub instance_id: &'a str,
    pub message_id: Option<&'a str>,
    pub tool_name: &'a str,
    pub tool_input: &'a str,
    pub summary: &'a str,
}

impl PermissionAsk {
    pub async fn insert(db: &super::Db, new: &NewRequest<'_>) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO permission_requests
                         (id, instance_id, message_id, tool_name, tool_input, summary, asked_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                    new.id,
                    new.instance_id,
                    new.message_id,
                    new.tool_name,
                    new.tool_input,
                    new.summary,
                    now
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO permission_requests
                         (id, instance_id, message_id, tool_name, tool_input, summary, asked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) /* postgres */",
                    new.id,
                    new.instance_id,
                    new.message_id,
                    new.tool_name,
                    new.tool_input,
                    new.summary,
                    now
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    /// Settles a pending request (`allowed`, `denied` or `expired`); false when it was no
    /// longer pending, so two deciders never both win.
    pub async fn settle(
        db: &super::Db,
        id: &str,
        state: &str,
        decided_by: Option<&str>,
        message: Option<&str>,
    ) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE permission_requests
                     SET state = ?, decided_by = ?, message = ?, decided_at = ?
                     WHERE id = ? AND state = 'pending'",
                    state,
                    decided_by,
                    message,
                    now,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(done.rows_affected() == 1)
            },
            postgres: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE permission_requests
                     SET state = $1, decided_by = $2, message = $3, decided_at = $4
                     WHERE id = $5 AND state = 'pending' /* postgres */",
                    state,
                    decided_by,
                    message,
                    now,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(done.rows_affected() == 1)
            },
        )
    }

    pub async fn find(db: &super::Db, id: &str) -> sqlx::Result<Option<PermissionAsk>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    PermissionAsk,
                    "SELECT * FROM permission_requests WHERE id = ?",
                    id
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    PermissionAsk,
                    "SELECT * FROM permission_requests WHERE id = $1 /* postgres */",
                    id
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    /// Every request still waiting for a decision, oldest first.
    pub async fn pending(db: &super::Db) -> sqlx::Result<Vec<PermissionAsk>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    PermissionAsk,
                    "SELECT * FROM permission_requests WHERE state = 'pending' ORDER BY asked_at, id"
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    PermissionAsk,
                    "SELECT * FROM permission_requests WHERE state = 'pending' ORDER BY asked_at, id /* postgres */"
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// An instance's requests, newest last.
    pub async fn for_instance(
        db: &super::Db,
        instance_id: &str,
    ) -> sqlx::Result<Vec<PermissionAsk>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    PermissionAsk,
                    "SELECT * FROM permission_requests WHERE instance_id = ? ORDER BY asked_at, id",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    PermissionAsk,
                    "SELECT * FROM permission_requests WHERE instance_id = $1 ORDER BY asked_at, id /* postgres */",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// Requests left pending by a previous run: nothing holds their CLI's hook any more.
    /// Expires the pending requests of `host`'s instances (their hooks ended with the host's
    /// previous run).
    pub async fn expire_all_pending(db: &super::Db, host: &str) -> sqlx::Result<u64> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE permission_requests SET state = 'expired', decided_at = ?
                     WHERE state = 'pending'
                       AND instance_id IN (SELECT id FROM instances WHERE host = ?)",
                    now,
                    host
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(done.rows_affected())
            },
            postgres: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE permission_requests SET state = 'expired', decided_at = $1
                     WHERE state = 'pending'
                       AND instance_id IN (SELECT id FROM instances WHERE host = $2) /* postgres */",
                    now,
                    host
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(done.rows_affected())
            },
        )
    }
}
