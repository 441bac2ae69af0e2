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

/// What a listing shows of an instance: [`Instance`] without its long or private columns
/// (system prompt, session id, transcript path, rules), so a list of hundreds reads and
/// copies only what it returns.
#[derive(Debug, Clone)]
pub struct Summary {
    pub id: String,
    pub name: String,
    pub agent: AgentKind,
    pub model: String,
    pub role: String,
    pub workdir: String,
    pub permission_mode: PermissionMode,
    pub parent_id: Option<String>,
    pub tmux_session: String,
    pub state: InstanceState,
    pub state_reason: String,
    pub state_since: String,
    pub created_at: String,
    pub host: String,
}

impl From<Instance> for Summary {
    fn from(i: Instance) -> Self {
        Summary {
            id: i.id,
            name: i.name,
            agent: i.agent,
            model: i.model,
            role: i.role,
            workdir: i.workdir,
            permission_mode: i.permission_mode,
            parent_id: i.parent_id,
            tmux_session: i.tmux_session,
            state: i.state,
            state_reason: i.state_reason,
            state_since: i.state_since,
            created_at: i.created_at,
            host: i.host,
        }
    }
}

/// The last listing read, for each of its two forms (live only, or every instance), with the
/// version of the rows it was read at. A write bumps the version after it commits, and a
/// listing is kept under the version read before its query, so a kept listing is never older
/// than its version. Only an SQLite registry keeps one: there this server is the only writer,
/// while a shared PostgreSQL registry has other hosts writing.
/// A listing and the version of the rows it was read at.
type Kept = (u64, std::sync::Arc<Vec<Summary>>);

#[derive(Debug, Default)]
pub(crate) struct Listing {
    version: std::sync::atomic::AtomicU64,
    kept: std::sync::Mutex<[Option<Kept>; 2]>,
    /// Held by the one caller reading the rows, so callers that find nothing kept wait for
    /// its read instead of each making the same one.
    reading: tokio::sync::Mutex<()>,
}

impl Listing {
    pub(crate) fn changed(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self, all: bool, version: u64) -> Option<std::sync::Arc<Vec<Summary>>> {
        let kept = self.kept.lock().expect("listing poisoned");
        kept[all as usize]
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, rows)| rows.clone())
    }

    fn keep(&self, all: bool, version: u64, rows: std::sync::Arc<Vec<Summary>>) {
        let mut kept = self.kept.lock().expect("listing poisoned");
        let slot = &mut kept[all as usize];
        if slot.as_ref().is_none_or(|(v, _)| *v < version) {
            *slot = Some((version, rows));
        }
    }
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
                db.instances_changed();
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
                db.instances_changed();
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

    /// [`Instance::list`] as [`Summary`] rows, read once between two writes of them (see
    /// [`Listing`]): many callers listing hundreds of instances cost one query.
    pub async fn list_summaries(
        db: &super::Db,
        include_terminated: bool,
    ) -> sqlx::Result<std::sync::Arc<Vec<Summary>>> {
        if db.is_shared() {
            return Ok(std::sync::Arc::new(
                Self::read_summaries(db, include_terminated).await?,
            ));
        }
        let listing = &db.listing;
        if let Some(rows) = listing.get(include_terminated, listing.version()) {
            return Ok(rows);
        }
        let _reading = listing.reading.lock().await;
        let version = listing.version();
        if let Some(rows) = listing.get(include_terminated, version) {
            return Ok(rows);
        }
        let rows = std::sync::Arc::new(Self::read_summaries(db, include_terminated).await?);
        listing.keep(include_terminated, version, rows.clone());
        Ok(rows)
    }

    /// Which state of the instance rows [`Instance::list_summaries`] would read now: it
    /// changes with every write to them. None where other hosts write them too (a shared
    /// registry), so nothing can be kept between reads.
    pub fn listing_version(db: &super::Db) -> Option<u64> {
        (!db.is_shared()).then(|| db.listing.version())
    }

    async fn read_summaries(
        db: &super::Db,
        include_terminated: bool,
    ) -> sqlx::Result<Vec<Summary>> {
        super::on!(db,
            sqlite: |pool| {
                sqlx::query_as!(
                    Summary,
                    "SELECT id, name, agent, model, role, workdir, permission_mode, parent_id,
                            tmux_session, state, state_reason, state_since, created_at, host
                     FROM instances WHERE ? OR state NOT IN ('terminated', 'failed')
                     ORDER BY created_at, id",
                    include_terminated
                )
                .fetch_all(pool)
                .await
            },
            postgres: |pool| {
                sqlx::query_as!(
                    Summary,
                    "SELECT id, name, agent, model, role, workdir, permission_mode, parent_id,
                            tmux_session, state, state_reason, state_since, created_at, host
                     FROM instances WHERE $1 OR state NOT IN ('terminated', 'failed')
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
                db.instances_changed();
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
                db.instances_changed();
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
        .inspect(|_| db.rows_written())
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
        .inspect(|_| db.rows_written())
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
        .inspect(|_| db.rows_written())
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
        .inspect(|_| db.rows_written())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rows(name: &str) -> Arc<Vec<Summary>> {
        Arc::new(vec![Summary {
            id: name.into(),
            name: name.into(),
            agent: AgentKind::Claude,
            model: String::new(),
            role: String::new(),
            workdir: String::new(),
            permission_mode: PermissionMode::Skip,
            parent_id: None,
            tmux_session: String::new(),
            state: InstanceState::Idle,
            state_reason: String::new(),
            state_since: String::new(),
            created_at: String::new(),
            host: String::new(),
        }])
    }

    #[test]
    fn a_listing_is_served_only_at_the_version_it_was_read_at() {
        let l = Listing::default();
        let v = l.version();
        assert!(l.get(false, v).is_none(), "nothing read yet");
        l.keep(false, v, rows("a"));
        assert_eq!(l.get(false, v).unwrap()[0].id, "a");
        assert!(l.get(true, v).is_none(), "each form is kept apart");
        l.changed();
        assert!(l.get(false, l.version()).is_none(), "a write ends it");
    }

    /// An answer kept under `rows_version` (`GET /api/instances`) is current only if every
    /// write to what it shows moves the version, those no event or listing follows too.
    #[tokio::test]
    async fn every_write_to_an_instance_or_its_usage_moves_the_rows_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(&dir.path().join("t.db"), std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let mut version = db.rows_version().expect("SQLite is not shared");
        let mut moved = |what: &str| {
            let now = db.rows_version().unwrap();
            assert!(now > version, "{what} did not move the rows version");
            version = now;
        };
        Instance::insert(
            &db,
            &NewInstance {
                id: "dev-1",
                name: "dev",
                agent: "claude",
                model: "sonnet",
                role: "developer",
                system_prompt: "",
                workdir: "/tmp",
                permission_mode: "skip",
                parent_id: None,
                tmux_session: "troupe-dev-1",
                agent_session_id: "",
                sandbox_mode: None,
                permission_rules: None,
                host: "h",
            },
        )
        .await
        .unwrap();
        moved("insert");
        Instance::set_state(&db, "dev-1", InstanceState::Idle, "ready")
            .await
            .unwrap();
        moved("set_state");
        Instance::set_transcript_path(&db, "dev-1", "/tmp/t.jsonl")
            .await
            .unwrap();
        moved("set_transcript_path");
        assert!(
            Instance::adopt_agent_session(&db, "dev-1", "s-1")
                .await
                .unwrap()
        );
        moved("adopt_agent_session");
        Instance::set_agent_session(&db, "dev-1", "s-2")
            .await
            .unwrap();
        moved("set_agent_session");
        crate::db::teams::Team::insert_with_members(&db, "team-1", "crew", "", None, &[])
            .await
            .unwrap();
        moved("a team");
        Instance::set_team(&db, "dev-1", "team-1").await.unwrap();
        moved("set_team");
        crate::db::usage::UsageRecord::insert(
            &db,
            &crate::db::usage::NewUsage {
                instance_id: "dev-1",
                message_id: None,
                source_id: "req-1",
                model: "claude-sonnet-4-5",
                input_tokens: 1,
                output_tokens: 2,
                cache_creation_tokens: 0,
                cache_read_tokens: 0,
                cost_micros: Some(3),
            },
        )
        .await
        .unwrap();
        moved("a usage record");
        db.close().await;
    }

    #[test]
    fn a_listing_read_before_a_write_does_not_replace_one_read_after() {
        let l = Listing::default();
        let before = l.version();
        l.changed();
        let after = l.version();
        l.keep(false, after, rows("new"));
        // A slow reader that began before the write finishes last.
        l.keep(false, before, rows("old"));
        assert_eq!(l.get(false, after).unwrap()[0].id, "new");
        assert!(l.get(false, before).is_none());
    }
}
