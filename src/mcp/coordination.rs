//! Trees and teamwork: the hierarchy tools, replies from children, and work spread over
//! several instances at once.

use crate::states::{InstanceState, InterruptOutcome};
use std::time::Duration;

use super::Json;
use super::Parameters;
use rmcp::model::Extensions;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::instances::InstanceView;
use super::{Troupe, caller, tool_error};
use crate::db::instances::Instance;
use crate::db::replies::Reply;
use crate::error::Error;
use crate::supervisor::SpawnRequest;
use crate::supervisor::coordination::{TaskResult, TaskStatus};
use crate::supervisor::hierarchy::TreeNode;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TreeParams {
    /// Show only this instance and its descendants.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Include terminated and failed instances.
    #[serde(default)]
    pub include_terminated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TreeResult {
    /// The tree as indented text.
    pub text: String,
    pub roots: Vec<TreeNode>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChildrenParams {
    /// The parent; defaults to the calling instance.
    #[serde(default, alias = "parent_instance_id")]
    pub instance_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ChildrenResult {
    pub parent_instance_id: String,
    pub children: Vec<InstanceView>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BroadcastParams {
    /// The message for every live child.
    pub message: String,
    /// The parent; defaults to the calling instance.
    #[serde(default, alias = "parent_instance_id")]
    pub instance_id: Option<String>,
    /// Wait for every child's answer (default false).
    #[serde(default)]
    pub wait_for_response: bool,
    /// Seconds to wait for answers (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TasksResult {
    pub results: Vec<TaskResult>,
    /// How many tasks were answered.
    pub answered: usize,
}

impl TasksResult {
    fn new(results: Vec<TaskResult>) -> Self {
        TasksResult {
            answered: results
                .iter()
                .filter(|r| r.status == TaskStatus::Answered)
                .count(),
            results,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReplyParams {
    /// What to tell the caller.
    pub message: String,
    /// Ties the reply to a request; defaults to the message this instance is answering.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PendingRepliesParams {
    /// Whose inbox; defaults to the calling instance (or the orchestrating session).
    #[serde(default)]
    pub instance_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RepliesResult {
    pub replies: Vec<Reply>,
    /// Permission requests from instances below you that wait for your decision
    /// (respond_to_permission).
    pub permission_requests: Vec<super::permissions::RequestView>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SpawnManyParams {
    /// One entry per instance: spawn_claude's fields, and `agent` (claude or codex) with
    /// spawn_codex's `sandbox_mode` for Codex.
    pub instances: Vec<SpawnEntry>,
}

/// spawn_claude's fields, written out: a flattened struct would lose the path of a bad field
/// in the error.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SpawnEntry {
    /// Model: for Claude opus, sonnet, haiku or a claude-* id (default: the role's); for
    /// Codex an OpenAI model id (default gpt-5).
    #[serde(default)]
    pub model: Option<String>,
    /// Role: a preset (architect, developer, reviewer, tester, documenter, researcher) or any
    /// other role name. Defaults to developer.
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
    /// A short name (letters, digits, '-', '_'); the id becomes name-xxxx. Defaults to the role.
    #[serde(default)]
    pub name: Option<String>,
    /// The parent instance. Defaults to the calling instance when an instance spawns.
    #[serde(default)]
    pub parent_instance_id: Option<String>,
    /// The agent CLI: claude (the default) or codex.
    #[serde(default)]
    pub agent: Option<String>,
    /// Codex only: read-only, workspace-write or danger-full-access.
    #[serde(default)]
    pub sandbox_mode: Option<String>,
    /// Work in a git worktree of its own: troupe makes one from project_dir's repository at
    /// its current HEAD, on a new branch troupe/<name>, under its data directory. Terminate
    /// keeps the worktree and the branch; get_worktree_status reports it, remove_worktree
    /// removes it once nothing would be lost.
    #[serde(default)]
    pub use_worktree: bool,
    /// skip (the server's default) or a prompting mode: default, accept-edits, plan.
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// Rules that decide its permission requests without asking (as for spawn_claude).
    #[serde(default)]
    pub permission_rules: Option<crate::permissions::Rules>,
    /// The host to run it on, in a fleet: a host's name, or `label:NAME` for the roomiest host
    /// with that label. Default: the parent's host, else the host this call reached.
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpawnOutcome {
    pub instance_id: Option<String>,
    pub status: InstanceState,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpawnManyResult {
    pub instances: Vec<SpawnOutcome>,
    pub spawned: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Task {
    /// The instance to send to.
    pub instance_id: String,
    /// The message.
    pub message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendManyParams {
    /// One message per instance.
    #[serde(alias = "tasks")]
    pub messages: Vec<Task>,
    /// Wait for every answer (default true).
    #[serde(default)]
    pub wait_for_response: Option<bool>,
    /// Seconds to wait (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CoordinateParams {
    /// parallel (default): every task at once, results per task. sequential: tasks in order,
    /// each given the previous task's answer. consensus: `question` to every instance in
    /// `instance_ids`, answers side by side.
    #[serde(default)]
    pub mode: Option<String>,
    /// The tasks (parallel, sequential).
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// The instances to ask (consensus).
    #[serde(default)]
    pub instance_ids: Vec<String>,
    /// The question (consensus).
    #[serde(default)]
    pub question: Option<String>,
    /// Seconds to wait for each answer (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CoordinateResult {
    pub mode: String,
    /// Each task's answer, in task order (null where there was none).
    pub responses: Vec<Option<String>>,
    pub results: Vec<TaskResult>,
    pub answered: usize,
    /// For consensus: the answers side by side, for the caller to synthesise.
    pub summary: String,
}

/// What `coordinate_instances` sends, decided from its arguments alone.
#[derive(Debug, PartialEq)]
struct Coordination {
    mode: String,
    /// Each task's answer goes on to the next task.
    sequential: bool,
    /// (instance, message), in order.
    asks: Vec<(String, String)>,
}

impl Coordination {
    fn plan(p: CoordinateParams) -> Result<Coordination, Error> {
        let mode = p
            .mode
            .as_deref()
            .unwrap_or("parallel")
            .trim()
            .to_ascii_lowercase();
        let tasks: Vec<(String, String)> = p
            .tasks
            .into_iter()
            .map(|t| (t.instance_id, t.message))
            .collect();
        let asks = match mode.as_str() {
            "parallel" | "sequential" if tasks.is_empty() => {
                return Err(Error::InvalidInput(format!(
                    "mode {mode} needs tasks: [{{instance_id, message}}]"
                )));
            }
            "parallel" | "sequential" => tasks,
            "consensus" => {
                let question = p
                    .question
                    .filter(|q| !q.trim().is_empty())
                    .ok_or_else(|| Error::InvalidInput("mode consensus needs a question".into()))?;
                let ids = if p.instance_ids.is_empty() {
                    tasks.into_iter().map(|(id, _)| id).collect()
                } else {
                    p.instance_ids
                };
                if ids.is_empty() {
                    return Err(Error::InvalidInput(
                        "mode consensus needs instance_ids".into(),
                    ));
                }
                ids.into_iter().map(|id| (id, question.clone())).collect()
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "unknown mode {other:?}; use parallel, sequential or consensus"
                )));
            }
        };
        Ok(Coordination {
            sequential: mode == "sequential",
            mode,
            asks,
        })
    }

    /// What progress notifications call the work.
    fn label(&self) -> &'static str {
        match self.mode.as_str() {
            "sequential" => "sequential tasks",
            "consensus" => "consensus",
            _ => "parallel tasks",
        }
    }
}

impl CoordinateResult {
    fn new(mode: String, results: Vec<TaskResult>) -> CoordinateResult {
        let summary = results
            .iter()
            .map(|r| {
                format!(
                    "[{}] {}",
                    r.instance_id,
                    r.response
                        .as_deref()
                        .or(r.error.as_deref())
                        .unwrap_or(r.status.as_str())
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        CoordinateResult {
            mode,
            responses: results.iter().map(|r| r.response.clone()).collect(),
            answered: results
                .iter()
                .filter(|r| r.status == TaskStatus::Answered)
                .count(),
            results,
            summary,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InterruptManyParams {
    pub instance_ids: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InterruptedInstance {
    pub instance_id: String,
    pub interrupted: bool,
    pub outcome: InterruptOutcome,
    pub message_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InterruptManyResult {
    pub interrupted_instances: Vec<InterruptedInstance>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TerminateAllResult {
    pub terminated: Vec<String>,
}

fn wait_for(timeout_seconds: Option<u64>, default: Duration) -> Result<Duration, String> {
    super::wait_seconds("timeout_seconds", timeout_seconds, default)
}

#[tool_router(router = coordination_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "get_instance_tree",
        description = "The parent/child tree of instances: as text and as nodes (id, name, role, model, state, age)."
    )]
    pub async fn get_instance_tree(
        &self,
        Parameters(p): Parameters<TreeParams>,
        extensions: Extensions,
    ) -> Result<Json<TreeResult>, String> {
        // An instance sees its own tree.
        let root = p.instance_id.or_else(|| caller(&extensions));
        let (roots, text) = self
            .sup
            .tree(root.as_deref(), p.include_terminated)
            .await
            .map_err(tool_error)?;
        Ok(Json(TreeResult { text, roots }))
    }

    #[tool(
        name = "get_children",
        description = "The live children of an instance (default: the caller)."
    )]
    pub async fn get_children(
        &self,
        Parameters(p): Parameters<ChildrenParams>,
        extensions: Extensions,
    ) -> Result<Json<ChildrenResult>, String> {
        let parent = parent_or_caller(p.instance_id, &extensions)?;
        let children = Instance::children(self.sup.pool(), &parent, false)
            .await
            .map_err(|e| tool_error(e.into()))?;
        Ok(Json(ChildrenResult {
            parent_instance_id: parent,
            children: children.into_iter().map(Into::into).collect(),
        }))
    }

    #[tool(
        name = "broadcast_to_children",
        description = "Send one message to every live child of an instance (default: the caller); optionally wait for all answers."
    )]
    pub async fn broadcast_to_children(
        &self,
        Parameters(p): Parameters<BroadcastParams>,
        extensions: Extensions,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<TasksResult>, String> {
        let sender = caller(&extensions);
        let parent = parent_or_caller(p.instance_id, &extensions)?;
        let children = Instance::children(self.sup.pool(), &parent, false)
            .await
            .map_err(|e| tool_error(e.into()))?;
        let tasks: Vec<(String, String)> = children
            .into_iter()
            .map(|c| (c.id, p.message.clone()))
            .collect();
        let wait = p
            .wait_for_response
            .then(|| wait_for(p.timeout_seconds, self.sup.config().default_wait))
            .transpose()?
            .map(|w| self.capped(&ctx, w).0);
        let results = self
            .with_progress(
                &ctx,
                "waiting for the children",
                self.sup.send_many(&tasks, sender.as_deref(), wait),
            )
            .await;
        Ok(Json(TasksResult::new(results)))
    }

    #[tool(
        name = "reply_to_caller",
        description = "From a spawned instance: send a message to whoever gave you work (your parent, or the orchestrating session). They read it with get_pending_replies."
    )]
    pub async fn reply_to_caller(
        &self,
        Parameters(p): Parameters<ReplyParams>,
        extensions: Extensions,
    ) -> Result<Json<Reply>, String> {
        let from = caller(&extensions).ok_or_else(|| {
            "reply_to_caller is for instances troupe spawned; this call does not come from one"
                .to_string()
        })?;
        self.sup
            .reply_to_caller(&from, &p.message, p.correlation_id.as_deref())
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "get_pending_replies",
        description = "Replies your instances sent with reply_to_caller that you have not read yet (each is returned once), with their correlation ids."
    )]
    pub async fn get_pending_replies(
        &self,
        Parameters(p): Parameters<PendingRepliesParams>,
        extensions: Extensions,
    ) -> Result<Json<RepliesResult>, String> {
        let inbox = p.instance_id.or_else(|| caller(&extensions));
        let replies = self
            .sup
            .pending_replies(inbox.as_deref())
            .await
            .map_err(tool_error)?;
        let permission_requests = self
            .sup
            .pending_permissions(caller(&extensions).as_deref())
            .await
            .map_err(tool_error)?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(Json(RepliesResult {
            replies,
            permission_requests,
        }))
    }

    #[tool(
        name = "spawn_multiple_instances",
        description = "Spawn several instances in parallel (each entry takes spawn_claude's fields, plus agent: claude or codex); returns each one's id or error."
    )]
    pub async fn spawn_multiple_instances(
        &self,
        Parameters(p): Parameters<SpawnManyParams>,
        extensions: Extensions,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SpawnManyResult>, String> {
        if p.instances.is_empty() {
            return Err(tool_error(Error::InvalidInput("instances is empty".into())));
        }
        let caller = caller(&extensions);
        let unplaced = p.instances.iter().any(|s| s.project_dir.is_none());
        let default = match unplaced {
            true => self.default_dir(&ctx, caller.as_deref(), None).await,
            false => None,
        };
        let requests = p
            .instances
            .into_iter()
            .map(|e| SpawnRequest {
                agent: e.agent,
                sandbox_mode: e.sandbox_mode,
                project_dir: e.project_dir.or_else(|| default.clone()),
                name: e.name,
                role: e.role,
                model: e.model,
                system_prompt: e.system_prompt,
                context: e.context,
                parent_instance_id: e.parent_instance_id,
                use_worktree: e.use_worktree,
                permission_mode: e.permission_mode,
                permission_rules: e.permission_rules,
                host: e.host,
            })
            .collect();
        let outcomes = self
            .with_progress(
                &ctx,
                "spawning",
                self.sup.spawn_many(requests, caller.as_deref()),
            )
            .await;
        let instances: Vec<SpawnOutcome> = outcomes
            .into_iter()
            .map(|r| match r {
                Ok(i) => SpawnOutcome {
                    instance_id: Some(i.id),
                    status: i.state,
                    error: None,
                },
                Err(e) => SpawnOutcome {
                    instance_id: None,
                    status: InstanceState::Failed,
                    error: Some(e.to_string()),
                },
            })
            .collect();
        Ok(Json(SpawnManyResult {
            spawned: instances.iter().filter(|i| i.instance_id.is_some()).count(),
            instances,
        }))
    }

    #[tool(
        name = "send_to_multiple_instances",
        description = "Send a message to each of several instances at once; waits for all answers by default."
    )]
    pub async fn send_to_multiple_instances(
        &self,
        Parameters(p): Parameters<SendManyParams>,
        extensions: Extensions,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<TasksResult>, String> {
        let sender = caller(&extensions);
        let tasks: Vec<(String, String)> = p
            .messages
            .into_iter()
            .map(|t| (t.instance_id, t.message))
            .collect();
        let wait = p
            .wait_for_response
            .unwrap_or(true)
            .then(|| wait_for(p.timeout_seconds, self.sup.config().default_wait))
            .transpose()?
            .map(|w| self.capped(&ctx, w).0);
        let results = self
            .with_progress(
                &ctx,
                "waiting for answers",
                self.sup.send_many(&tasks, sender.as_deref(), wait),
            )
            .await;
        Ok(Json(TasksResult::new(results)))
    }

    #[tool(
        name = "coordinate_instances",
        description = "Coordinate several instances: mode parallel (tasks[] of {instance_id, message}, all at once, results per task), sequential (each task gets the previous answer), or consensus (one question to instance_ids, answers side by side for you to synthesise)."
    )]
    pub async fn coordinate_instances(
        &self,
        Parameters(p): Parameters<CoordinateParams>,
        extensions: Extensions,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<CoordinateResult>, String> {
        let sender = caller(&extensions);
        let wait = self
            .capped(
                &ctx,
                wait_for(p.timeout_seconds, self.sup.config().default_wait)?,
            )
            .0;
        let plan = Coordination::plan(p).map_err(tool_error)?;
        let results = if plan.sequential {
            let work = self.sup.pipeline(&plan.asks, sender.as_deref(), wait);
            self.with_progress(&ctx, plan.label(), work).await
        } else {
            let work = self
                .sup
                .send_many(&plan.asks, sender.as_deref(), Some(wait));
            self.with_progress(&ctx, plan.label(), work).await
        };
        Ok(Json(CoordinateResult::new(plan.mode, results)))
    }

    #[tool(
        name = "interrupt_multiple_instances",
        description = "Interrupt several instances at once (Escape); each keeps its conversation."
    )]
    pub async fn interrupt_multiple_instances(
        &self,
        Parameters(p): Parameters<InterruptManyParams>,
        extensions: Extensions,
    ) -> Result<Json<InterruptManyResult>, String> {
        Ok(Json(
            self.interrupt_ids(&p.instance_ids, caller(&extensions).as_deref())
                .await,
        ))
    }

    #[tool(
        name = "interrupt_all",
        description = "Interrupt every live instance's running turn; conversations are kept."
    )]
    pub async fn interrupt_all(
        &self,
        extensions: Extensions,
    ) -> Result<Json<InterruptManyResult>, String> {
        let ids = self.sup.fleet_live_ids().await.map_err(|e| e.to_string())?;
        Ok(Json(
            self.interrupt_ids(&ids, caller(&extensions).as_deref())
                .await,
        ))
    }

    #[tool(
        name = "terminate_all",
        description = "Terminate every live instance (children before parents)."
    )]
    pub async fn terminate_all(&self) -> Result<Json<TerminateAllResult>, String> {
        // The person's alone (src/access.rs): no instance calls it.
        let terminated = self
            .sup
            .terminate_fleet(None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Json(TerminateAllResult { terminated }))
    }
}

impl Troupe {
    async fn interrupt_ids(&self, ids: &[String], caller: Option<&str>) -> InterruptManyResult {
        let mut interrupted_instances = Vec::new();
        let mut errors = Vec::new();
        for (id, r) in self.sup.interrupt_many(ids, caller).await {
            match r {
                Ok(report) => interrupted_instances.push(InterruptedInstance {
                    instance_id: id,
                    interrupted: report.interrupted,
                    outcome: report.outcome,
                    message_id: report.message_id,
                }),
                Err(e) => errors.push(format!("{id}: {e}")),
            }
        }
        InterruptManyResult {
            interrupted_instances,
            errors,
        }
    }
}

fn parent_or_caller(explicit: Option<String>, extensions: &Extensions) -> Result<String, String> {
    explicit.or_else(|| caller(extensions)).ok_or_else(|| {
        "name the parent with instance_id (this call does not come from a troupe instance)"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: serde_json::Value) -> Result<Coordination, String> {
        let p: CoordinateParams = serde_json::from_value(args).unwrap();
        Coordination::plan(p).map_err(|e| e.to_string())
    }

    fn pair(id: &str, text: &str) -> (String, String) {
        (id.into(), text.into())
    }

    #[test]
    fn parallel_is_the_default_and_keeps_task_order() {
        let c = plan(serde_json::json!({ "tasks": [
            { "instance_id": "b", "message": "two" },
            { "instance_id": "a", "message": "one" },
        ]}))
        .unwrap();
        assert_eq!(c.mode, "parallel");
        assert!(!c.sequential);
        assert_eq!(c.asks, [pair("b", "two"), pair("a", "one")]);
        assert_eq!(c.label(), "parallel tasks");
    }

    #[test]
    fn sequential_is_read_loosely_and_runs_in_order() {
        let c = plan(serde_json::json!({ "mode": " Sequential ", "tasks": [
            { "instance_id": "a", "message": "first" },
        ]}))
        .unwrap();
        assert_eq!(c.mode, "sequential");
        assert!(c.sequential);
        assert_eq!(c.label(), "sequential tasks");
    }

    #[test]
    fn consensus_asks_each_instance_the_one_question() {
        let c = plan(serde_json::json!({
            "mode": "consensus", "question": "which?", "instance_ids": ["a", "b"]
        }))
        .unwrap();
        assert_eq!(c.asks, [pair("a", "which?"), pair("b", "which?")]);
        // Without instance_ids, the tasks' instances are asked.
        let c = plan(serde_json::json!({
            "mode": "consensus", "question": "which?",
            "tasks": [{ "instance_id": "c", "message": "ignored" }]
        }))
        .unwrap();
        assert_eq!(c.asks, [pair("c", "which?")]);
    }

    #[test]
    fn what_cannot_run_says_what_is_missing() {
        for (args, says) in [
            (serde_json::json!({}), "mode parallel needs tasks"),
            (
                serde_json::json!({ "mode": "sequential" }),
                "mode sequential needs tasks",
            ),
            (
                serde_json::json!({ "mode": "consensus", "instance_ids": ["a"], "question": " " }),
                "needs a question",
            ),
            (
                serde_json::json!({ "mode": "consensus", "question": "q" }),
                "needs instance_ids",
            ),
            (
                serde_json::json!({ "mode": "vote", "tasks": [] }),
                "unknown mode \"vote\"",
            ),
        ] {
            let err = plan(args.clone()).unwrap_err();
            assert!(err.contains(says), "{args}: {err}");
        }
    }
}
