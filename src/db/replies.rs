/// A message an instance sent up to its caller.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Reply {
    pub id: i64,
    pub from_instance: String,
    /// The recipient instance; None for the orchestrating session.
    pub to_instance: Option<String>,
    pub correlation_id: Option<String>,
    pub content: String,
    pub created_at: String,
    pub read_at: Option<String>,
}

impl Reply {
    pub async fn insert(
        db: &super::Db,
        from: &str,
        to: Option<&str>,
        correlation_id: Option<&str>,
        content: &str,
    ) -> sqlx::Result<i64> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "INSERT INTO replies (from_instance, to_instance, correlation_id, content, created_at)
                     VALUES (?, ?, ?, ?, ?)",
                    from,
                    to,
                    correlation_id,
                    content,
                    now
                )
                .execute(pool)
                .await?;
                Ok(done.last_insert_rowid())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query_scalar!(
                    "INSERT INTO replies (from_instance, to_instance, correlation_id, content, created_at)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id /* postgres */",
                    from,
                    to,
                    correlation_id,
                    &*super::pg_text(content),
                    now
                )
                .fetch_one(pool)
                .await
            },
        )
    }

    /// Unread replies for a recipient (None: the orchestrator), oldest first, marked read.
    pub async fn take_unread(db: &super::Db, to: Option<&str>) -> sqlx::Result<Vec<Reply>> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                // One statement: a read then a write in one transaction would fail, not wait, when
                // another connection writes in between.
                let mut rows = sqlx::query_as!(
                    Reply,
                    "UPDATE replies SET read_at = ? WHERE to_instance IS ? AND read_at IS NULL RETURNING *",
                    now,
                    to
                )
                .fetch_all(pool)
                .await?;
                rows.sort_by_key(|r| r.id);
                Ok(rows)
            },
            postgres: |pool| {
                let now = super::now();
                // One statement: a read then a write in one transaction would fail, not wait, when
                // another connection writes in between.
                let mut rows = sqlx::query_as!(
                    Reply,
                    "UPDATE replies SET read_at = $1 WHERE to_instance IS NOT DISTINCT FROM $2 AND read_at IS NULL RETURNING * /* postgres */",
                    now,
                    to
                )
                .fetch_all(pool)
                .await?;
                rows.sort_by_key(|r| r.id);
                Ok(rows)
            },
        )
    }
}
