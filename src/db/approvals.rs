//! Calls of instances that wait for the person's approval, and the person's answers.

use sqlx::SqlitePool;

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
        let pool = db.pool();
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
        let pool = db.pool();
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
    }

    /// Spends an approved approval on its call; false when it was not (or no longer) approved.
    pub async fn spend(db: &super::Db, id: &str) -> sqlx::Result<bool> {
        let pool = db.pool();
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
    }

    /// Ends an approval that can no longer be used (pending or approved, and too old).
    pub async fn expire(db: &super::Db, id: &str) -> sqlx::Result<bool> {
        let pool = db.pool();
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
    }

    pub async fn find(pool: &SqlitePool, id: &str) -> sqlx::Result<Option<Approval>> {
        sqlx::query_as!(Approval, "SELECT * FROM approvals WHERE id = ?", id)
            .fetch_optional(pool)
            .await
    }

    /// Every approval still waiting for the person, oldest first.
    pub async fn pending(pool: &SqlitePool) -> sqlx::Result<Vec<Approval>> {
        sqlx::query_as!(
            Approval,
            "SELECT * FROM approvals WHERE state = 'pending' ORDER BY asked_at, id"
        )
        .fetch_all(pool)
        .await
    }

    /// The newest approvals, whatever their state, newest first.
    pub async fn recent(pool: &SqlitePool, limit: i64) -> sqlx::Result<Vec<Approval>> {
        sqlx::query_as!(
            Approval,
            "SELECT * FROM approvals ORDER BY asked_at DESC, id DESC LIMIT ?",
            limit
        )
        .fetch_all(pool)
        .await
    }
}
