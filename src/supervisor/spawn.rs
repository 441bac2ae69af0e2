//! Spawning: a request is planned (see [`super::spawn_plan`]), counted against the limits
//! that need the database, written, and launched.

use super::*;

impl Supervisor {
    /// Starts an instance (Claude Code unless the request names another agent) and returns
    /// once it is ready for messages.
    pub async fn spawn(&self, req: SpawnRequest, caller: Option<&str>) -> Result<Instance> {
        let (sup, caller) = (self.clone(), caller.map(str::to_string));
        to_the_end(async move { sup.spawn_now(req, caller.as_deref()).await }).await
    }

    pub(super) async fn spawn_now(
        &self,
        req: SpawnRequest,
        caller: Option<&str>,
    ) -> Result<Instance> {
        let shared = &self.shared;
        let config = &shared.config;
        let settings = self.settings();
        self.check_enabled(&settings)?;
        let parent = req
            .parent_instance_id
            .as_deref()
            .or(caller)
            .map(str::to_string);
        if let Some(p) = &parent
            && !Instance::exists(&shared.pool, p).await?
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
            (Some(_), Some(p)) => Instance::find(&shared.pool, p).await?,
            _ => None,
        };
        let by = spawned_by.as_ref().map(|by| {
            let theirs = PathBuf::from(&by.workdir);
            spawn_plan::SpawnedBy {
                id: &by.id,
                permission_mode: <PermissionMode as clap::ValueEnum>::from_str(
                    &by.permission_mode,
                    true,
                )
                .unwrap_or(config.permission_mode),
                sandbox_mode: by.sandbox_mode.as_deref(),
                workdir: theirs.canonicalize().unwrap_or(theirs),
            }
        });
        let rules = spawn_plan::Rules {
            default_mode: config.permission_mode,
            codex_missing: config.codex_missing.as_deref(),
            allow_dirs: &config.allow_dirs,
        };
        let spawn_plan::SpawnPlan {
            agent,
            model,
            name,
            role,
            system_prompt,
            permission_mode,
            sandbox_mode,
            permission_rules,
        } = spawn_plan::plan(
            &req,
            &settings,
            &shared.agents,
            &rules,
            by.as_ref(),
            workdir.as_deref(),
        )?;
        let sandbox_mode = sandbox_mode.as_deref();
        let role_name = role.name.clone();
        if let Some(p) = &parent {
            self.check_tree_limits(p).await?;
        }
        self.check_room(&settings).await?;
        self.check_spending(&settings).await?;

        let id = new_instance_id(&shared.pool, name.as_deref().unwrap_or(&role.slug)).await?;
        // A helper works where its parent works, unless told otherwise.
        let workdir = match workdir {
            Some(dir) => Some(dir),
            None => match &parent {
                Some(p) => Instance::find(&shared.pool, p)
                    .await?
                    .map(|i| PathBuf::from(i.workdir))
                    .filter(|d| d.is_dir()),
                None => None,
            },
        };
        // A worktree of its own, made from that directory's repository once the row is
        // written; every check that can refuse runs now, before anything is.
        let worktree = match (req.use_worktree, &workdir) {
            (false, _) => None,
            (true, Some(dir)) => Some(self.plan_worktree(dir, &id).await?),
            (true, None) => {
                return Err(Error::InvalidInput(
                    "use_worktree needs a project_dir: the absolute path of a directory in \
                     the git repository the instance should work on"
                        .into(),
                ));
            }
        };
        let workdir = match &worktree {
            Some(plan) => Some(plan.workdir.clone()),
            None => workdir,
        };
        let workdir = match workdir {
            Some(dir) => dir,
            None => {
                let dir = config.data_dir.join("workspaces").join(&id);
                std::fs::create_dir_all(&dir)?;
                dir.canonicalize()?
            }
        };
        // A CLI that names its own sessions reports the id with its first prompt.
        let session_id = if agent.habits().session_id_chosen {
            uuid::Uuid::new_v4().to_string()
        } else {
            String::new()
        };
        let tmux_session = format!("troupe-{id}");
        let workdir_str = workdir.display().to_string();

        Instance::insert(
            &shared.pool,
            &NewInstance {
                id: &id,
                name: name.as_deref().unwrap_or(&id),
                agent: agent.name(),
                model: &model,
                role: &role_name,
                system_prompt: &system_prompt,
                workdir: &workdir_str,
                permission_mode: permission_mode.as_str(),
                parent_id: parent.as_deref(),
                tmux_session: &tmux_session,
                agent_session_id: &session_id,
                sandbox_mode,
                permission_rules: permission_rules.as_deref(),
            },
        )
        .await?;
        tracing::info!(
            instance = %id,
            agent = agent.name(),
            role = %role_name,
            model = %model,
            parent = parent.as_deref().unwrap_or("-"),
            "spawning in {workdir_str}"
        );
        audit::record(
            &shared.pool,
            caller,
            Some(&id),
            "instance.spawn",
            json!({ "agent": agent.name(), "role": role_name, "model": model, "workdir": workdir_str, "parent": parent }),
        )
        .await;

        if let Some(plan) = &worktree
            && let Err(e) = self
                .make_worktree(plan, &id, name.as_deref().unwrap_or(&id), caller)
                .await
        {
            let reason = format!("could not make its worktree: {e}");
            shared.instance_failed(&id, &reason).await;
            audit::record(
                &shared.pool,
                caller,
                Some(&id),
                "instance.failed",
                json!({ "reason": reason }),
            )
            .await;
            return Err(e);
        }
        let inst = Instance::find(&shared.pool, &id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.clone()))?;
        match self.launch(&inst, Launch::New).await {
            Ok(()) => shared.notice(
                "spawn",
                format!(
                    "spawned {id} ({role_name}, {} {model}) in {workdir_str}",
                    agent.name()
                ),
            ),
            Err(e) => {
                let reason = e.to_string();
                shared.instance_failed(&id, &reason).await;
                let _ = shared.tmux.kill_session(&tmux_session).await;
                audit::record(
                    &shared.pool,
                    caller,
                    Some(&id),
                    "instance.failed",
                    json!({ "reason": reason }),
                )
                .await;
                return Err(e);
            }
        }
        Instance::find(&shared.pool, &id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.clone()))
    }

    /// Refuses a new instance when `max_instances` are live.
    pub(super) async fn check_room(&self, settings: &crate::settings::Settings) -> Result<()> {
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

pub(super) async fn new_instance_id(pool: &SqlitePool, base: &str) -> Result<String> {
    loop {
        let suffix: u16 = rand::random();
        let id = format!("{base}-{suffix:04x}");
        if !Instance::exists(pool, &id).await? {
            return Ok(id);
        }
    }
}
