//! The worktrees of instances spawned with `use_worktree`: what is in them, and removing one
//! once nothing would be lost.

use super::Json;
use super::Parameters;
use rmcp::model::Extensions;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Troupe, caller, tool_error};
use crate::supervisor::worktrees::{WorktreeRemoved, WorktreeStatus};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WorktreeParams {
    /// The instance (spawned with use_worktree), e.g. developer-7a3f.
    pub instance_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RemoveParams {
    /// The instance (spawned with use_worktree), e.g. developer-7a3f.
    pub instance_id: String,
    /// Let git delete the worktree's ignored files (build output, a .env) with it; without
    /// this, removal is refused while there are any, naming them.
    #[serde(default)]
    pub force_ignored: bool,
}

#[tool_router(router = worktree_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "get_worktree_status",
        description = "The git worktree of an instance spawned with use_worktree: its branch, base commit, uncommitted files (untracked included), diff stat since the base, and the commits its branch is ahead of the base."
    )]
    pub async fn get_worktree_status(
        &self,
        Parameters(p): Parameters<WorktreeParams>,
        extensions: Extensions,
    ) -> Result<Json<WorktreeStatus>, String> {
        self.sup
            .worktree_status(p.instance_id.trim(), caller(&extensions).as_deref())
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "remove_worktree",
        description = "Remove a terminated instance's git worktree (git worktree remove, never forced); its branch is kept. Refused, with the reason, while the instance runs, while the worktree has uncommitted changes, while its branch has commits no other branch holds, or while it holds ignored files (force_ignored: true lets those go)."
    )]
    pub async fn remove_worktree(
        &self,
        Parameters(p): Parameters<RemoveParams>,
        extensions: Extensions,
    ) -> Result<Json<WorktreeRemoved>, String> {
        self.sup
            .remove_worktree(
                p.instance_id.trim(),
                caller(&extensions).as_deref(),
                p.force_ignored,
            )
            .await
            .map(Json)
            .map_err(tool_error)
    }
}
