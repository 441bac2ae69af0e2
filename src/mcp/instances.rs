use super::Json;
use super::Parameters;
use super::answer::Rendered;
use crate::states::InstanceState;
use rmcp::model::Extensions;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Troupe, caller, tool_error};
use crate::db::instances::{Instance, Summary};
use crate::db::messages::Message;
use crate::db::output::OutputChunk;
use crate::db::usage::{UsageRecord, UsageTotals};
use crate::error::Error;
use crate::supervisor::SpawnRequest;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SpawnClaudeParams {
    /// Model: opus, sonnet or haiku (the seed's opus-4, sonnet-4 work too), or a full claude-*
    /// id. Defaults to the role's model (architect: opus; developer, reviewer, researcher:
    /// sonnet; tester, documenter: haiku).
    #[serde(default)]
    pub model: Option<String>,
    /// Role: a preset (architect, developer, reviewer, tester, documenter, researcher), which
    /// sets the default model and system prompt, or any other role ("security specialist"),
    /// which runs on sonnet with a prompt built from its name. Defaults to developer.
    #[serde(default)]
    pub role: Option<String>,
    /// Initial context or instructions, added to the instance's system prompt.
    #[serde(default)]
    pub context: Option<String>,
    /// A system prompt that replaces the role's preset prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Absolute path of the directory the instance works in. Defaults to the parent
    /// instance's directory; for the person's own session, to the directory its client works
    /// in (its MCP roots); else a fresh workspace under troupe's data directory.
    #[serde(default)]
    pub project_dir: Option<String>,
    /// A short name (letters, digits, '-', '_'); the id becomes name-xxxx. Defaults to the role.
    #[serde(default)]
    pub name: Option<String>,
    /// The parent instance. Defaults to the calling instance when an instance spawns.
    #[serde(default)]
    pub parent_instance_id: Option<String>,
    /// Work in a git worktree of its own: troupe makes one from project_dir's repository at
    /// its current HEAD, on a new branch troupe/<name>, under its data directory. Terminate
    /// keeps the worktree and the branch; get_worktree_status reports it, remove_worktree
    /// removes it once nothing would be lost.
    #[serde(default)]
    pub use_worktree: bool,
    /// How it asks before using tools: skip (the server's default: no prompts), or a
    /// prompting mode, default, accept-edits or plan, in which each permission request waits
    /// for a decision (respond_to_permission, the dashboard, or a rule) and the instance's
    /// state is waiting_permission meanwhile.
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// Rules that decide permission requests without asking anyone: {"allow": ["Bash(npm
    /// test*)", "Read"], "deny": ["Bash(rm *)"]}; a tool name, optionally with a pattern on
    /// its command, file path or URL (`*` any text). Deny wins.
    #[serde(default)]
    pub permission_rules: Option<crate::permissions::Rules>,
    /// The host to run it on, in a fleet: a host's name, or `label:NAME` for the roomiest host
    /// with that label. Default: the parent's host, else the host this call reached.
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SpawnCodexParams {
    /// Model: an OpenAI model id such as gpt-5 (the default), gpt-5-codex or o4-mini, or a
    /// model your Codex provider serves.
    #[serde(default)]
    pub model: Option<String>,
    /// Role: a preset (architect, developer, reviewer, tester, documenter, researcher), which
    /// sets the system prompt, or any other role name. Defaults to developer.
    #[serde(default)]
    pub role: Option<String>,
    /// Initial context or instructions, added to the instance's system prompt.
    #[serde(default)]
    pub context: Option<String>,
    /// A system prompt that replaces the role's preset prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Absolute path of the directory the instance works in (defaults as for spawn_claude).
    #[serde(default)]
    pub project_dir: Option<String>,
    /// Codex's sandbox for the commands it runs: read-only, workspace-write or
    /// danger-full-access. Omitted, Codex runs without sandbox and approvals (as Claude
    /// instances skip permission prompts).
    #[serde(default)]
    pub sandbox_mode: Option<String>,
    /// A short name (letters, digits, '-', '_'); the id becomes name-xxxx. Defaults to the role.
    #[serde(default)]
    pub name: Option<String>,
    /// The parent instance. Defaults to the calling instance when an instance spawns.
    #[serde(default)]
    pub parent_instance_id: Option<String>,
    /// Work in a git worktree of its own: troupe makes one from project_dir's repository at
    /// its current HEAD, on a new branch troupe/<name>, under its data directory. Terminate
    /// keeps the worktree and the branch; get_worktree_status reports it, remove_worktree
    /// removes it once nothing would be lost.
    #[serde(default)]
    pub use_worktree: bool,
    /// How it asks before using tools: skip (the server's default: no prompts), or a
    /// prompting mode, default, accept-edits or plan, in which each permission request waits
    /// for a decision (respond_to_permission, the dashboard, or a rule) and the instance's
    /// state is waiting_permission meanwhile.
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// Rules that decide permission requests without asking anyone: {"allow": ["Bash(npm
    /// test*)", "Read"], "deny": ["Bash(rm *)"]}; a tool name, optionally with a pattern on
    /// its command, file path or URL (`*` any text). Deny wins.
    #[serde(default)]
    pub permission_rules: Option<crate::permissions::Rules>,
    /// The host to run it on, in a fleet: a host's name, or `label:NAME` for the roomiest host
    /// with that label. Default: the parent's host, else the host this call reached.
    #[serde(default)]
    pub host: Option<String>,
}

/// An instance as troupe reports it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InstanceView {
    pub instance_id: String,
    pub name: String,
    pub agent: String,
    pub role: String,
    pub model: String,
    pub state: InstanceState,
    /// Why the instance is in this state.
    pub state_reason: String,
    pub state_since: String,
    pub parent_instance_id: Option<String>,
    pub workdir: String,
    pub tmux_session: String,
    pub created_at: String,
    /// skip (no prompts) or the prompting mode its permission requests come from.
    pub permission_mode: String,
    /// The host that runs it.
    pub host: String,
}

impl From<Summary> for InstanceView {
    fn from(i: Summary) -> Self {
        InstanceView {
            instance_id: i.id,
            name: i.name,
            agent: i.agent.to_string(),
            role: i.role,
            model: i.model,
            state: i.state,
            state_reason: i.state_reason,
            state_since: i.state_since,
            parent_instance_id: i.parent_id,
            workdir: i.workdir,
            tmux_session: i.tmux_session,
            created_at: i.created_at,
            permission_mode: i.permission_mode.to_string(),
            host: i.host,
        }
    }
}

impl From<Instance> for InstanceView {
    fn from(i: Instance) -> Self {
        Summary::from(i).into()
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpawnResult {
    pub instance_id: String,
    /// The instance's state once spawn returns (idle: ready for messages).
    pub status: InstanceState,
    pub instance: InstanceView,
    /// Something to know about this instance, such as a model troupe has no price for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InstanceIdParams {
    /// The instance id, e.g. architect-7a3f.
    pub instance_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StatusParams {
    /// One instance's id; omit for every instance.
    #[serde(default)]
    pub instance_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub instance: InstanceView,
    /// Messages queued or in progress.
    pub pending_messages: i64,
    /// Their ids, oldest first: get_message fetches each one's answer.
    pub open_messages: Vec<String>,
    /// Tokens and cost so far (micro-dollars).
    pub usage: UsageTotals,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusResult {
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListParams {
    /// Include terminated and failed instances too.
    #[serde(default)]
    pub include_terminated: bool,
}

/// What a `list_instances` answer is made from: the instance rows as of `version`, and the
/// caller, whose subtree it shows (None: the person, who sees all).
#[derive(Debug, Clone, PartialEq)]
pub struct ListKey {
    version: u64,
    include_terminated: bool,
    caller: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListResult {
    pub instances: Vec<ListedInstance>,
    pub count: usize,
}

/// An instance as a list shows it: who it is and what it is doing. Where it works, since
/// when, its session and permission mode are one `get_instance_status` away. A list of
/// hundreds is read by a model at every call, and answered to many callers at once: each
/// field here is paid for per instance and per call.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListedInstance {
    pub instance_id: String,
    pub name: String,
    pub agent: String,
    pub role: String,
    pub model: String,
    pub state: InstanceState,
    /// The instance that spawned it; absent for one the person spawned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_instance_id: Option<String>,
    /// The host that runs it.
    pub host: String,
}

impl From<Summary> for ListedInstance {
    fn from(i: Summary) -> Self {
        ListedInstance {
            instance_id: i.id,
            name: i.name,
            agent: i.agent.to_string(),
            role: i.role,
            model: i.model,
            state: i.state,
            parent_instance_id: i.parent_id,
            host: i.host,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct OutputParams {
    /// The instance id.
    pub instance_id: String,
    /// How many of the most recent lines to return (default 100).
    #[serde(default)]
    pub lines: Option<usize>,
    /// Only output recorded after this timestamp (as returned in `latest`).
    #[serde(default)]
    pub since: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OutputResult {
    pub instance_id: String,
    /// The recent output: prompts as "> ...", replies as text, tool calls and results marked.
    pub output: String,
    /// Timestamp of the newest chunk returned; pass it as `since` to get only what follows.
    pub latest: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TerminateResult {
    pub success: bool,
    pub instance_id: String,
    pub state: InstanceState,
    /// Every instance ended, in order: descendants (deepest first), then this one.
    pub terminated: Vec<String>,
}

impl Troupe {
    /// The instances `rows` the caller may see: for an instance caller, only itself and the
    /// instances below it (see [`crate::access`]); for the person, all of them.
    async fn reachable(
        &self,
        extensions: &Extensions,
        rows: &[Summary],
    ) -> Result<Vec<Summary>, String> {
        Ok(match caller(extensions) {
            Some(me) => {
                let inside = self.sup.subtree(&me).await.map_err(tool_error)?;
                rows.iter()
                    .filter(|i| inside.contains(&i.id))
                    .cloned()
                    .collect()
            }
            None => rows.to_vec(),
        })
    }

    /// One spawn on behalf of the caller, placed where the caller works unless told.
    async fn spawn_one(
        &self,
        ctx: &RequestContext<RoleServer>,
        project_dir: Option<String>,
        mut req: SpawnRequest,
    ) -> Result<Json<SpawnResult>, String> {
        let caller = caller(&ctx.extensions);
        req.project_dir = self.default_dir(ctx, caller.as_deref(), project_dir).await;
        let inst = self
            .sup
            .spawn(req, caller.as_deref())
            .await
            .map_err(tool_error)?;
        let warning = crate::pricing::unpriced_warning(
            &self.sup.config().prices,
            &inst.model,
            chrono::Utc::now().date_naive(),
        );
        if let Some(w) = &warning {
            tracing::warn!(instance = %inst.id, "{w}");
        }
        Ok(Json(SpawnResult {
            instance_id: inst.id.clone(),
            status: inst.state,
            instance: inst.into(),
            warning,
        }))
    }
}

#[tool_router(router = instance_tools, vis = "pub(super)")]
impl Troupe {
    /// Start a Claude Code instance in its own tmux session and wait until it is ready.
    #[tool(
        name = "spawn_claude",
        description = "Create a new Claude Code instance with a role (architect, developer, reviewer, tester, documenter, researcher) and model; returns its instance_id once it is ready for messages."
    )]
    pub async fn spawn_claude(
        &self,
        Parameters(p): Parameters<SpawnClaudeParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SpawnResult>, String> {
        let project_dir = p.project_dir.clone();
        self.spawn_one(
            &ctx,
            project_dir,
            SpawnRequest {
                agent: None,
                sandbox_mode: None,
                name: p.name,
                role: p.role,
                model: p.model,
                system_prompt: p.system_prompt,
                context: p.context,
                project_dir: None,
                parent_instance_id: p.parent_instance_id,
                use_worktree: p.use_worktree,
                permission_mode: p.permission_mode,
                permission_rules: p.permission_rules,
                host: p.host,
            },
        )
        .await
    }

    /// Start a Codex instance in its own tmux session and wait until it is ready.
    #[tool(
        name = "spawn_codex",
        description = "Create a new OpenAI Codex CLI instance with a role and model (default gpt-5); returns its instance_id once it is ready. It takes the same messages, interrupts and hierarchy as a Claude instance."
    )]
    pub async fn spawn_codex(
        &self,
        Parameters(p): Parameters<SpawnCodexParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SpawnResult>, String> {
        let project_dir = p.project_dir.clone();
        self.spawn_one(
            &ctx,
            project_dir,
            SpawnRequest {
                agent: Some(crate::agents::AgentKind::Codex.as_str().into()),
                sandbox_mode: p.sandbox_mode,
                name: p.name,
                role: p.role,
                model: p.model,
                system_prompt: p.system_prompt,
                context: p.context,
                project_dir: None,
                parent_instance_id: p.parent_instance_id,
                use_worktree: p.use_worktree,
                permission_mode: p.permission_mode,
                permission_rules: p.permission_rules,
                host: p.host,
            },
        )
        .await
    }

    #[tool(
        name = "list_instances",
        description = "List the instances troupe runs: id, name, agent, role, model, state, parent and host of each. get_instance_status has why each is in its state, its workdir, pending messages and usage.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<ListResult>()
    )]
    pub async fn list_instances(
        &self,
        Parameters(p): Parameters<ListParams>,
        extensions: Extensions,
    ) -> Result<Rendered, String> {
        // Read before the rows: a write in between only makes the kept answer newer than its
        // key, never older.
        let key = Instance::listing_version(self.sup.pool()).map(|version| ListKey {
            version,
            include_terminated: p.include_terminated,
            caller: caller(&extensions),
        });
        let render = async || {
            let rows = Instance::list_summaries(self.sup.pool(), p.include_terminated)
                .await
                .map_err(|e| tool_error(e.into()))?;
            let rows = self.reachable(&extensions, &rows).await?;
            let instances: Vec<ListedInstance> = rows.into_iter().map(Into::into).collect();
            Json(ListResult {
                count: instances.len(),
                instances,
            })
            .rendered()
        };
        match key {
            Some(key) => self.state.lists.get_or_render(key, render).await,
            None => render().await,
        }
    }

    #[tool(
        name = "get_instance_status",
        description = "Status of one instance (instance_id) or of all: state and why, pending messages, tokens and cost."
    )]
    pub async fn get_instance_status(
        &self,
        Parameters(p): Parameters<StatusParams>,
        extensions: Extensions,
    ) -> Result<Json<StatusResult>, String> {
        let pool = self.sup.pool();
        let err = |e: sqlx::Error| tool_error(e.into());
        let Some(id) = p.instance_id.as_deref() else {
            // Every instance: three queries, however many there are.
            let rows = Instance::list_summaries(pool, true).await.map_err(err)?;
            let rows = self.reachable(&extensions, &rows).await?;
            let mut open = Message::open_ids_by_instance(pool).await.map_err(err)?;
            let mut usage = UsageRecord::totals_by_instance(pool).await.map_err(err)?;
            let instances = rows
                .into_iter()
                .map(|inst| {
                    let open_messages = open.remove(&inst.id).unwrap_or_default();
                    InstanceStatus {
                        usage: usage.remove(&inst.id).unwrap_or_default(),
                        pending_messages: open_messages.len() as i64,
                        open_messages,
                        instance: inst.into(),
                    }
                })
                .collect();
            return Ok(Json(StatusResult { instances }));
        };
        let inst = Instance::find(pool, id)
            .await
            .map_err(err)?
            .ok_or_else(|| tool_error(Error::UnknownInstance(id.to_string())))?;
        let rows = self.reachable(&extensions, &[Summary::from(inst)]).await?;
        let mut instances = Vec::with_capacity(rows.len());
        for inst in rows {
            let open_messages = Message::open_ids(pool, &inst.id).await.map_err(err)?;
            let usage = UsageRecord::totals_for_instance(pool, &inst.id)
                .await
                .map_err(err)?;
            instances.push(InstanceStatus {
                instance: inst.into(),
                pending_messages: open_messages.len() as i64,
                open_messages,
                usage,
            });
        }
        Ok(Json(StatusResult { instances }))
    }

    #[tool(
        name = "get_instance_output",
        description = "Recent output of an instance (prompts, replies, tool calls), read from its transcript: the last `lines` lines, or what came after `since`."
    )]
    pub async fn get_instance_output(
        &self,
        Parameters(p): Parameters<OutputParams>,
    ) -> Result<Json<OutputResult>, String> {
        let pool = self.sup.pool();
        if Instance::find(pool, &p.instance_id)
            .await
            .map_err(|e| tool_error(e.into()))?
            .is_none()
        {
            return Err(tool_error(Error::UnknownInstance(p.instance_id)));
        }
        let lines = p.lines.unwrap_or(100).clamp(1, 10_000);
        let chunks = OutputChunk::recent(pool, &p.instance_id, p.since.as_deref(), lines as i64)
            .await
            .map_err(|e| tool_error(e.into()))?;
        let latest = chunks.last().map(|c| c.created_at.clone());
        let text = chunks
            .iter()
            .map(render_chunk)
            .collect::<Vec<_>>()
            .join("\n");
        let all: Vec<&str> = text.lines().collect();
        let output = all[all.len().saturating_sub(lines)..].join("\n");
        Ok(Json(OutputResult {
            instance_id: p.instance_id,
            output,
            latest,
        }))
    }

    #[tool(
        name = "terminate_instance",
        description = "Shut an instance down, and first all of its descendants (deepest first): their tmux sessions end and unfinished messages fail. The records stay in the database."
    )]
    pub async fn terminate_instance(
        &self,
        Parameters(p): Parameters<InstanceIdParams>,
        extensions: Extensions,
    ) -> Result<Json<TerminateResult>, String> {
        let terminated = self
            .sup
            .terminate(&p.instance_id, caller(&extensions).as_deref())
            .await
            .map_err(tool_error)?;
        Ok(Json(TerminateResult {
            success: true,
            instance_id: p.instance_id,
            state: InstanceState::Terminated,
            terminated,
        }))
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SuspendResult {
    pub success: bool,
    pub instance_id: String,
    pub state: InstanceState,
}

#[tool_router(router = lifecycle_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "suspend_instance",
        description = "End an idle instance's terminal session but keep its conversation; the next message (or resume_instance) brings it back. Frees memory while the instance is not needed."
    )]
    pub async fn suspend_instance(
        &self,
        Parameters(p): Parameters<InstanceIdParams>,
        extensions: Extensions,
    ) -> Result<Json<SuspendResult>, String> {
        self.sup
            .suspend(&p.instance_id, caller(&extensions).as_deref())
            .await
            .map_err(tool_error)?;
        Ok(Json(SuspendResult {
            success: true,
            instance_id: p.instance_id,
            state: InstanceState::Suspended,
        }))
    }

    #[tool(
        name = "resume_instance",
        description = "Bring a suspended, terminated or stopped instance back with its conversation intact (the CLI's own --resume)."
    )]
    pub async fn resume_instance(
        &self,
        Parameters(p): Parameters<InstanceIdParams>,
        extensions: Extensions,
    ) -> Result<Json<InstanceView>, String> {
        self.sup
            .resume_instance(&p.instance_id, caller(&extensions).as_deref())
            .await
            .map(|i| Json(i.into()))
            .map_err(tool_error)
    }
}

fn render_chunk(c: &OutputChunk) -> String {
    match c.source.as_str() {
        "prompt" => format!("> {}", c.content.replace('\n', "\n  ")),
        "tool_use" => format!("[tool] {}", c.content),
        "tool_result" => format!("[result] {}", c.content),
        _ => c.content.clone(),
    }
}
