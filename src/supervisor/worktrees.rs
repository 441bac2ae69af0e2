//! Instances that work in a git worktree of their own (`use_worktree`): made at spawn from
//! the project directory's repository, on a branch `troupe/<name>`, under
//! `<data_dir>/worktrees/<instance-id>`. Terminate and dissolve leave worktrees and branches
//! alone; removing one is explicit, and refused while anything would be lost.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::Supervisor;
use crate::db::audit;
use crate::db::instances::Instance;
use crate::db::worktrees::Worktree;
use crate::error::{Error, Result};
use crate::states::InstanceState;
use crate::worktree::{self, DiffStat, FileChange, Repo};

/// What a spawn with `use_worktree` checked before writing anything.
#[derive(Debug, Clone)]
pub(super) struct WorktreePlan {
    repo: Repo,
    root: PathBuf,
    path: PathBuf,
    /// Where the instance works: the worktree, or the same subdirectory of it that
    /// project_dir is of its repository.
    pub workdir: PathBuf,
}

/// An instance's worktree as `get_worktree_status` reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct WorktreeStatus {
    pub instance_id: String,
    /// The repository (its top level) the worktree belongs to.
    pub repo: String,
    /// The worktree's directory.
    pub path: String,
    /// The instance's own branch.
    pub branch: String,
    /// The commit the branch started from.
    pub base_commit: String,
    pub created_at: String,
    /// When the worktree was removed (its branch is kept); None while it exists.
    pub removed_at: Option<String>,
    /// Whether the worktree's directory is there.
    pub exists: bool,
    /// Whether the branch is there (someone may have deleted it outside troupe).
    pub branch_exists: bool,
    /// The commit the worktree has checked out.
    pub head: Option<String>,
    /// No uncommitted change and no untracked file.
    pub clean: bool,
    /// Uncommitted changes, untracked files included (git status).
    pub changed_files: Vec<FileChange>,
    /// Tracked files changed since the base commit, committed or not (the branch's, once the
    /// worktree is removed).
    pub diff_stat: DiffStat,
    /// How many commits the branch has on top of its base.
    pub commits_ahead: usize,
    /// Those commits, newest first, one line each: `<hash> <subject>`.
    pub commits: Vec<String>,
}

/// What `remove_worktree` did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct WorktreeRemoved {
    pub instance_id: String,
    pub path: String,
    /// The branch, kept: removing a worktree never deletes its branch.
    pub branch: String,
    pub removed_at: String,
    /// Anything worth knowing (the directory was gone already, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Supervisor {
    /// Where worktrees live: `<data_dir>/worktrees`, private.
    fn worktrees_root(&self) -> Result<PathBuf> {
        let root = self.config().data_dir.join("worktrees");
        crate::private::dir(&root)
            .map_err(|e| Error::Agent(format!("cannot create {}: {e}", root.display())))?;
        Ok(root)
    }

    /// Checks a spawn's worktree before anything is written: git runs, `dir` is in a
    /// repository with a commit, and the directory troupe will use is free.
    pub(super) async fn plan_worktree(&self, dir: &Path, id: &str) -> Result<WorktreePlan> {
        let repo = worktree::repo_of(dir).await?;
        let root = self.worktrees_root()?;
        let path = worktree::worktree_path(&root, id)?;
        let sub = repo.prefix.trim_end_matches('/');
        let workdir = if !sub.is_empty()
            && worktree::is_directory_at(&repo.toplevel, &repo.head, sub).await?
        {
            path.join(sub)
        } else {
            path.clone()
        };
        Ok(WorktreePlan {
            repo,
            root,
            path,
            workdir,
        })
    }

    /// Makes the planned worktree on a new branch at the repository's HEAD, records it and
    /// audits it. The instance's row is written already (its workdir is the worktree).
    pub(super) async fn make_worktree(
        &self,
        plan: &WorktreePlan,
        id: &str,
        name: &str,
        caller: Option<&str>,
    ) -> Result<()> {
        let toplevel = &plan.repo.toplevel;
        let _one_at_a_time = self.shared.worktree_creating.lock().await;
        let mut branch = worktree::branch_name(name);
        if !worktree::valid_branch(toplevel, &branch).await? {
            branch = worktree::branch_name(id);
        }
        if worktree::branch_exists(toplevel, &branch).await? {
            let taken = branch;
            branch = worktree::branch_with_suffix(&taken, id);
            if worktree::branch_exists(toplevel, &branch).await? {
                return Err(Error::Refused(format!(
                    "branches {taken} and {branch} exist already in {}; spawn with another \
                     name",
                    toplevel.display()
                )));
            }
        }
        worktree::add(toplevel, &plan.path, &branch, &plan.repo.head).await?;
        let path = worktree::check_inside(&plan.root, &plan.path)?;
        let (repo, path) = (toplevel.display().to_string(), path.display().to_string());
        Worktree::insert(self.pool(), id, &repo, &path, &branch, &plan.repo.head).await?;
        audit::record(
            self.pool(),
            caller,
            Some(id),
            "worktree.create",
            json!({ "repo": repo, "path": path, "branch": branch, "base_commit": plan.repo.head }),
        )
        .await;
        tracing::info!(instance = id, %branch, "worktree {path} from {repo}");
        Ok(())
    }

    async fn worktree_of(&self, caller: Option<&str>, id: &str) -> Result<(Instance, Worktree)> {
        let inst = self.visible_to(caller, id).await?;
        let wt = Worktree::find(self.pool(), id).await?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "instance {id} has no worktree (it was not spawned with use_worktree); it \
                 works in {}",
                inst.workdir
            ))
        })?;
        Ok((inst, wt))
    }

    /// The worktree's branch, base, uncommitted changes, diff stat and commits ahead.
    pub async fn worktree_status(&self, id: &str, caller: Option<&str>) -> Result<WorktreeStatus> {
        if let Some(host) = self.owner_elsewhere(id).await? {
            let act = crate::handover::Act::WorktreeStatus;
            return self.hand_over(&host, id, caller, act).await;
        }
        let (_, wt) = self.worktree_of(caller, id).await?;
        let (repo, path) = (Path::new(&wt.repo), Path::new(&wt.path));
        let exists = wt.removed_at.is_none() && path.is_dir();
        let branch_exists = worktree::branch_exists(repo, &wt.branch).await?;
        let (head, changed_files, diff_stat) = if exists {
            (
                Some(worktree::head(path).await?),
                worktree::status(path).await?,
                worktree::diff_stat(path, &wt.base_commit, None).await?,
            )
        } else if branch_exists {
            let tip = format!("refs/heads/{}", wt.branch);
            let stat = worktree::diff_stat(repo, &wt.base_commit, Some(&tip)).await?;
            (None, Vec::new(), stat)
        } else {
            (None, Vec::new(), DiffStat::default())
        };
        let commits = if branch_exists {
            worktree::commits_since(repo, &wt.base_commit, &wt.branch).await?
        } else {
            Vec::new()
        };
        Ok(WorktreeStatus {
            instance_id: wt.instance_id,
            repo: wt.repo,
            path: wt.path,
            branch: wt.branch,
            base_commit: wt.base_commit,
            created_at: wt.created_at,
            removed_at: wt.removed_at,
            exists,
            branch_exists,
            head,
            clean: changed_files.is_empty(),
            changed_files,
            diff_stat,
            commits_ahead: commits.len(),
            commits: commits.iter().map(worktree::Commit::line).collect(),
        })
    }

    /// Removes an ended instance's worktree (`git worktree remove`, never forced) and keeps
    /// its branch; refused, with what is in the way, while the instance runs, while anything
    /// is uncommitted, while the branch has commits no other branch holds, or while ignored
    /// files would go with it (unless `force_ignored`).
    pub async fn remove_worktree(
        &self,
        id: &str,
        caller: Option<&str>,
        force_ignored: bool,
    ) -> Result<WorktreeRemoved> {
        if let Some(host) = self.owner_elsewhere(id).await? {
            let act = crate::handover::Act::RemoveWorktree { force_ignored };
            return self.hand_over(&host, id, caller, act).await;
        }
        let (inst, wt) = self.worktree_of(caller, id).await?;
        if let Some(at) = &wt.removed_at {
            return Err(Error::InvalidInput(format!(
                "the worktree of {id} ({}) was removed at {at}; its branch {} is kept",
                wt.path, wt.branch
            )));
        }
        let live = self.handle(id).is_some()
            || matches!(
                inst.state,
                InstanceState::Starting
                    | InstanceState::Idle
                    | InstanceState::Busy
                    | InstanceState::WaitingPermission
                    | InstanceState::Attached
                    | InstanceState::HostLost
            );
        if live {
            return Err(Error::Refused(format!(
                "instance {id} is {} and works in its worktree {}; terminate_instance({id}) \
                 first (its worktree and branch {} stay), then remove the worktree",
                inst.state, wt.path, wt.branch
            )));
        }
        let path = Path::new(&wt.path);
        let mut note = None;
        if path.is_dir() {
            let changes = worktree::status_with_ignored(path).await?;
            let unique = worktree::unique_commits(path, &wt.branch).await?;
            if let Err(refusal) = worktree::removal_decision(&changes, &unique, force_ignored) {
                let reason = refusal.explain(&wt.path, &wt.branch);
                audit::record(
                    self.pool(),
                    caller,
                    Some(id),
                    "worktree.remove_refused",
                    json!({ "path": wt.path, "branch": wt.branch, "reason": reason }),
                )
                .await;
                return Err(Error::Refused(reason));
            }
            // Run from the worktree itself: the directory it was made from may be another
            // worktree, gone by now.
            worktree::remove(path, path).await?;
        } else {
            note = Some(format!(
                "the directory {} was gone already (removed outside troupe); `git -C {} \
                 worktree prune` makes git forget it",
                wt.path, wt.repo
            ));
        }
        let removed_at = Worktree::mark_removed(self.pool(), id)
            .await?
            .unwrap_or_else(crate::db::now);
        audit::record(
            self.pool(),
            caller,
            Some(id),
            "worktree.remove",
            json!({ "path": wt.path, "branch": wt.branch, "branch_kept": true, "note": note }),
        )
        .await;
        tracing::info!(instance = id, branch = %wt.branch, "removed worktree {}", wt.path);
        Ok(WorktreeRemoved {
            instance_id: wt.instance_id,
            path: wt.path,
            branch: wt.branch,
            removed_at,
            note,
        })
    }
}
