//! Sessions troupe did not start: `troupe chat` runs the person's own CLI in their terminal
//! and attaches it here as a root instance. Its MCP calls carry its own token and identity,
//! so its spawns are its children; its transcript is followed, so its tokens and cost are in
//! the ledger with everyone else's. troupe never types into it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::instance::record_output;
use super::{Supervisor, new_instance_id, project_dir, validate_name};
use crate::agents::Record;
use crate::agents::transcript::TranscriptReader;
use crate::auth;
use crate::db::audit;
use crate::db::credentials::Credentials;
use crate::db::instances::{Instance, NewInstance};
use crate::error::{Error, Result};
use crate::roles;
use crate::states::InstanceState;

/// What `troupe chat` tells about the session it is about to run.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AttachRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Absolute; the session works there.
    pub project_dir: String,
    /// The CLI's session id, chosen by `troupe chat` and passed to the CLI.
    pub session_id: String,
    /// Where the CLI writes that session's transcript.
    pub transcript_path: String,
}

/// The attached session's identity, for its MCP configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attached {
    pub instance_id: String,
    pub token: String,
}

/// A write the ledger could not take yet is tried again after this long.
const RETRY: Duration = Duration::from_secs(1);

/// The session id the person's CLI was started with, and its transcript, if the transcript
/// is that session's.
fn own_session(agent: &dyn crate::agents::Agent, req: &AttachRequest) -> Result<(String, PathBuf)> {
    let session = uuid::Uuid::parse_str(&req.session_id)
        .map_err(|e| Error::InvalidInput(format!("session_id {:?}: {e}", req.session_id)))?
        .to_string();
    let transcript = PathBuf::from(&req.transcript_path);
    if !agent.owns_transcript(&session, &transcript) {
        return Err(Error::InvalidInput(format!(
            "transcript_path {:?} is not session {session}'s transcript",
            req.transcript_path
        )));
    }
    Ok((session, transcript))
}

impl Supervisor {
    pub async fn attach(&self, req: AttachRequest, caller: Option<&str>) -> Result<Attached> {
        let shared = &self.shared;
        let agent = shared.agents.of(crate::agents::AgentKind::Claude);
        let role = roles::resolve(req.role.as_deref().unwrap_or("orchestrator"))
            .map_err(Error::InvalidInput)?;
        let model = req
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or("default")
            .to_string();
        let name = match req.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => Some(validate_name(n)?),
            None => None,
        };
        let workdir = project_dir(&req.project_dir)?;
        let (session, transcript) = own_session(agent.as_ref(), &req)?;
        self.check_room(&self.settings()).await?;
        let id = new_instance_id(&shared.pool, name.as_deref().unwrap_or("chat")).await?;
        let workdir = workdir.display().to_string();
        Instance::insert(
            &shared.pool,
            &NewInstance {
                id: &id,
                name: name.as_deref().unwrap_or(&id),
                agent: agent.name(),
                model: &model,
                role: &role.name,
                system_prompt: "",
                workdir: &workdir,
                // The person's own CLI runs as they set it; its helpers get the server's
                // mode, as the person's own spawns do.
                permission_mode: shared.config.permission_mode.as_str(),
                parent_id: None,
                tmux_session: "",
                agent_session_id: &session,
                sandbox_mode: None,
                permission_rules: None,
                host: &shared.config.host,
            },
        )
        .await?;
        Instance::set_transcript_path(&shared.pool, &id, &req.transcript_path).await?;
        Instance::set_state(
            &shared.pool,
            &id,
            InstanceState::Attached,
            "a session in the person's own terminal (troupe chat)",
        )
        .await?;
        let token = Credentials::for_launch(
            &shared.pool,
            &id,
            &shared.config.public_url,
            &auth::new_token(),
        )
        .await?;
        audit::record(
            &shared.pool,
            caller,
            Some(&id),
            "instance.attached",
            json!({ "workdir": workdir, "session_id": session }),
        )
        .await;
        tracing::info!(instance = %id, "attached a session working in {workdir}");
        self.follow_attached(&id, transcript);
        Ok(Attached {
            instance_id: id,
            token,
        })
    }

    /// The attached session ended (its CLI exited): it is terminated, its records stay.
    pub async fn detach(&self, id: &str, caller: Option<&str>) -> Result<()> {
        let inst = Instance::find(&self.shared.pool, id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.to_string()))?;
        if inst.state != InstanceState::Attached {
            return Err(Error::InvalidInput(format!(
                "instance {id} is not an attached session (it is {})",
                inst.state
            )));
        }
        if let Some(stop) = self
            .shared
            .attached
            .lock()
            .expect("attached poisoned")
            .remove(id)
        {
            stop.cancel();
        }
        Instance::set_state(
            &self.shared.pool,
            id,
            InstanceState::Terminated,
            "its session ended",
        )
        .await?;
        audit::record(
            &self.shared.pool,
            caller,
            Some(id),
            "instance.detached",
            json!({}),
        )
        .await;
        tracing::info!(instance = id, "the attached session ended");
        Ok(())
    }

    /// After a restart: attached sessions' transcripts are followed again (rows already
    /// written are not written twice).
    pub(super) async fn follow_all_attached(&self) -> Result<()> {
        for inst in Instance::attached(&self.shared.pool, &self.shared.config.host).await? {
            if let Some(path) = inst.transcript_path {
                self.follow_attached(&inst.id, PathBuf::from(path));
            }
        }
        Ok(())
    }

    fn follow_attached(&self, id: &str, transcript: PathBuf) {
        let stop = self.shared.shutdown.child_token();
        self.shared
            .attached
            .lock()
            .expect("attached poisoned")
            .insert(id.to_string(), stop.clone());
        let sup = self.clone();
        let id = id.to_string();
        self.shared.tasks.spawn(async move {
            if let Err(e) = sup.ledger(&id, &transcript, stop).await {
                tracing::warn!(instance = %id, error = %e, "stopped following the attached session");
            }
        });
    }

    /// Records what the session's transcript says (output, tool calls, tokens and cost) as
    /// it is written, until the session ends or the server stops.
    async fn ledger(&self, id: &str, transcript: &Path, stop: CancellationToken) -> Result<()> {
        let agent = self.shared.agents.of(crate::agents::AgentKind::Claude);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.shared.watcher.watch(transcript, tx)?;
        let mut reader = TranscriptReader::new(transcript);
        let mut unwritten: VecDeque<Record> = VecDeque::new();
        loop {
            match reader.read_new_lines() {
                Ok(lines) => unwritten.extend(
                    lines
                        .iter()
                        .map(|l| agent.parse_record(l))
                        .filter(|r| *r != Record::Other),
                ),
                Err(e) => tracing::debug!(instance = id, error = %e, "transcript not readable yet"),
            }
            let mut retry = None;
            while let Some(record) = unwritten.front() {
                match record_output(
                    &self.shared.pool,
                    &self.shared.config.prices,
                    id,
                    record,
                    None,
                )
                .await
                {
                    Ok(()) => {
                        unwritten.pop_front();
                    }
                    Err(e) => {
                        tracing::warn!(instance = id, error = %e, "cannot record the session's transcript; trying again");
                        retry = Some(tokio::time::Instant::now() + RETRY);
                        break;
                    }
                }
            }
            tokio::select! {
                cmd = rx.recv() => if cmd.is_none() { break },
                _ = super::instance::sleep_until(retry) => {}
                _ = stop.cancelled() => break,
            }
        }
        self.shared.watcher.unwatch(transcript);
        Ok(())
    }
}
