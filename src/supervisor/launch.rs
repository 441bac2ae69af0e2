//! Starting an instance's CLI in tmux: its credentials, hook command and environment, the
//! task that runs its machine, and the wait until it is ready.

use super::*;

impl Supervisor {
    /// Writes the instance's settings and MCP config, starts the CLI in its tmux session and
    /// waits until the CLI reports that its session started.
    pub(super) async fn launch(&self, inst: &Instance, how: Launch) -> Result<()> {
        let shared = &self.shared;
        let id = inst.id.as_str();
        let resume = !matches!(how, Launch::New);
        let (agent, argv, env) = self.prepare_launch(inst, resume).await?;
        let agent_habits = agent.habits();

        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        shared
            .instances
            .lock()
            .expect("instances poisoned")
            .insert(id.to_string(), tx.clone());
        shared
            .set_instance_state(
                id,
                InstanceState::Starting,
                if resume {
                    "resuming the conversation"
                } else {
                    "launching"
                },
            )
            .await;

        let spec = SessionSpec {
            name: &inst.tmux_session,
            workdir: &inst.workdir,
            env: &env,
            argv: &argv,
            width: 200,
            height: 50,
        };
        let started = match how {
            Launch::RespawnPane => shared.tmux.respawn(&spec).await,
            Launch::New | Launch::NewSession => shared.tmux.new_session(&spec).await,
        };
        if let Err(e) = started {
            shared
                .instances
                .lock()
                .expect("instances poisoned")
                .remove(id);
            return Err(e.into());
        }
        instance::Actor::spawn(
            shared.clone(),
            inst,
            agent,
            tx,
            rx,
            Start::Launching {
                ready: ready_tx,
                resumed: resume,
                transcript: inst
                    .transcript_path
                    .as_ref()
                    .filter(|_| resume && !agent_habits.announces_session)
                    .map(PathBuf::from),
            },
        );
        match ready_rx.await {
            Ok(result) => result,
            Err(_) => Err(Error::Agent(format!(
                "instance {id} stopped while starting"
            ))),
        }
    }

    /// What the CLI is started with: its argv and environment from the agent, with the
    /// instance's token written where its hooks read it. The token is kept across resumes; the
    /// URL is recorded so a server that comes back on another address starts the CLI again.
    async fn prepare_launch(
        &self,
        inst: &Instance,
        resume: bool,
    ) -> Result<(Arc<dyn Agent>, Vec<String>, Vec<(String, String)>)> {
        let shared = &self.shared;
        let config = &shared.config;
        let id = inst.id.as_str();
        let cli_model = shared
            .agent(inst.agent)
            .cli_model(&inst.model)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "instance {id} has an unknown model {:?}",
                    inst.model
                ))
            })?;
        let permission_mode = inst.permission_mode;
        let dir = config.data_dir.join("instances").join(id);
        crate::private::dir(&dir)?;
        let token =
            Credentials::for_launch(&shared.pool, id, &config.public_url, &auth::new_token())
                .await?;
        let token_file = dir.join("token");
        crate::private::write(&token_file, token.as_bytes())?;
        let hook_url = format!("{}/hooks/{id}", config.public_url);
        let hook_command = format!(
            "{} hook --url {} --token-file {}",
            shell_quote(&config.troupe_bin.display().to_string()),
            shell_quote(&hook_url),
            shell_quote(&token_file.display().to_string()),
        );
        // Read before every launch (a stat when nothing changed), so a CLI upgraded while
        // troupe runs is launched the way its version expects, and said in the log.
        let agent = shared.agent_as_installed(inst.agent).await;
        let plan = agent.prepare(&LaunchSpec {
            instance_id: id,
            session_id: &inst.agent_session_id,
            model: &cli_model,
            system_prompt: &inst.system_prompt,
            permission_mode,
            resume,
            config_dir: &dir,
            workdir: Path::new(&inst.workdir),
            env: &config.instance_env,
            sandbox: inst.sandbox_mode.as_deref(),
            hook_command: &hook_command,
            hook_url: &hook_url,
            mcp_url: &config.public_url,
            token: &token,
            running_as_root: running_as_root(),
        })?;
        let mut env = config.instance_env.clone();
        env.push(("TROUPE_INSTANCE_ID".into(), id.to_string()));
        // The agent's own settings win over the configured environment (its config home).
        env.retain(|(k, _)| !plan.env.iter().any(|(pk, _)| pk == k));
        env.extend(plan.env);
        Ok((agent, plan.argv, env))
    }
}

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub(super) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
