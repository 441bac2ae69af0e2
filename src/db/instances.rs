use crate::agents::AgentKind;
use crate::config::PermissionMode;
use crate::states::InstanceState;

/// One CLI instance troupe started: its identity, where it runs, and what it is doing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub agent: AgentKind,
    pub model: String,
    pub role: String,
    pub system_prompt: String,
    pub workdir: String,
    pub permission_mode: PermissionMode,
    pub parent_id: Option<String>,
    pub team_id: Option<String>,
    pub tmux_session: String,
    pub agent_session_id: String,
    pub transcript_path: Option<String>,
    pub state: InstanceState,
    pub state_reason: String,
    pub state_since: String,
    pub created_at: String,
    pub terminated_at: Option<String>,
    pub sandbox_mode: Option<String>,
    /// JSON `{"allow": [...], "deny": [...]}`: rules that decide its permission requests.
    pub permission_rules: Option<String>,
    /// The host that runs it (its tmux session, CLI, hooks and transcript are there).
    pub host: String,
}

/// What a spawn writes before anything is started.
pub struct NewInstance<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub agent: &'a str,
    pub model: &'a str,
    pub role: &'a str,
    pub system_prompt: &'a str,
    pub workdir: &'a str,
    pub permission_mode: &'a str,
    pub parent_id: Option<&'a str>,
    pub tmux_session: &'a str,
    pub agent_session_id: &'a str,
    pub sandbox_mode: Option<&'a str>,
    pub permission_rules: Option<&'a str>,
    pub host: &'a str,
}

impl Instance {
    pub async fn insert(db: &super::Db, new: &NewInstance<'_>) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO instances (id, name, agent, model, role, system_prompt, workdir, permission_mode,
                        parent_id, tmux_session, agent_session_id, sandbox_mode, permission_rules, state,
                        state_since, created_at, host)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'starting', ?, ?, ?)",
                    new.id,
                    new.name,
                    new.agent,
                    new.model,
                    new.role,
                    new.system_prompt,
                    new.workdir,
                    new.permission_mode,
                    new.parent_id,
                    new.tmux_session,
                    new.agent_session_id,
                    new.sandbox_mode,
                    new.permission_rules,
                    now,
                    now,
                    new.host,
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
            postgres: |pool| {
                let now = super::now();
                sqlx::query!(
                    "INSERT INTO instances (id, name, agent, model, role, system_prompt, workdir, permission_mode,
                        parent_id, tmux_session, agent_session_id, sandbox_mode, permission_rules, state,
                        state_since, created_at, host)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'starting', $14, $15, $16) /* postgres */",
                    new.id,
                    new.name,
                    new.agent,
                    new.model,
                    new.role,
                    new.system_prompt,
                    new.workdir,
                    new.permission_mode,
                    new.parent_id,
                    new.tmux_session,
                    new.agent_session_id,
                    new.sandbox_mode,
                    new.permission_rules,
                    now,
                    now,
                    new.host,
                )
                .execute(pool)
                .await?;
                db.written();
                Ok(())
            },
        )
    }

    pub async fn find(db: &super::Db, id: &str) -> sqlx::Result<Option<Instance>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(Instance, "SELECT * FROM instances WHERE id = ?", id)
                    .fetch_optional(pool)
                    .await
            },
            postgres: |pool| {
                sqlx::query_as!(Instance, "SELECT * FROM instances WHERE id = $1 /* postgres */", id)
                    .fetch_optional(pool)
                    .await
            },
        )
    }

    pub async fn exists(db: &super::Db, id: &str) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let row = sqlx::query_scalar!("SELECT COUNT(*) FROM instances WHERE id = ?", id)
                    .fetch_one(pool)
                    .await?;
                Ok(row > 0)
            },
            postgres: |pool| {
                let row = sqlx::query_scalar!("SELECT COUNT(*) AS \"n!\" FROM instances WHERE id = $1 /* postgres */", id)
                    .fetch_one(pool)
                    .await?;
                Ok(row > 0)
            },
        )
    }

    /// Every instance, oldest first; terminated ones only when asked for.
    pub async fn list(db: &super::Db, include_terminated: bool) -> sqlx::Result<Vec<Instance>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE ? OR state NOT IN ('terminated', 'failed')
                     ORDER BY created_at, id",
                    include_terminated
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE $1 OR state NOT IN ('terminated', 'failed')
                     ORDER BY created_at, id /* postgres */",
                    include_terminated
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    pub async fn count_live(db: &super::Db) -> sqlx::Result<i64> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_scalar!(
                    "SELECT COUNT(*) FROM instances WHERE state NOT IN ('terminated', 'failed')"
                )
                .fetch_one(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_scalar!(
                    "SELECT COUNT(*) AS \"n!\" FROM instances WHERE state NOT IN ('terminated', 'failed') /* postgres */"
                )
                .fetch_one(pool)
                .await
            },
        )
    }

    /// Records a state change; `since` moves only when the state really changes.
    pub async fn set_state(
        db: &super::Db,
        id: &str,
        state: InstanceState,
        reason: &str,
    ) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                let now = super::now();
                let state = state.as_str();
                sqlx::query!(
                    "UPDATE instances SET
                        state_since = CASE WHEN state = ? THEN state_since ELSE ? END,
                        state = ?, state_reason = ?,
                        terminated_at = CASE WHEN ? IN ('terminated', 'failed') THEN ? ELSE terminated_at END
                     WHERE id = ?",
                    state,
                    now,
                    state,
                    reason,
                    state,
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
                let state = state.as_str();
                sqlx::query!(
                    "UPDATE instances SET
                        state_since = CASE WHEN state = $1 THEN state_since ELSE $2 END,
                        state = $3, state_reason = $4,
                        terminated_at = CASE WHEN $5 IN ('terminated', 'failed') THEN $6 ELSE terminated_at END
                     WHERE id = $7 /* postgres */",
                    state,
                    now,
                    state,
                    reason,
                    state,
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

    /// Instances a restart should bring back: everything not ended, not suspended, and not
    /// exited (those come back on resume_instance or their next message).
    /// This host's instances that should be running.
    pub async fn recoverable(db: &super::Db, host: &str) -> sqlx::Result<Vec<Instance>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances
                     WHERE state NOT IN ('terminated', 'failed', 'suspended', 'exited', 'attached')
                       AND host = ?
                     ORDER BY created_at, id",
                    host
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances
                     WHERE state NOT IN ('terminated', 'failed', 'suspended', 'exited', 'attached')
                       AND host = $1
                     ORDER BY created_at, id /* postgres */",
                    host
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// The instances `host` runs that have not ended, oldest first.
    pub async fn unended_on(db: &super::Db, host: &str) -> sqlx::Result<Vec<Instance>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE host = ? AND state NOT IN ('terminated', 'failed')
                     ORDER BY created_at, id",
                    host
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE host = $1 AND state NOT IN ('terminated', 'failed')
                     ORDER BY created_at, id /* postgres */",
                    host
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// This host's sessions attached by `troupe chat` and not ended.
    pub async fn attached(db: &super::Db, host: &str) -> sqlx::Result<Vec<Instance>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE state = 'attached' AND host = ?
                     ORDER BY created_at, id",
                    host
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE state = 'attached' AND host = $1
                     ORDER BY created_at, id /* postgres */",
                    host
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    /// Direct children, oldest first; ended ones only when asked for.
    pub async fn children(
        db: &super::Db,
        parent: &str,
        include_ended: bool,
    ) -> sqlx::Result<Vec<Instance>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE parent_id = ? AND (? OR state NOT IN ('terminated', 'failed'))
                     ORDER BY created_at, id",
                    parent,
                    include_ended
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Instance,
                    "SELECT * FROM instances WHERE parent_id = $1 AND ($2 OR state NOT IN ('terminated', 'failed'))
                     ORDER BY created_at, id /* postgres */",
                    parent,
                    include_ended
                )
                .fetch_all(pool)
                .await
            },
        )
    }

    pub async fn set_team(db: &super::Db, id: &str, team_id: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!("UPDATE instances SET team_id = ? WHERE id = ?", team_id, id)
                    .execute(pool)
                    .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!("UPDATE instances SET team_id = $1 WHERE id = $2 /* postgres */", team_id, id)
                    .execute(pool)
                    .await?;
                Ok(())
            },
        )
    }

    pub async fn set_transcript_path(db: &super::Db, id: &str, path: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "UPDATE instances SET transcript_path = ? WHERE id = ?",
                    path,
                    id
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE instances SET transcript_path = $1 WHERE id = $2 /* postgres */",
                    path,
                    id
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }

    /// The CLI session a CLI that names its own sessions reported, the first time one does.
    /// Returns false when the instance already has one.
    pub async fn adopt_agent_session(
        db: &super::Db,
        id: &str,
        session_id: &str,
    ) -> sqlx::Result<bool> {
        super::on!(db,
            sqlite: |pool| {
                let done = sqlx::query!(
                    "UPDATE instances SET agent_session_id = ? WHERE id = ? AND agent_session_id = ''",
                    session_id,
                    id
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            },
            postgres: |pool| {
                let done = sqlx::query!(
                    "UPDATE instances SET agent_session_id = $1 WHERE id = $2 AND agent_session_id = '' /* postgres */",
                    session_id,
                    id
                )
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            },
        )
    }

    /// A new CLI session for an instance whose earlier one never held a conversation: the
    /// CLI refuses to start a session id that already has a file.
    pub async fn set_agent_session(db: &super::Db, id: &str, session_id: &str) -> sqlx::Result<()> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query!(
                    "UPDATE instances SET agent_session_id = ?, transcript_path = NULL WHERE id = ?",
                    session_id,
                    id
                )
                .execute(pool)
                .await?;
                Ok(())
            },
            postgres: |pool| {
                sqlx::query!(
                    "UPDATE instances SET agent_session_id = $1, transcript_path = NULL WHERE id = $2 /* postgres */",
                    session_id,
                    id
                )
                .execute(pool)
                .await?;
                Ok(())
            },
        )
    }
}
