use sqlx::SqlitePool;

/// A message sent to an instance and, once its turn ends, the answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    pub id: String,
    pub instance_id: String,
    pub sender: Option<String>,
    pub content: String,
    pub state: String,
    pub state_reason: String,
    pub prompt_id: Option<String>,
    pub response: Option<String>,
    pub correlation_id: Option<String>,
    pub created_at: String,
    pub submitted_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Message {
    /// True once the message's turn is over, one way or another.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "answered" | "interrupted" | "failed" | "timed_out"
        )
    }

    pub async fn insert_queued(
        pool: &SqlitePool,
        id: &str,
        instance_id: &str,
        sender: Option<&str>,
        content: &str,
    ) -> sqlx::Result<()> {
        let now = super::now();
        sqlx::query!(
            "INSERT INTO messages (id, instance_id, sender, content, state, created_at)
             VALUES (?, ?, ?, ?, 'queued', ?)",
            id,
            instance_id,
            sender,
            content,
            now
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    pub async fn find(pool: &SqlitePool, id: &str) -> sqlx::Result<Option<Message>> {
        sqlx::query_as!(Message, "SELECT * FROM messages WHERE id = ?", id)
            .fetch_optional(pool)
            .await
    }

    /// The oldest message still waiting for its turn on this instance.
    pub async fn next_queued(
        pool: &SqlitePool,
        instance_id: &str,
    ) -> sqlx::Result<Option<Message>> {
        sqlx::query_as!(
            Message,
            "SELECT * FROM messages WHERE instance_id = ? AND state = 'queued'
             ORDER BY created_at, rowid LIMIT 1",
            instance_id
        )
        .fetch_optional(pool)
        .await
    }

    pub async fn mark_submitted(pool: &SqlitePool, id: &str) -> sqlx::Result<()> {
        let now = super::now();
        sqlx::query!(
            "UPDATE messages SET state = 'submitted', submitted_at = ? WHERE id = ?",
            now,
            id
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    pub async fn mark_started(
        pool: &SqlitePool,
        id: &str,
        prompt_id: Option<&str>,
    ) -> sqlx::Result<()> {
        let now = super::now();
        sqlx::query!(
            "UPDATE messages SET state = 'started', started_at = COALESCE(started_at, ?),
                prompt_id = COALESCE(?, prompt_id)
             WHERE id = ? AND state IN ('queued', 'submitted')",
            now,
            prompt_id,
            id
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Ends the message's turn: answered, interrupted or failed, with what the CLI said.
    pub async fn finish(
        pool: &SqlitePool,
        id: &str,
        state: &str,
        response: Option<&str>,
        reason: &str,
    ) -> sqlx::Result<()> {
        let now = super::now();
        sqlx::query!(
            "UPDATE messages SET state = ?, response = ?, state_reason = ?, finished_at = ?
             WHERE id = ?",
            state,
            response,
            reason,
            now,
            id
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Fails every message of the instance that has not finished (used when it goes away).
    pub async fn fail_unfinished(
        pool: &SqlitePool,
        instance_id: &str,
        reason: &str,
    ) -> sqlx::Result<u64> {
        let now = super::now();
        let done = sqlx::query!(
            "UPDATE messages SET state = 'failed', state_reason = ?, finished_at = ?
             WHERE instance_id = ? AND state IN ('queued', 'submitted', 'started')",
            reason,
            now,
            instance_id
        )
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn count_pending(pool: &SqlitePool, instance_id: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar!(
            "SELECT COUNT(*) FROM messages WHERE instance_id = ? AND state IN ('queued', 'submitted', 'started')",
            instance_id
        )
        .fetch_one(pool)
        .await
    }
}
