//! After a restart: every instance of the previous run is reattached to its live tmux
//! session, resumed with the CLI's own `--resume`, or started afresh; and a suspended or
//! exited instance is resumed on request.

use super::*;

impl Supervisor {
    /// Brings every instance the database says should be running back under supervision:
    /// reattach to a live CLI, relaunch a dead one with `--resume`, or record why it cannot
    /// come back. Each outcome goes to the audit log; nothing is deleted.
    pub async fn reconcile(&self) -> Result<Vec<Recovery>> {
        // Whatever happens here, callers waiting on an instance stop waiting at the end.
        struct Done<'a>(&'a tokio::sync::watch::Sender<bool>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.send_replace(true);
            }
        }
        let _done = Done(&self.shared.reconciled);
        self.follow_all_attached().await?;
        let instances = Instance::recoverable(&self.shared.pool, &self.shared.config.host).await?;
        let recoveries = futures::future::join_all(instances.into_iter().map(|inst| async move {
            let started = std::time::Instant::now();
            let (outcome, detail) = match self.recover(&inst).await {
                Ok(done) => done,
                Err(e) => {
                    let reason = format!("could not be brought back after a restart: {e}");
                    self.shared.instance_failed(&inst.id, &reason).await;
                    (RecoveryOutcome::Failed, reason)
                }
            };
            audit::record(
                &self.shared.pool,
                None,
                Some(&inst.id),
                &format!("instance.{}", outcome.as_str()),
                json!({ "previous_state": inst.state, "detail": detail, "ms": started.elapsed().as_millis() as u64 }),
            )
            .await;
            Recovery {
                instance_id: inst.id.clone(),
                outcome,
                detail,
            }
        }))
        .await;
        Ok(recoveries)
    }

    pub(super) async fn recover(&self, inst: &Instance) -> Result<(RecoveryOutcome, String)> {
        let tmux = &self.shared.tmux;
        if tmux.has_session(&inst.tmux_session).await? {
            if !tmux.pane_dead(&inst.tmux_session).await? {
                let relaunch = self.reattach(inst).await?;
                let detail = relaunch
                    .map(|why| format!("{why}: it starts again with --resume once no turn runs"))
                    .unwrap_or_default();
                return Ok((RecoveryOutcome::Reattached, detail));
            }
            self.resume(inst, Launch::RespawnPane).await?;
        } else {
            self.resume(inst, Launch::NewSession).await?;
        }
        Ok((RecoveryOutcome::Resumed, String::new()))
    }

    /// Starts a running instance's CLI again in its pane, with its conversation and a
    /// configuration that reaches this server.
    pub(super) async fn relaunch(&self, id: &str) -> Result<()> {
        let inst = Instance::find(&self.shared.pool, id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.to_string()))?;
        let agent = self.shared.agent(inst.agent);
        let written = conversation_written(agent.as_ref(), &inst)?;
        if written == Some(true) {
            return self.launch(&inst, Launch::RespawnPane).await;
        }
        // No conversation to resume (`--resume` would answer "No conversation found").
        let fresh = self
            .ready_afresh(&inst, agent.as_ref(), written, Launch::RespawnPane)
            .await?;
        self.launch(&fresh, Launch::New).await
    }

    /// Readies an instance with no conversation to start afresh under its identity: its old
    /// pane gone when it is to be reused, and a new session id when the old one has a file,
    /// which the CLI would refuse as in use.
    pub(super) async fn ready_afresh(
        &self,
        inst: &Instance,
        agent: &dyn Agent,
        written: Option<bool>,
        how: Launch,
    ) -> Result<Instance> {
        if matches!(how, Launch::RespawnPane) {
            self.shared.tmux.kill_session(&inst.tmux_session).await?;
        }
        if written.is_some() {
            let session = if agent.habits().session_id_chosen {
                uuid::Uuid::new_v4().to_string()
            } else {
                String::new()
            };
            Instance::set_agent_session(&self.shared.pool, &inst.id, &session).await?;
        }
        Instance::find(&self.shared.pool, &inst.id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(inst.id.clone()))
    }

    /// Follows a CLI that kept running while troupe was away. A CLI configured for another
    /// address (the server moved to another port) cannot send its hooks or reach troupe's
    /// tools: it starts again with `--resume` once no turn runs.
    pub(super) async fn reattach(&self, inst: &Instance) -> Result<Option<String>> {
        let transcript = inst.transcript_path.as_deref().ok_or_else(|| {
            Error::Agent("its CLI runs but troupe never learned its transcript path".into())
        })?;
        // The CLI there was launched before this server started: its version is read as it
        // stands now (an upgrade in between would only be misread when typing).
        let agent = self.shared.agent_as_installed(inst.agent).await;
        let url = &self.shared.config.public_url;
        let relaunch = match Credentials::find(&self.shared.pool, &inst.id).await? {
            Some(c) if c.server_url == *url => None,
            Some(c) => Some(format!(
                "its CLI was configured for {}, and troupe now serves at {url}",
                c.server_url
            )),
            None => Some("its CLI was started without an instance token".to_string()),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .instances
            .lock()
            .expect("instances poisoned")
            .insert(inst.id.clone(), tx.clone());
        instance::Actor::spawn(
            self.shared.clone(),
            inst,
            agent,
            tx,
            rx,
            Start::Reattach {
                transcript: PathBuf::from(transcript),
                relaunch: relaunch.clone(),
            },
        );
        Ok(relaunch)
    }

    /// Relaunches the CLI with its own `--resume`, so the conversation continues. An instance
    /// that never had a turn simply starts again under the same session id.
    pub(super) async fn resume(&self, inst: &Instance, how: Launch) -> Result<()> {
        let lock = self
            .shared
            .resume_locks
            .lock()
            .expect("resume locks poisoned")
            .entry(inst.id.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if self.handle(&inst.id).is_some() {
            // Someone else brought it back while this call waited.
            return Ok(());
        }
        let had_turns = Message::any_started(&self.shared.pool, &inst.id).await?;
        let agent = self.shared.agent(inst.agent);
        let written = conversation_written(agent.as_ref(), inst)?;
        let fresh;
        let (inst, how) = match written {
            Some(true) => (inst, how),
            _ if had_turns => {
                let path = inst
                    .transcript_path
                    .as_deref()
                    .unwrap_or("(never recorded)");
                return Err(Error::Agent(if written.is_none() {
                    format!("its conversation cannot be resumed: the transcript {path} is gone")
                } else {
                    format!(
                        "its conversation cannot be resumed: the transcript {path} no longer \
                         holds it"
                    )
                }));
            }
            // Nothing to resume: the CLI never wrote a conversation down (it died before its
            // first prompt reached the file). It starts again, under a new session id when
            // the old one has a file, which the CLI would refuse as in use.
            _ => {
                fresh = self
                    .ready_afresh(inst, agent.as_ref(), written, how)
                    .await?;
                (&fresh, Launch::New)
            }
        };
        if !Path::new(&inst.workdir).is_dir() {
            return Err(Error::Agent(format!(
                "its work directory {} is gone",
                inst.workdir
            )));
        }
        let result = self.launch(inst, how).await;
        if result.is_err() {
            let _ = self.shared.tmux.kill_session(&inst.tmux_session).await;
        }
        result
    }

    /// Brings a suspended (or otherwise stopped) instance back with its conversation.
    pub async fn resume_instance(
        &self,
        instance_id: &str,
        caller: Option<&str>,
    ) -> Result<Instance> {
        if let Some(host) = self.owner_elsewhere(instance_id).await? {
            let act = crate::handover::Act::Resume;
            let id: String = self.hand_over(&host, instance_id, caller, act).await?;
            return Instance::find(&self.shared.pool, &id)
                .await?
                .ok_or(Error::UnknownInstance(id));
        }
        let (sup, id, caller) = (
            self.clone(),
            instance_id.to_string(),
            caller.map(str::to_string),
        );
        to_the_end(async move { sup.resume_now(&id, caller.as_deref()).await }).await
    }

    pub(super) async fn resume_now(
        &self,
        instance_id: &str,
        caller: Option<&str>,
    ) -> Result<Instance> {
        if self.live_going_on(instance_id).await.is_err() {
            let inst = Instance::find(&self.shared.pool, instance_id)
                .await?
                .ok_or_else(|| Error::UnknownInstance(instance_id.to_string()))?;
            self.here(&inst).await?;
            let how = if self.shared.tmux.has_session(&inst.tmux_session).await? {
                Launch::RespawnPane
            } else {
                Launch::NewSession
            };
            if let Err(e) = self.resume(&inst, how).await {
                let reason = format!("resume failed: {e}");
                self.shared.instance_failed(&inst.id, &reason).await;
                return Err(e);
            }
            audit::record(
                &self.shared.pool,
                caller,
                Some(instance_id),
                "instance.resumed",
                json!({}),
            )
            .await;
            tracing::info!(instance = instance_id, "resumed");
        }
        Instance::find(&self.shared.pool, instance_id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(instance_id.to_string()))
    }
}

/// Whether the instance's transcript holds a conversation to resume; None when there is no
/// transcript file at all.
pub(super) fn conversation_written(agent: &dyn Agent, inst: &Instance) -> Result<Option<bool>> {
    match inst
        .transcript_path
        .as_deref()
        .map(Path::new)
        .filter(|p| p.exists())
    {
        Some(path) => Ok(Some(holds_conversation(agent, path)?)),
        None => Ok(None),
    }
}

/// Whether a transcript holds any of a conversation (a prompt or a reply), so that the CLI
/// can resume it.
pub(super) fn holds_conversation(agent: &dyn Agent, path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().any(|line| {
        matches!(
            agent.parse_record(line),
            crate::agents::Record::Prompt { .. } | crate::agents::Record::Assistant { .. }
        )
    }))
}
