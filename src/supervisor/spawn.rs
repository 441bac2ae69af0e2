//! Spawning: a request is planned (see [`super::spawn_plan`]), counted against the limits
//! that need the database, written, and launched.

use super::*;

impl Supervisor {
    /// Starts an instance (Claude Code unless the request names another agent) and returns
    /// once it is ready for messages.
    pub async fn spawn(&self, mut req: SpawnRequest, caller: Option<&str>) -> Result<Instance> {
        let host = self.placement(&req, caller).await?;
        if host != self.shared.config.host {
            // Named, so the owner does not place it again (a label could pick another host).
            req.host = Some(host.clone());
            let parent = req
                .parent_instance_id
                .clone()
                .or(caller.map(str::to_string))
                .unwrap_or_default();
            let act = crate::handover::Act::Spawn {
                request: Box::new(req),
            };
            let id: String = self.hand_over(&host, &parent, caller, act).await?;
            return Instance::find(self.pool(), &id)
                .await?
                .ok_or(Error::UnknownInstance(id));
        }
        let (sup, caller) = (self.clone(), caller.map(str::to_string));
        to_the_end(async move { sup.spawn_now(req, caller.as_deref()).await }).await
    }

    pub(super) async fn spawn_now(
        &self,
        req: SpawnRequest,
        caller: Option<&str>,
    ) -> Result<Instance> {
        let settings = self.settings();
        self.check_enabled(&settings)?;
        let (plan, parent, asked_dir) = self.plan_spawn(&req, &settings, caller).await?;
        if let Some(p) = &parent {
            self.check_tree_limits(p).await?;
        }
        self.check_room(&settings).await?;
        self.check_spending(&settings).await?;

        let name = plan.name.as_deref();
        let id = new_instance_id(self.pool(), name.unwrap_or(&plan.role.slug)).await?;
        let (workdir, worktree) = self
            .place(&id, asked_dir, parent.as_deref(), req.use_worktree)
            .await?;
        let inst = self
            .record_spawn(&id, &plan, &workdir, parent.as_deref(), caller)
            .await?;
        if let Some(wt) = &worktree
            && let Err(e) = self
                .make_worktree(wt, &id, name.unwrap_or(&id), caller)
                .await
        {
            self.spawn_failed(&id, caller, &format!("could not make its worktree: {e}"))
                .await;
            return Err(e);
        }
        if let Err(e) = self.launch(&inst, Launch::New).await {
            self.spawn_failed(&id, caller, &e.to_string()).await;
            let _ = self.shared.tmux.kill_session(&inst.tmux_session).await;
            return Err(e);
        }
        self.shared.notice(
            "spawn",
            format!(
                "spawned {id} ({}, {} {}) in {}",
                plan.role.name,
                plan.agent.name(),
                plan.model,
                workdir.display()
            ),
        );
        Instance::find(self.pool(), &id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.clone()))
    }

    /// The request's plan, after looking up its parent (which must exist), its directory and
    /// the instance that asks; also the parent and the directory asked for.
    async fn plan_spawn(
        &self,
        req: &SpawnRequest,
        settings: &crate::settings::Settings,
        caller: Option<&str>,
    ) -> Result<(spawn_plan::SpawnPlan, Option<String>, Option<PathBuf>)> {
        let config = &self.shared.config;
        let parent = req
            .parent_instance_id
            .as_deref()
            .or(caller)
            .map(str::to_string);
        if let Some(p) = &parent
            && !Instance::exists(self.pool(), p).await?
        {
            return Err(Error::InvalidInput(format!(
                "parent instance {p} does not exist"
            )));
        }
        let workdir = match req
            .project_dir
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(dir) => Some(project_dir(dir)?),
            None => None,
        };
        let spawned_by = match (caller, &parent) {
            (Some(_), Some(p)) => Instance::find(self.pool(), p).await?,
            _ => None,
        };
        let by = spawned_by.as_ref().map(|by| {
            let theirs = PathBuf::from(&by.workdir);
            spawn_plan::SpawnedBy {
                id: &by.id,
                permission_mode: by.permission_mode,
                sandbox_mode: by.sandbox_mode.as_deref(),
                workdir: theirs.canonicalize().unwrap_or(theirs),
            }
        });
        let rules = spawn_plan::Rules {
            default_mode: config.permission_mode,
            codex_missing: config.codex_missing.as_deref(),
            allow_dirs: &config.allow_dirs,
        };
        let plan = spawn_plan::plan(
            req,
            settings,
            &self.shared.agents,
            &rules,
            by.as_ref(),
            workdir.as_deref(),
        )?;
        Ok((plan, parent, workdir))
    }

    /// Where the new instance works: the directory asked for, else its parent's, else a
    /// workspace of its own; in a worktree of that directory's repository when asked (planned
    /// now, made once the row is written, so every check that can refuse runs first).
    async fn place(
        &self,
        id: &str,
        asked: Option<PathBuf>,
        parent: Option<&str>,
        use_worktree: bool,
    ) -> Result<(PathBuf, Option<super::worktrees::WorktreePlan>)> {
        let workdir = match (asked, parent) {
            (Some(dir), _) => Some(dir),
            (None, Some(p)) => Instance::find(self.pool(), p)
                .await?
                .map(|i| PathBuf::from(i.workdir))
                .filter(|d| d.is_dir()),
            (None, None) => None,
        };
        let worktree = match (use_worktree, &workdir) {
            (false, _) => None,
            (true, Some(dir)) => Some(self.plan_worktree(dir, id).await?),
            (true, None) => {
                return Err(Error::InvalidInput(
                    "use_worktree needs a project_dir: the absolute path of a directory in \
                     the git repository the instance should work on"
                        .into(),
                ));
            }
        };
        let workdir = match (&worktree, workdir) {
            (Some(plan), _) => plan.workdir.clone(),
            (None, Some(dir)) => dir,
            (None, None) => {
                let dir = self.shared.config.data_dir.join("workspaces").join(id);
                std::fs::create_dir_all(&dir)?;
                dir.canonicalize()?
            }
        };
        Ok((workdir, worktree))
    }

    /// Writes the new instance's row, logs and audits it.
    async fn record_spawn(
        &self,
        id: &str,
        plan: &spawn_plan::SpawnPlan,
        workdir: &Path,
        parent: Option<&str>,
        caller: Option<&str>,
    ) -> Result<Instance> {
        let agent = &plan.agent;
        // A CLI that names its own sessions reports the id with its first prompt.
        let session_id = if agent.habits().session_id_chosen {
            uuid::Uuid::new_v4().to_string()
        } else {
            String::new()
        };
        let workdir = workdir.display().to_string();
        Instance::insert(
            self.pool(),
            &NewInstance {
                id,
                name: plan.name.as_deref().unwrap_or(id),
                agent: agent.name(),
                model: &plan.model,
                role: &plan.role.name,
                system_prompt: &plan.system_prompt,
                workdir: &workdir,
                permission_mode: plan.permission_mode.as_str(),
                parent_id: parent,
                tmux_session: &format!("troupe-{id}"),
                agent_session_id: &session_id,
                sandbox_mode: plan.sandbox_mode.as_deref(),
                permission_rules: plan.permission_rules.as_deref(),
                host: &self.config().host,
            },
        )
        .await?;
        tracing::info!(
            instance = %id,
            agent = agent.name(),
            role = %plan.role.name,
            model = %plan.model,
            parent = parent.unwrap_or("-"),
            "spawning in {workdir}"
        );
        audit::record(
            self.pool(),
            caller,
            Some(id),
            "instance.spawn",
            json!({ "agent": agent.name(), "role": plan.role.name, "model": plan.model, "workdir": workdir, "parent": parent }),
        )
        .await;
        Instance::find(self.pool(), id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.to_string()))
    }

    /// A spawn that failed after its row was written: the instance is failed, and audited.
    async fn spawn_failed(&self, id: &str, caller: Option<&str>, reason: &str) {
        self.shared.instance_failed(id, reason).await;
        audit::record(
            self.pool(),
            caller,
            Some(id),
            "instance.failed",
            json!({ "reason": reason }),
        )
        .await;
    }

    /// Refuses a new instance when `max_instances` are live.
    pub(super) async fn check_room(&self, settings: &crate::settings::Settings) -> Result<()> {
        self.check_not_draining().await?;
        let max = settings.max_instances.value;
        let live = Instance::count_live(&self.shared.pool).await?;
        if live >= max as i64 {
            return Err(Error::Limit(format!(
                "{live} instances are running (max_instances = {max}, set in {}); terminate \
                 some first, or raise it with configure_orchestration(max_instances=...)",
                controls::source_words(settings.max_instances.source)
            )));
        }
        Ok(())
    }
}

/// Names go into tmux session names, file paths and ids: keep them to a safe alphabet.
pub(super) fn validate_name(name: &str) -> Result<String> {
    let ok = name.len() <= 40
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(Error::InvalidInput(format!(
            "name {name:?} is not usable: use 1-40 letters, digits, '-' or '_', starting with a \
             letter or digit"
        )))
    }
}

pub(super) fn project_dir(dir: &str) -> Result<PathBuf> {
    let path = Path::new(dir);
    if !path.is_absolute() {
        return Err(Error::InvalidInput(format!(
            "project_dir {dir:?} must be an absolute path"
        )));
    }
    match path.canonicalize() {
        Ok(p) if p.is_dir() => Ok(p),
        Ok(_) => Err(Error::InvalidInput(format!(
            "project_dir {dir:?} is not a directory"
        ))),
        Err(e) => Err(Error::InvalidInput(format!("project_dir {dir:?}: {e}"))),
    }
}

pub(super) async fn new_instance_id(pool: &crate::db::Db, base: &str) -> Result<String> {
    loop {
        let suffix: u16 = rand::random();
        let id = format!("{base}-{suffix:04x}");
        if !Instance::exists(pool, &id).await? {
            return Ok(id);
        }
    }
}
