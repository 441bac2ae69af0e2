//! Calls of instances that wait for the person's approval, and the person's answers.

/// One approval, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Approval {
    pub id: String,
    pub instance_id: String,
    pub tool: String,
    /// JSON: the call's arguments.
    pub arguments: String,
    /// pending | approved | denied | used | expired
    pub state: crate::states::ApprovalState,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub asked_at: String,
    pub decided_at: Option<String>,
    pub used_at: Option<String>,
}

impl Approval {
    pub async fn insert(
        db: &super::Db,
        id: &str,
        instance_id: &str,
        tool: &str,
        arguments: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO approvals (id, instance_id, tool, arguments, asked_at)
                     VALUES (?, ?, ?, ?, ?)",
                    id,
                    instance_id,
                    tool,
                    arguments,
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
                    "INSERT INTO approvals (id, instance_id, tool, arguments, asked_at)
                     VALUES ($1, $2, $3, $4, $5) /* postgres */",
                    id,
                    instance_id,
                    tool,
                    arguments,
                    now
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    /// Decides a pending approval (`approved` or `denied`); false when it was no longer
    /// pending, so two answers never both count.
    pub async fn decide(
        db: &super::Db,
        id: &str,
        state: &str,
        decided_by: &str,
        reason: Option<&str>,
    ) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE approvals SET state = ?, decided_by = ?, reason = ?, decided_at = ?
                     WHERE id = ? AND state = 'pending'",
                    state,
                    decided_by,
                    reason,
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
                    "UPDATE approvals SET state = $1, decided_by = $2, reason = $3, decided_at = $4
                     WHERE id = $5 AND state = 'pending' /* postgres */",
                    state,
                    decided_by,
                    reason,
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

    /// Spends an approved approval on its call; false when it was not (or no longer) approved.
    pub async fn spend(db: &super::Db, id: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE approvals SET state = 'used', used_at = ? WHERE id = ? AND state = 'approved'",
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
                    "UPDATE approvals SET state = 'used', used_at = $1 WHERE id = $2 AND state = 'approved' /* postgres */",
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

    /// Ends an approval that can no longer be used (pending or approved, and too old).
    pub async fn expire(db: &super::Db, id: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE approvals SET state = 'expired', decided_at = coalesce(decided_at, ?)
                     WHERE id = ? AND state IN ('pending', 'approved')",
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
                    "UPDATE approvals SET state = 'expired', decided_at = coalesce(decided_at, $1)
                     WHERE id = $2 AND state IN ('pending', 'approved') /* postgres */",
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

    pub async fn find(db: &super::Db, id: &str) -> sqlx::Result<Option<Approval>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(Approval, "SELECT * FROM approvals WHERE id = ?", id)
                    .fetch_optional(pool)
                    .await
            },
            postgres: |pool| {
                sqlx::query_as!(Approval, "SELECT * FROM approvals WHERE id = $1 /* postgres */", id)
                    .fetch_optional(pool)
                    .await
            },
        )
    }

    /// Every approval still waiting for the person, oldest first.
    pub async fn pending(db: &super::Db) -> sqlx::Result<Vec<Approval>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Approval,
                    "SELECT * FROM approvals WHERE state = 'pending' ORDER BY asked_at, id"
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Approval,
                    "SELECT * FROM approvals WHERE state = 'pending' ORDER BY asked_at, id /* postgres */"
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// The newest approvals, whatever their state, newest first.
    pub async fn recent(db: &super::Db, limit: i64) -> sqlx::Result<Vec<Approval>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Approval,
                    "SELECT * FROM approvals ORDER BY asked_at DESC, id DESC LIMIT ?",
                    limit
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Approval,
                    "SELECT * FROM approvals ORDER BY asked_at DESC, id DESC LIMIT $1 /* postgres */",
                    limit
                )
                .fetch_all(pool)
                .await
            },
        )
    }
}
