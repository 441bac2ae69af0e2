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
        super::on!(db,
            sqlite: |pool| {
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
            },
            postgres: |pool| {
                let now = super::now();
                let id = sqlx::query_scalar!(
                    "INSERT INTO interrupts (instance_id, message_id, requested_at) VALUES ($1, $2, $3)
                     RETURNING id /* postgres */",
                    instance_id,
                    message_id,
                    now
                )
                .fetch_one(pool)
                .await?;
                db.written();
                Ok(id)
            },
        )
    }

    pub async fn record_outcome(
        db: &super::Db,
        id: i64,
        outcome: InterruptOutcome,
        detail: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
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
            },
            postgres: |pool| {
                let now = super::now();
                let outcome = outcome.as_str();
                sqlx::query!(
                    "UPDATE interrupts SET outcome = $1, detail = $2,
                        confirmed_at = CASE WHEN $3 = 'confirmed' THEN $4 ELSE confirmed_at END
                     WHERE id = $5 /* postgres */",
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
            },
        )
    }

    pub async fn for_instance(db: &super::Db, instance_id: &str) -> sqlx::Result<Vec<Interrupt>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Interrupt,
                    "SELECT * FROM interrupts WHERE instance_id = ? ORDER BY id",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Interrupt,
                    "SELECT * FROM interrupts WHERE instance_id = $1 ORDER BY id /* postgres */",
                    instance_id
                )
                .fetch_all(pool)
                .await
            },
        )
    }
}
