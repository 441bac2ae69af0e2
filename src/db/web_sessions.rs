//! Dashboard logins, one row per browser session (its id hashed).

/// One browser's login, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebSession {
    #[serde(skip)]
    pub id_hash: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
}

impl WebSession {
    pub async fn insert(
        db: &super::Db,
        id_hash: &str,
        token_hash: &str,
        expires_at: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO web_sessions (id_hash, token_hash, created_at, expires_at)
                     VALUES (?, ?, ?, ?)",
                    id_hash,
                    token_hash,
                    now,
                    expires_at
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO web_sessions (id_hash, token_hash, created_at, expires_at)
                     VALUES ($1, $2, $3, $4) /* postgres */",
                    id_hash,
                    token_hash,
                    now,
                    expires_at
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    /// Whether the session is live: not ended, not expired, made under this token.
    pub async fn live(db: &super::Db, id_hash: &str, token_hash: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let found = sqlx::query_scalar!(
                    "SELECT count(*) FROM web_sessions
                     WHERE id_hash = ? AND token_hash = ? AND ended_at IS NULL AND expires_at > ?",
                    id_hash,
                    token_hash,
                    now
                )
                .fetch_one(pool)
                .await?;
                Ok(found > 0)
            },
            postgres: |pool| {
                let now = super::now();
                let found = sqlx::query_scalar!(
                    "SELECT count(*) AS \"n!\" FROM web_sessions
                     WHERE id_hash = $1 AND token_hash = $2 AND ended_at IS NULL AND expires_at > $3 /* postgres */",
                    id_hash,
                    token_hash,
                    now
                )
                .fetch_one(pool)
                .await?;
                Ok(found > 0)
            },
        )
    }

    /// Ends one session; false when it was not live.
    pub async fn end(db: &super::Db, id_hash: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE web_sessions SET ended_at = ? WHERE id_hash = ? AND ended_at IS NULL",
                    now,
                    id_hash
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            },
            postgres: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE web_sessions SET ended_at = $1 WHERE id_hash = $2 AND ended_at IS NULL /* postgres */",
                    now,
                    id_hash
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            },
        )
    }

    /// Ends every session; how many were live.
    pub async fn end_all(db: &super::Db) -> sqlx::Result<u64> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE web_sessions SET ended_at = ? WHERE ended_at IS NULL AND expires_at > ?",
                    now,
                    now
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected())
            },
            postgres: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE web_sessions SET ended_at = $1 WHERE ended_at IS NULL AND expires_at > $2 /* postgres */",
                    now,
                    now
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected())
            },
        )
    }

    /// Sessions neither ended nor expired, newest first.
    pub async fn open(db: &super::Db) -> sqlx::Result<Vec<WebSession>> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query_as!(
                    WebSession,
                    "SELECT * FROM web_sessions WHERE ended_at IS NULL AND expires_at > ?
                     ORDER BY created_at DESC",
                    now
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query_as!(
                    WebSession,
                    "SELECT * FROM web_sessions WHERE ended_at IS NULL AND expires_at > $1
                     ORDER BY created_at DESC /* postgres */",
                    now
                )
                .fetch_all(pool)
                .await
            },
        )
    }
}
