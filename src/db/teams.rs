/// A named, persistent team: its members outlive any one run of troupe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub dissolved_at: Option<String>,
    /// Where the members work (absolute), when the team was given a directory.
    pub project_dir: Option<String>,
    /// JSON rules that decide every member's permission requests.
    pub permission_rules: Option<String>,
}

/// A seat on a team, and the instance currently filling it (if it was started).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeamMember {
    pub team_id: String,
    pub name: String,
    pub role: String,
    pub agent: String,
    pub model: String,
    pub system_prompt: String,
    pub instance_id: Option<String>,
    /// The member's permission mode; None: the server's.
    pub permission_mode: Option<String>,
    /// The member works in a git worktree of its own (from the team's project_dir).
    pub use_worktree: bool,
    /// Where the member runs in a fleet: a host's name or `label:NAME`; None: as any spawn.
    pub host: Option<String>,
}

impl Team {
    /// The team and all its seats, or nothing: a create that fails leaves no half a team.
    pub async fn insert_with_members(
        db: &super::Db,
        id: &str,
        name: &str,
        description: &str,
        project_dir: Option<&str>,
        members: &[TeamMember],
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let mut tx = pool.begin().await?;
                sqlx::query!(
                    "INSERT INTO teams (id, name, description, created_at, project_dir) VALUES (?, ?, ?, ?, ?)",
                    id,
                    name,
                    description,
                    now,
                    project_dir
                )
                .execute(&mut *tx)
                .await?;
                for m in members {
                    sqlx::query!(
                        "INSERT INTO team_members (team_id, name, role, agent, model, system_prompt,
                             permission_mode, use_worktree, host)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        m.team_id,
                        m.name,
                        m.role,
                        m.agent,
                        m.model,
                        m.system_prompt,
                        m.permission_mode,
                        m.use_worktree,
                        m.host
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                let mut tx = pool.begin().await?;
                sqlx::query!(
                    "INSERT INTO teams (id, name, description, created_at, project_dir) VALUES ($1, $2, $3, $4, $5) /* postgres */",
                    id,
                    name,
                    description,
                    now,
                    project_dir
                )
                .execute(&mut *tx)
                .await?;
                for m in members {
                    sqlx::query!(
                        "INSERT INTO team_members (team_id, name, role, agent, model, system_prompt,
                             permission_mode, use_worktree, host)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) /* postgres */",
                        m.team_id,
                        m.name,
                        m.role,
                        m.agent,
                        m.model,
                        m.system_prompt,
                        m.permission_mode,
                        m.use_worktree,
                        m.host
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                db.written();
                Ok(())
            },
        )
    }

    pub async fn set_permission_rules(db: &super::Db, id: &str, rules: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "UPDATE teams SET permission_rules = ? WHERE id = ?",
                    rules,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE teams SET permission_rules = $1 WHERE id = $2 /* postgres */",
                    rules,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    pub async fn set_project_dir(db: &super::Db, id: &str, dir: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!("UPDATE teams SET project_dir = ? WHERE id = ?", dir, id)
                    .execute(pool)
                    .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!("UPDATE teams SET project_dir = $1 WHERE id = $2 /* postgres */", dir, id)
                    .execute(pool)
                    .await?;
                db.written();
                Ok(())
            },
        )
    }

    pub async fn find_by_id(db: &super::Db, id: &str) -> sqlx::Result<Option<Team>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(Team, "SELECT * FROM teams WHERE id = ?", id)
                    .fetch_optional(pool)
                    .await
            },
            postgres: |pool| {
                sqlx::query_as!(Team, "SELECT * FROM teams WHERE id = $1 /* postgres */", id)
                    .fetch_optional(pool)
                    .await
            },
        )
    }

    /// The team of that name that has not been dissolved.
    pub async fn find_by_name(db: &super::Db, name: &str) -> sqlx::Result<Option<Team>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Team,
                    "SELECT * FROM teams WHERE name = ? AND dissolved_at IS NULL",
                    name
                )
                .fetch_optional(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Team,
                    "SELECT * FROM teams WHERE name = $1 AND dissolved_at IS NULL /* postgres */",
                    name
                )
                .fetch_optional(pool)
                .await
            },
        )
    }

    pub async fn list(db: &super::Db) -> sqlx::Result<Vec<Team>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Team,
                    "SELECT * FROM teams WHERE dissolved_at IS NULL ORDER BY created_at, name"
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Team,
                    "SELECT * FROM teams WHERE dissolved_at IS NULL ORDER BY created_at, name /* postgres */"
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// Marks the team dissolved and frees its name for a new team.
    pub async fn dissolve(db: &super::Db, id: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let renamed = format!("{id}:dissolved");
                sqlx::query!(
                    "UPDATE teams SET dissolved_at = ?, name = name || ':' || ? WHERE id = ?",
                    now,
                    renamed,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                let renamed = format!("{id}:dissolved");
                sqlx::query!(
                    "UPDATE teams SET dissolved_at = $1, name = name || ':' || $2 WHERE id = $3 /* postgres */",
                    now,
                    renamed,
                    id
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }
}

impl TeamMember {
    pub async fn for_team(db: &super::Db, team_id: &str) -> sqlx::Result<Vec<TeamMember>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    TeamMember,
                    "SELECT * FROM team_members WHERE team_id = ? ORDER BY rowid",
                    team_id
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    TeamMember,
                    "SELECT team_id, name, role, agent, model, system_prompt, instance_id, use_worktree,
                            permission_mode, host
                     FROM team_members WHERE team_id = $1 ORDER BY seat /* postgres */",
                    team_id
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    pub async fn set_instance(
        db: &super::Db,
        team_id: &str,
        name: &str,
        instance_id: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "UPDATE team_members SET instance_id = ? WHERE team_id = ? AND name = ?",
                    instance_id,
                    team_id,
                    name
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE team_members SET instance_id = $1 WHERE team_id = $2 AND name = $3 /* postgres */",
                    instance_id,
                    team_id,
                    name
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }
}
