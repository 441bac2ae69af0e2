//! The supervisor owns every live instance. Callers (MCP, REST, CLI) ask it to spawn, send,
//! interrupt and terminate; it writes the intent to SQLite, acts through tmux, records the
//! outcome, and publishes an [`Event`] that waiters and streams listen to.

pub mod approvals;
pub mod attached;
pub mod controls;
pub mod coordination;
mod files;
pub mod hierarchy;
pub mod instance;
pub mod metrics;
mod permissions;
mod spawn_plan;
pub mod teams;
mod watchdog;
mod watcher;
pub mod worktrees;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sqlx::SqlitePool;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::{Agent, Agents, LaunchSpec};
use crate::auth;
use crate::config::{Config, PermissionMode};
use crate::db::audit;
use crate::db::credentials::Credentials;
use crate::db::instances::{Instance, NewInstance};
use crate::db::messages::Message;
use crate::error::{Error, Result};
use crate::states::{InstanceState, MessageState};
use crate::tmux::{SessionSpec, Tmux};

use instance::{Command, InterruptReport, Start};
use watcher::TranscriptWatcher;

/// Something that changed, after it was written to the database.
#[derive(Debug, Clone)]
pub enum Event {
    InstanceState {
        instance_id: String,
        state: InstanceState,
    },
    Message {
        instance_id: String,
        message_id: String,
        state: MessageState,
    },
    /// A model call's usage was recorded.
    Usage { instance_id: String },
    /// Something the orchestrating session asked to be told about (`notify_on`).
    Notice { kind: &'static str, text: String },
    /// The controls changed.
    SettingsChanged,
    /// An instance waits for a decision on a permission request.
    PermissionAsked {
        instance_id: String,
        request_id: String,
        summary: String,
    },
    /// An instance's call waits for the person's approval.
    ApprovalAsked {
        approval_id: String,
        instance_id: String,
        question: String,
    },
    /// The person answered an approval.
    ApprovalDecided { approval_id: String },
}

pub(crate) struct Shared {
    pub pool: SqlitePool,
    pub config: Config,
    pub tmux: Tmux,
    pub events: broadcast::Sender<Event>,
    instances: Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>,
    /// One resume at a time per instance: two would start two CLIs on one conversation.
    resume_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    watcher: TranscriptWatcher,
    shutdown: CancellationToken,
    /// Every instance task, so a shutdown can wait for each to finish its current step.
    tasks: TaskTracker,
    agents: Agents,
    /// Sessions attached by `troupe chat`, each with what stops following it.
    attached: Mutex<HashMap<String, CancellationToken>>,
    /// The controls set in the conversation (as the settings table holds them).
    controls: std::sync::RwLock<crate::settings::Layer>,
    /// When this server started: the session a session budget counts from.
    started_at: String,
    /// Dashboard login codes not yet used.
    logins: crate::weblogin::Codes,
    /// The MCP clients seen, and the protocol era each speaks.
    mcp_clients: crate::mcp::clients::Clients,
    /// True once the instances of the previous run are back under supervision: until then an
    /// instance without a task may be one still being reattached.
    reconciled: tokio::sync::watch::Sender<bool>,
    /// Permission requests whose CLI hook is held, each with what wakes it.
    permission_waiters: Mutex<HashMap<String, oneshot::Sender<permissions::Verdict>>>,
}

impl Shared {
    pub fn publish(&self, event: Event) {
        // No receivers is fine: nobody is waiting.
        let _ = self.events.send(event);
    }

    /// Every control, with where its value comes from.
    pub fn settings(&self) -> crate::settings::Settings {
        let conversation = self.controls.read().expect("controls poisoned").clone();
        crate::settings::Settings::resolve(
            &self.config.file_controls,
            &self.config.env_controls,
            &conversation,
        )
    }

    /// Tells the orchestrating session, when `notify_on` asks for this kind.
    pub fn notice(&self, kind: &'static str, text: String) {
        if self.settings().notifies(kind) {
            self.publish(Event::Notice { kind, text });
        }
    }

    /// Fails the instance's unfinished messages and wakes whoever waits on them.
    pub async fn fail_messages(&self, instance_id: &str, reason: &str) {
        match Message::fail_unfinished(&self.pool, instance_id, reason).await {
            Ok(ids) => {
                for message_id in ids {
                    self.publish(Event::Message {
                        instance_id: instance_id.to_string(),
                        message_id,
                        state: MessageState::Failed,
                    });
                }
            }
            Err(e) => tracing::error!(instance = instance_id, error = %e, "cannot fail messages"),
        }
    }

    /// The instance cannot go on: say why, and end its messages.
    pub async fn instance_failed(&self, id: &str, reason: &str) {
        tracing::warn!(instance = id, "failed: {reason}");
        self.notice("error", format!("{id} failed: {reason}"));
        self.set_instance_state(id, InstanceState::Failed, reason)
            .await;
        self.fail_messages(id, reason).await;
    }

    pub async fn set_instance_state(&self, id: &str, state: InstanceState, reason: &str) {
        if let Err(e) = Instance::set_state(&self.pool, id, state, reason).await {
            tracing::error!(instance = id, %state, error = %e, "cannot record instance state");
        }
        self.publish(Event::InstanceState {
            instance_id: id.to_string(),
            state,
        });
    }

    /// The agent an instance runs.
    pub fn agent(&self, name: &str) -> Result<Arc<dyn Agent>> {
        self.agents.get(name).ok_or_else(|| {
            Error::InvalidInput(format!("this troupe does not run {name:?} instances"))
        })
    }

    /// The agent for `name`, set to the version of its CLI installed now (unknown when
    /// `--version` cannot be read).
    pub async fn agent_as_installed(&self, name: &str) -> Result<Arc<dyn Agent>> {
        let agent = self.agent(name)?;
        let agents = self.agents.clone();
        let name = name.to_string();
        let version = tokio::task::spawn_blocking(move || agents.version(&name))
            .await
            .ok()
            .flatten()
            .and_then(|a| a.version);
        Ok(agent.at_version(version))
    }
}

/// The lists an MCP client fetches after connecting; once it has both, troupe's tools are
/// available to the instance's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpList {
    Tools,
    Prompts,
}

/// How a CLI is (re)started.
#[derive(Debug, Clone, Copy)]
enum Launch {
    /// A new conversation in a new tmux session.
    New,
    /// `--resume` in a new tmux session (the old one is gone).
    NewSession,
    /// `--resume` in the existing tmux session, whose CLI has exited.
    RespawnPane,
}

/// What a restart did with one instance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recovery {
    pub instance_id: String,
    /// reattached | resumed | failed
    pub outcome: String,
    pub detail: String,
}

/// What a caller asks for when spawning an instance.
#[derive(Debug, Default, Clone)]
pub struct SpawnRequest {
    /// The agent CLI (`claude`, the default, or `codex`).
    pub agent: Option<String>,
    /// The CLI's sandbox, for CLIs that have one.
    pub sandbox_mode: Option<String>,
    pub name: Option<String>,
    pub role: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub context: Option<String>,
    pub project_dir: Option<String>,
    pub parent_instance_id: Option<String>,
    /// Work in a git worktree of its own, on a branch of its own, made from project_dir's
    /// repository at its HEAD.
    pub use_worktree: bool,
    /// `skip` (prompts skipped), or one of the CLI's prompting modes; None: the server's.
    pub permission_mode: Option<String>,
    /// Rules that decide permission requests without asking anyone.
    pub permission_rules: Option<crate::permissions::Rules>,
}

/// How long a task that has written its instance's end may take to finish its last step.
const TASK_ENDING: Duration = Duration::from_secs(10);

/// Cheap to clone: every handler holds one.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

impl Supervisor {
    pub async fn start(
        config: Config,
        pool: SqlitePool,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let (events, _) = broadcast::channel(1024);
        let controls = crate::db::settings::load(&pool).await?;
        let shared = Arc::new(Shared {
            controls: std::sync::RwLock::new(controls),
            started_at: crate::db::now(),
            pool,
            tmux: Tmux::passing(config.tmux_socket.clone(), &config.pass_env),
            agents: Agents::new(&config.claude_bin, &config.codex_bin),
            config,
            events,
            instances: Mutex::new(HashMap::new()),
            resume_locks: Mutex::new(HashMap::new()),
            watcher: TranscriptWatcher::new(),
            shutdown,
            tasks: TaskTracker::new(),
            attached: Mutex::new(HashMap::new()),
            logins: crate::weblogin::Codes::default(),
            mcp_clients: crate::mcp::clients::Clients::default(),
            permission_waiters: Mutex::new(HashMap::new()),
            reconciled: tokio::sync::watch::channel(false).0,
        });
        let sup = Supervisor { shared };
        watchdog::spawn(sup.clone());
        Ok(sup)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.shared.pool
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Cancelled when the server stops: long-lived responses (event streams) end with it.
    pub fn stopping(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// The dashboard's one-time login codes.
    pub fn logins(&self) -> &crate::weblogin::Codes {
        &self.shared.logins
    }

    pub fn mcp_clients(&self) -> &crate::mcp::clients::Clients {
        &self.shared.mcp_clients
    }

    /// When this server started.
    pub fn started_at(&self) -> &str {
        &self.shared.started_at
    }

    /// Everything that changes, as it changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    fn handle(&self, id: &str) -> Option<mpsc::UnboundedSender<Command>> {
        self.shared
            .instances
            .lock()
            .expect("instances poisoned")
            .get(id)
            .cloned()
    }

    /// The live task of an instance, for work that must reach a task that goes on. A task
    /// writes its instance's end (exited, failed) before it lets go of its handle; an instance
    /// that reads as stopped while its task is still there is waited for until the task has
    /// ended, so that a resume after it never races it.
    async fn live_going_on(&self, id: &str) -> Result<mpsc::UnboundedSender<Command>> {
        if let Some(tx) = self.handle(id) {
            let stopped = Instance::find(&self.shared.pool, id)
                .await?
                .is_some_and(|i| {
                    matches!(
                        i.state,
                        InstanceState::Exited
                            | InstanceState::Failed
                            | InstanceState::Suspended
                            | InstanceState::Terminated
                    )
                });
            if !stopped {
                return Ok(tx);
            }
            // The receiver goes when the task's last step is done.
            let _ = tokio::time::timeout(TASK_ENDING, tx.closed()).await;
        }
        self.live(id).await
    }

    /// Right after a restart an instance may not have its task yet: a caller's request waits
    /// for the previous run's instances to be reattached rather than hear that a running
    /// instance is not running. (Only for callers: the reattachment itself never waits here.)
    pub(crate) async fn after_reconcile(&self, id: &str) {
        if self.handle(id).is_some() {
            return;
        }
        let mut reconciled = self.shared.reconciled.subscribe();
        if !*reconciled.borrow_and_update() {
            let wait = self.shared.config.startup_timeout + Duration::from_secs(10);
            let _ = tokio::time::timeout(wait, reconciled.wait_for(|done| *done)).await;
        }
    }

    /// The live task of an instance, or the reason there is none.
    async fn live(&self, id: &str) -> Result<mpsc::UnboundedSender<Command>> {
        if let Some(tx) = self.handle(id) {
            return Ok(tx);
        }

        match Instance::find(&self.shared.pool, id).await? {
            None => Err(Error::UnknownInstance(id.to_string())),
            Some(inst) => Err(Error::NotRunning {
                id: inst.id,
                state: inst.state,
                reason: inst.state_reason,
            }),
        }
    }

    /// Starts an instance (Claude Code unless the request names another agent) and returns
    /// once it is ready for messages.
    pub async fn spawn(&self, req: SpawnRequest, caller: Option<&str>) -> Result<Instance> {
        let (sup, caller) = (self.clone(), caller.map(str::to_string));
        to_the_end(async move { sup.spawn_now(req, caller.as_deref()).await }).await
    }

    async fn spawn_now(&self, req: SpawnRequest, caller: Option<&str>) -> Result<Instance> {
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
    async fn check_room(&self, settings: &crate::settings::Settings) -> Result<()> {
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

    /// Writes the instance's settings and MCP config, starts the CLI in its tmux session and
    /// waits until the CLI reports that its session started.
    async fn launch(&self, inst: &Instance, how: Launch) -> Result<()> {
        let shared = &self.shared;
        let config = &shared.config;
        let id = inst.id.as_str();
        let agent = shared.agent(&inst.agent)?;
        let cli_model = agent.cli_model(&inst.model).ok_or_else(|| {
            Error::InvalidInput(format!(
                "instance {id} has an unknown model {:?}",
                inst.model
            ))
        })?;
        let permission_mode =
            <PermissionMode as clap::ValueEnum>::from_str(&inst.permission_mode, true)
                .unwrap_or(config.permission_mode);
        let dir = config.data_dir.join("instances").join(id);
        crate::private::dir(&dir)?;
        // A resumed instance keeps its token; the URL is recorded so a server that comes
        // back on another address knows to start the CLI again.
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
        let resume = !matches!(how, Launch::New);
        // Read before every launch (a stat when nothing changed), so a CLI upgraded while
        // troupe runs is launched the way its version expects, and said in the log.
        let agent = shared.agent_as_installed(&inst.agent).await?;
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
        let argv = plan.argv;
        let agent_habits = agent.habits();
        let mut env = config.instance_env.clone();
        env.push(("TROUPE_INSTANCE_ID".into(), id.to_string()));
        // The agent's own settings win over the configured environment (its config home).
        env.retain(|(k, _)| !plan.env.iter().any(|(pk, _)| pk == k));
        env.extend(plan.env);

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
        let instances = Instance::recoverable(&self.shared.pool).await?;
        let recoveries = futures::future::join_all(instances.into_iter().map(|inst| async move {
            let started = std::time::Instant::now();
            let (outcome, detail) = match self.recover(&inst).await {
                Ok(done) => done,
                Err(e) => {
                    let reason = format!("could not be brought back after a restart: {e}");
                    self.shared.instance_failed(&inst.id, &reason).await;
                    ("failed", reason)
                }
            };
            audit::record(
                &self.shared.pool,
                None,
                Some(&inst.id),
                &format!("instance.{outcome}"),
                json!({ "previous_state": inst.state, "detail": detail, "ms": started.elapsed().as_millis() as u64 }),
            )
            .await;
            Recovery {
                instance_id: inst.id.clone(),
                outcome: outcome.to_string(),
                detail,
            }
        }))
        .await;
        Ok(recoveries)
    }

    async fn recover(&self, inst: &Instance) -> Result<(&'static str, String)> {
        let tmux = &self.shared.tmux;
        if tmux.has_session(&inst.tmux_session).await? {
            if !tmux.pane_dead(&inst.tmux_session).await? {
                let relaunch = self.reattach(inst).await?;
                let detail = relaunch
                    .map(|why| format!("{why}: it starts again with --resume once no turn runs"))
                    .unwrap_or_default();
                return Ok(("reattached", detail));
            }
            self.resume(inst, Launch::RespawnPane).await?;
        } else {
            self.resume(inst, Launch::NewSession).await?;
        }
        Ok(("resumed", String::new()))
    }

    /// Starts a running instance's CLI again in its pane, with its conversation and a
    /// configuration that reaches this server.
    async fn relaunch(&self, id: &str) -> Result<()> {
        let inst = Instance::find(&self.shared.pool, id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.to_string()))?;
        let agent = self.shared.agent(&inst.agent)?;
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
    async fn ready_afresh(
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
    async fn reattach(&self, inst: &Instance) -> Result<Option<String>> {
        let transcript = inst.transcript_path.as_deref().ok_or_else(|| {
            Error::Agent("its CLI runs but troupe never learned its transcript path".into())
        })?;
        // The CLI there was launched before this server started: its version is read as it
        // stands now (an upgrade in between would only be misread when typing).
        let agent = self.shared.agent_as_installed(&inst.agent).await?;
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
    async fn resume(&self, inst: &Instance, how: Launch) -> Result<()> {
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
        let agent = self.shared.agent(&inst.agent)?;
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
        let (sup, id, caller) = (
            self.clone(),
            instance_id.to_string(),
            caller.map(str::to_string),
        );
        to_the_end(async move { sup.resume_now(&id, caller.as_deref()).await }).await
    }

    async fn resume_now(&self, instance_id: &str, caller: Option<&str>) -> Result<Instance> {
        if self.live_going_on(instance_id).await.is_err() {
            let inst = Instance::find(&self.shared.pool, instance_id)
                .await?
                .ok_or_else(|| Error::UnknownInstance(instance_id.to_string()))?;
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

    /// Ends the instance's tmux session but keeps its conversation; a message resumes it.
    pub async fn suspend(&self, instance_id: &str, caller: Option<&str>) -> Result<()> {
        let tx = self.live(instance_id).await?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Suspend(reply))
            .map_err(|_| Error::Agent(format!("instance {instance_id} is shutting down")))?;
        rx.await.map_err(|_| {
            Error::Agent(format!("instance {instance_id} stopped while suspending"))
        })??;
        audit::record(
            &self.shared.pool,
            caller,
            Some(instance_id),
            "instance.suspend",
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Terminates every live instance (for `serve --terminate-on-exit`).
    pub async fn terminate_all(&self) {
        let ids: Vec<String> = self
            .shared
            .instances
            .lock()
            .expect("instances poisoned")
            .keys()
            .cloned()
            .collect();
        for id in self.deepest_first(ids).await {
            if let Err(e) = self.terminate_one(&id, None).await {
                tracing::warn!(instance = %id, error = %e, "could not terminate");
            }
        }
    }

    /// Queues a message for an instance; it is delivered as soon as the instance is idle.
    pub async fn send(
        &self,
        instance_id: &str,
        text: &str,
        sender: Option<&str>,
    ) -> Result<Message> {
        if !text.chars().any(|c| !c.is_whitespace() && !c.is_control()) {
            return Err(Error::InvalidInput(
                "message is empty (only spaces or control characters); say what the instance \
                 should do"
                    .into(),
            ));
        }
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::InvalidInput(format!(
                "message is {} bytes; the most is {MAX_MESSAGE_BYTES}. Put the long part in a \
                 file the instance can read and send its path",
                text.len()
            )));
        }
        let settings = self.settings();
        self.check_enabled(&settings)?;
        self.check_spending(&settings).await?;
        self.after_reconcile(instance_id).await;
        let tx = match self.live_going_on(instance_id).await {
            Ok(tx) => tx,
            // Its conversation is kept: bring it back, then queue.
            Err(Error::NotRunning {
                state: InstanceState::Suspended | InstanceState::Exited,
                ..
            }) => {
                self.resume_instance(instance_id, sender).await?;
                self.live(instance_id).await?
            }
            Err(e) => return Err(e),
        };
        let id = format!("msg-{}", uuid::Uuid::now_v7().simple());
        Message::insert_queued(&self.shared.pool, &id, instance_id, sender, text).await?;
        self.shared.publish(Event::Message {
            instance_id: instance_id.to_string(),
            message_id: id.clone(),
            state: MessageState::Queued,
        });
        // The row is the queue; this hands it to the task. A task that ended meanwhile
        // (terminate, suspend) will never deliver it: say so instead of leaving it queued.
        let queued = Command::Queued {
            id: id.clone(),
            text: text.to_string(),
        };
        if tx.send(queued).is_err() {
            self.shared
                .fail_messages(
                    instance_id,
                    "the instance stopped before the message was delivered",
                )
                .await;
        }
        Message::find(&self.shared.pool, &id)
            .await?
            .ok_or(Error::UnknownMessage(id))
    }

    /// Waits until a message's turn is over, or fails with [`Error::Timeout`] naming the
    /// message so it can be fetched later.
    pub async fn wait_message(&self, message_id: &str, timeout: Duration) -> Result<Message> {
        let mut events = self.shared.events.subscribe();
        let timeout = timeout.min(MAX_WAIT);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = Message::find(&self.shared.pool, message_id)
                .await?
                .ok_or_else(|| Error::UnknownMessage(message_id.to_string()))?;
            if message.is_finished() {
                return Ok(message);
            }
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Err(_) => {
                        return Err(Error::Timeout {
                            instance_id: message.instance_id,
                            message_id: message.id,
                            seconds: timeout.as_secs(),
                            state: message.state,
                        });
                    }
                    Ok(Ok(Event::Message { message_id: m, .. })) if m == message_id => break,
                    Ok(Ok(_)) => continue,
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return Err(Error::Agent("troupe is shutting down".into()));
                    }
                }
            }
        }
    }

    /// Presses the CLI's interrupt key and waits until the CLI confirms the turn stopped.
    pub async fn interrupt(
        &self,
        instance_id: &str,
        caller: Option<&str>,
    ) -> Result<InterruptReport> {
        self.after_reconcile(instance_id).await;
        let tx = self.live(instance_id).await?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Interrupt(reply))
            .map_err(|_| Error::Agent(format!("instance {instance_id} is shutting down")))?;
        let report = rx.await.map_err(|_| {
            Error::Agent(format!(
                "instance {instance_id} stopped during the interrupt"
            ))
        })??;
        audit::record(
            &self.shared.pool,
            caller,
            Some(instance_id),
            "instance.interrupt",
            serde_json::to_value(&report).unwrap_or_default(),
        )
        .await;
        tracing::info!(instance = instance_id, outcome = %report.outcome, "interrupt");
        Ok(report)
    }

    /// Ends one instance: its tmux session is killed and its unfinished messages fail.
    async fn terminate_one(&self, instance_id: &str, caller: Option<&str>) -> Result<()> {
        let tx = self.live(instance_id).await?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Terminate(reply))
            .map_err(|_| Error::Agent(format!("instance {instance_id} is shutting down")))?;
        rx.await.map_err(|_| {
            Error::Agent(format!("instance {instance_id} stopped during terminate"))
        })??;
        audit::record(
            &self.shared.pool,
            caller,
            Some(instance_id),
            "instance.terminate",
            json!({}),
        )
        .await;
        tracing::info!(instance = instance_id, "terminated");
        self.shared
            .notice("terminate", format!("terminated {instance_id}"));
        Ok(())
    }

    /// An instance's MCP client received one of troupe's lists.
    pub fn mcp_list_answered(&self, instance_id: &str, list: McpList) {
        if let Some(tx) = self.handle(instance_id) {
            let _ = tx.send(Command::McpList(list));
        }
    }

    /// A lifecycle hook posted by an instance's CLI; returns the hook's answer (an empty
    /// object but for a permission request someone decided).
    pub async fn hook(
        &self,
        instance_id: &str,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let tx = self.live(instance_id).await?;
        // Lifecycle hooks hold the CLI's turn until answered: only a permission request waits
        // on more than handing the payload to the instance's task.
        if !self.shared.agents.may_be_permission_request(&payload) {
            let _ = tx.send(Command::Hook(payload));
            return Ok(json!({}));
        }
        let inst = Instance::find(&self.shared.pool, instance_id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(instance_id.to_string()))?;
        let agent = self.shared.agent(&inst.agent)?;
        if let crate::agents::AgentEvent::PermissionAsked { tool, input } =
            agent.hook_event(&payload)
        {
            // Only the CLI session troupe started may ask in the instance's name.
            let session = agent.hook_session(&payload);
            if session
                .is_some_and(|s| !inst.agent_session_id.is_empty() && s != inst.agent_session_id)
            {
                audit::record(
                    &self.shared.pool,
                    None,
                    Some(instance_id),
                    "instance.hook_refused",
                    json!({ "session_id": session, "hook": "permission" }),
                )
                .await;
                return Ok(json!({}));
            }
            return self
                .permission_requested(agent.as_ref(), &inst, &tx, tool, input)
                .await;
        }
        let _ = tx.send(Command::Hook(payload));
        Ok(json!({}))
    }

    /// Ends every instance's task (not its tmux session) so the process can exit, and waits
    /// until each has finished the step it was in: a clean stop leaves nothing half-written.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("instance tasks still busy after 10s; exiting without them");
        }
    }
}

/// Runs `work` to its end even when the caller stops waiting: an HTTP client that disconnects
/// drops its handler, and a spawn or terminate stopped halfway would leave rows that no task
/// follows (an instance `starting` for good).
pub(crate) async fn to_the_end<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) => Err(Error::Agent(format!(
            "the operation stopped unexpectedly: {e}"
        ))),
    }
}

/// The largest message troupe types into a CLI: a paste this size already takes the TUI a
/// while, and anything longer belongs in a file the instance reads.
pub const MAX_MESSAGE_BYTES: usize = 100_000;
/// The largest system prompt (with its context). It reaches the CLI through a file, so the
/// limit is about the model: a prompt this long already takes a good part of its context.
pub const MAX_SYSTEM_PROMPT_BYTES: usize = 100_000;

/// The longest anyone waits for an answer in one call (a day); longer waits are refused by the
/// tools and capped here, so no caller's number can overflow a deadline.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Names go into tmux session names, file paths and ids: keep them to a safe alphabet.
fn validate_name(name: &str) -> Result<String> {
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

fn project_dir(dir: &str) -> Result<PathBuf> {
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

async fn new_instance_id(pool: &SqlitePool, base: &str) -> Result<String> {
    loop {
        let suffix: u16 = rand::random();
        let id = format!("{base}-{suffix:04x}");
        if !Instance::exists(pool, &id).await? {
            return Ok(id);
        }
    }
}

/// Whether the instance's transcript holds a conversation to resume; None when there is no
/// transcript file at all.
fn conversation_written(agent: &dyn Agent, inst: &Instance) -> Result<Option<bool>> {
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
fn holds_conversation(agent: &dyn Agent, path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().any(|line| {
        matches!(
            agent.parse_record(line),
            crate::agents::Record::Prompt { .. } | crate::agents::Record::Assistant { .. }
        )
    }))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
