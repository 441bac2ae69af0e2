//! The supervisor owns every live instance. Callers (MCP, REST, CLI) ask it to spawn, send,
//! interrupt and terminate; it writes the intent to SQLite, acts through tmux, records the
//! outcome, and publishes an [`Event`] that waiters and streams listen to.

mod actions;
pub mod approvals;
pub mod attached;
pub mod controls;
pub mod coordination;
mod files;
mod handover;
pub mod hierarchy;
mod hooks;
pub mod hosts;
pub mod instance;
mod launch;
pub mod metrics;
pub(crate) mod notify;
mod permissions;
mod recovery;
mod spawn;
mod spawn_plan;
pub mod teams;
mod trust;
mod watchdog;
mod watcher;
pub mod worktrees;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::{Agent, AgentKind, Agents, LaunchSpec};
use crate::auth;
use crate::config::Config;
use crate::db::audit;
use crate::db::credentials::Credentials;
use crate::db::instances::{Instance, NewInstance};
use crate::db::messages::Message;
use crate::error::{Error, Result};
use crate::states::{InstanceState, MessageState};
use crate::tmux::{SessionSpec, Tmux};

pub use actions::InterruptReport;
use instance::{Command, Start};
use spawn::{new_instance_id, project_dir, validate_name};
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
    /// A cost limit was crossed (whatever `notify_on` says).
    BudgetCrossed { reason: String },
    /// Another host of the fleet went silent; its running instances are `host_lost`.
    HostLost { host: String, reason: String },
}

/// How long a request in an instance's name waits for its token to be read, before the one
/// last read is used.
const TOKEN_LOOKUP: Duration = Duration::from_secs(2);

pub(crate) struct Shared {
    pub pool: crate::db::Db,
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
    /// One worktree made at a time: two spawns that want one branch name must not both see
    /// it free.
    worktree_creating: tokio::sync::Mutex<()>,
    /// Permission requests whose CLI hook is held, each with what wakes it.
    permission_waiters: Mutex<HashMap<String, oneshot::Sender<permissions::Verdict>>>,
    /// Each instance's token as last read from the database, so its hooks are still taken
    /// (and nothing they carry is lost) while the database cannot be reached.
    tokens: Mutex<HashMap<String, String>>,
    /// The `[[notify]]` sinks' deliveries, when any sink is configured.
    outbox: Option<Arc<crate::notify::Outbox>>,
    /// Who waits on which message's answer (a notice says when nobody does).
    waits: Mutex<notify::Waits>,
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
    pub fn agent(&self, kind: AgentKind) -> Arc<dyn Agent> {
        self.agents.of(kind)
    }

    /// The agent of `kind`, set to the version of its CLI installed now (unknown when
    /// `--version` cannot be read).
    pub async fn agent_as_installed(&self, kind: AgentKind) -> Arc<dyn Agent> {
        let agents = self.agents.clone();
        let version = tokio::task::spawn_blocking(move || agents.version(kind))
            .await
            .ok()
            .flatten()
            .and_then(|a| a.version);
        self.agent(kind).at_version(version)
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
    pub outcome: RecoveryOutcome,
    pub detail: String,
}

/// How an instance of the previous run came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryOutcome {
    /// Its CLI was still running: troupe follows it again.
    Reattached,
    /// Its CLI was gone: started again with its conversation (or afresh, if it had none).
    Resumed,
    Failed,
}

impl RecoveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryOutcome::Reattached => "reattached",
            RecoveryOutcome::Resumed => "resumed",
            RecoveryOutcome::Failed => "failed",
        }
    }
}

/// What a caller asks for when spawning an instance.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The host to run it on: a name, or `label:NAME` for the roomiest host with that label;
    /// None: the parent's host, else this one.
    pub host: Option<String>,
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
        pool: crate::db::Db,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let (events, _) = broadcast::channel(1024);
        let controls = crate::db::settings::load(&pool).await?;
        let outbox = notify::outbox(&config, &pool);
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
            tokens: Mutex::new(HashMap::new()),
            outbox,
            waits: Mutex::new(notify::Waits::default()),
            worktree_creating: tokio::sync::Mutex::new(()),
            reconciled: tokio::sync::watch::channel(false).0,
        });
        let sup = Supervisor { shared };
        watchdog::spawn(sup.clone());
        notify::spawn(sup.clone());
        trust::spawn(sup.shared.clone());
        Ok(sup)
    }

    pub fn pool(&self) -> &crate::db::Db {
        &self.shared.pool
    }

    /// Instance `id`'s token as the database holds it, read once and then kept. `None` when
    /// it has none.
    pub async fn instance_token(&self, id: &str) -> Result<Option<String>> {
        let tokens = || self.shared.tokens.lock().expect("tokens poisoned");
        let health = self.shared.pool.health();
        // An instance's token never changes once issued (`Credentials::for_launch` keeps it),
        // so one read serves its whole life: a hook holds the CLI's turn, and each one would
        // otherwise wait for the database (or, while it is out, for a connection).
        if let Some(token) = tokens().get(id).cloned() {
            return Ok(Some(token));
        }
        let found = tokio::time::timeout(
            TOKEN_LOOKUP,
            crate::db::credentials::Credentials::find(&self.shared.pool, id),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        match found {
            Ok(Some(c)) => {
                tokens().insert(id.to_string(), c.token.clone());
                Ok(Some(c.token))
            }
            Ok(None) => {
                tokens().remove(id);
                Ok(None)
            }
            Err(e) if crate::db::health::unreachable(&e) => {
                health.failed(&e);
                tokens().get(id).cloned().map(Some).ok_or(Error::Db(e))
            }
            Err(e) => Err(Error::Db(e)),
        }
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
            Some(inst) => {
                self.here(&inst).await?;
                Err(Error::NotRunning {
                    id: inst.id,
                    state: inst.state,
                    reason: inst.state_reason,
                })
            }
        }
    }

    /// Refuses, naming the host and what to do, an instance that another host runs (one that
    /// has ended is nobody's any more).
    pub(crate) async fn here(&self, inst: &Instance) -> Result<()> {
        let me = &self.shared.config.host;
        if inst.host.is_empty() || &inst.host == me || inst.state.is_ended() {
            return Ok(());
        }
        let row = crate::db::hosts::Host::find(&self.shared.pool, &inst.host).await?;
        let limit = chrono::Duration::from_std(self.shared.config.host_lost_after)
            .unwrap_or(chrono::Duration::seconds(15));
        let standing = row
            .as_ref()
            .map(|h| crate::hosts::standing(h, chrono::Utc::now(), limit));
        Err(Error::Refused(crate::hosts::elsewhere(
            &inst.id,
            &inst.host,
            row.as_ref().zip(standing.as_ref()),
        )))
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
