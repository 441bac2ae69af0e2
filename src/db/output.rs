/// One piece of what an instance produced, in transcript order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputChunk {
    pub id: i64,
    pub instance_id: String,
    pub message_id: Option<String>,
    pub source: String,
    pub source_id: String,
    pub content: String,
    pub created_at: String,
}

impl OutputChunk {
    /// Stores a chunk once: the same transcript record read twice is ignored.
    pub async fn insert(
        db: &super::Db,
        instance_id: &str,
        message_id: Option<&str>,
        source: &str,
        source_id: &str,
        content: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO output_chunks (instance_id, message_id, source, source_id, content, created_at)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (instance_id, source_id) DO NOTHING",
                    instance_id,
                    message_id,
                    source,
                    source_id,
                    content,
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
                    "INSERT INTO output_chunks (instance_id, message_id, source, source_id, content, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (instance_id, source_id) DO NOTHING /* postgres */",
                    instance_id,
                    message_id,
                    source,
                    source_id,
                    &*super::pg_text(content),
                    now
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    /// The last `limit` chunks (after `since`, a timestamp, when given), oldest first.
    pub async fn recent(
        db: &super::Db,
        instance_id: &str,
        since: Option<&str>,
        limit: i64,
    ) -> sqlx::Result<Vec<OutputChunk>> {
        super::on!(db,
            sqlite: |pool| {
                let mut rows = sqlx::query_as!(
                    OutputChunk,
                    "SELECT * FROM output_chunks WHERE instance_id = ? AND (? IS NULL OR created_at > ?)
                     ORDER BY id DESC LIMIT ?",
                    instance_id,
                    since,
                    since,
                    limit
                )
                .fetch_all(pool)
                .await?;
                rows.reverse();
                Ok(rows)
            },
            postgres: |pool| {
                let mut rows = sqlx::query_as!(
                    OutputChunk,
                    "SELECT * FROM output_chunks WHERE instance_id = $1 AND ($2::text IS NULL OR created_at > $3)
                     ORDER BY id DESC LIMIT $4 /* postgres */",
                    instance_id,
                    since,
                    since,
                    limit
                )
                .fetch_all(pool)
                .await?;
                rows.reverse();
                Ok(rows)
            },
        )
    }

    pub async fn count_for_message(db: &super::Db, message_id: &str) -> sqlx::Result<i64> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_scalar!(
                    "SELECT COUNT(*) FROM output_chunks WHERE message_id = ?",
                    message_id
                )
                .fetch_one(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_scalar!(
                    "SELECT COUNT(*) AS \"n!\" FROM output_chunks WHERE message_id = $1 /* postgres */",
                    message_id
                )
                .fetch_one(pool)
                .await
            },
        )
    }
}
