use sqlx::SqlitePool;

/// A git worktree made for an instance (`use_worktree`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Worktree {
    pub instance_id: String,
    /// The repository's top level.
    pub repo: String,
    pub path: String,
    pub branch: String,
    pub base_commit: String,
    pub created_at: String,
    /// When it was removed (its branch is kept); None while it exists.
    pub removed_at: Option<String>,
}

impl Worktree {
    pub async fn insert(
        pool: &SqlitePool,
        instance_id: &str,
        repo: &str,
        path: &str,
        branch: &str,
        base_commit: &str,
    ) -> sqlx::Result<()> {
        let now = super::now();
        sqlx::query!(
            "INSERT INTO worktrees (instance_id, repo, path, branch, base_commit, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
            instance_id,
            repo,
            path,
            branch,
            base_commit,
            now
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    pub async fn find(pool: &SqlitePool, instance_id: &str) -> sqlx::Result<Option<Worktree>> {
        sqlx::query_as!(
            Worktree,
            "SELECT * FROM worktrees WHERE instance_id = ?",
            instance_id
        )
        .fetch_optional(pool)
        .await
    }

    /// Marks it removed; returns the time written (None when it was marked already).
    pub async fn mark_removed(
        pool: &SqlitePool,
        instance_id: &str,
    ) -> sqlx::Result<Option<String>> {
        let now = super::now();
        let done = sqlx::query!(
            "UPDATE worktrees SET removed_at = ? WHERE instance_id = ? AND removed_at IS NULL",
            now,
            instance_id
        )
        .execute(pool)
        .await?;
        Ok((done.rows_affected() > 0).then_some(now))
    }
}
