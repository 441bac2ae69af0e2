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
        db: &super::Db,
        instance_id: &str,
        repo: &str,
        path: &str,
        branch: &str,
        base_commit: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
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
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO worktrees (instance_id, repo, path, branch, base_commit, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) /* postgres */",
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
            },
        )
    }

    pub async fn find(db: &super::Db, instance_id: &str) -> sqlx::Result<Option<Worktree>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Worktree,
                    "SELECT * FROM worktrees WHERE instance_id = ?",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Worktree,
                    "SELECT * FROM worktrees WHERE instance_id = $1 /* postgres */",
                    instance_id
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    /// Marks it removed; returns the time written (None when it was marked already).
    pub async fn mark_removed(db: &super::Db, instance_id: &str) -> sqlx::Result<Option<String>> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE worktrees SET removed_at = ? WHERE instance_id = ? AND removed_at IS NULL",
                    now,
                    instance_id
                )
                .execute(pool)
                .await?;
                Ok((done.rows_affected() > 0).then_some(now))
            },
            postgres: |pool| {
                let now = super::now();
                let done = sqlx::query!(
                    "UPDATE worktrees SET removed_at = $1 WHERE instance_id = $2 AND removed_at IS NULL /* postgres */",
                    now,
                    instance_id
                )
                .execute(pool)
                .await?;
                Ok((done.rows_affected() > 0).then_some(now))
            },
        )
    }
}
