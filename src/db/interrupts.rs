use sqlx::SqlitePool;

use crate::states::InterruptOutcome;

/// An interrupt troupe was asked for, and what came of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Interrupt {
    pub id: i64,
    pub instance_id: String,
    pub message_id: Option<String>,
    pub requested_at: String,
    pub confirmed_at: Option<String>,
    pub outcome: InterruptOutcome,
    pub detail: String,
}

impl Interrupt {
    pub async fn insert(
        db: &super::Db,
        instance_id: &str,
        message_id: Option<&str>,
    ) -> sqlx::Result<i64> {
        let pool = db.pool();
        let now = super::now();
        let done = sqlx::query!(
            "INSERT INTO interrupts (instance_id, message_id, requested_at) VALUES (?, ?, ?)",
            instance_id,
            message_id,
            now
        )
        .execute(pool)
        .await?;
        db.written();
        Ok(done.last_insert_rowid())
    }

    pub async fn record_outcome(
        db: &super::Db,
        id: i64,
        outcome: InterruptOutcome,
        detail: &str,
    ) -> sqlx::Result<()> {
        let pool = db.pool();
        let now = super::now();
        let outcome = outcome.as_str();
        sqlx::query!(
            "UPDATE interrupts SET outcome = ?, detail = ?,
                confirmed_at = CASE WHEN ? = 'confirmed' THEN ? ELSE confirmed_at END
             WHERE id = ?",
            outcome,
            detail,
            outcome,
            now,
            id
        )
        .execute(pool)
        .await?;
        db.written();
        Ok(())
    }

    pub async fn for_instance(
        pool: &SqlitePool,
        instance_id: &str,
    ) -> sqlx::Result<Vec<Interrupt>> {
        sqlx::query_as!(
            Interrupt,
            "SELECT * FROM interrupts WHERE instance_id = ? ORDER BY id",
            instance_id
        )
        .fetch_all(pool)
        .await
    }
}
