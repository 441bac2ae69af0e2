//! Parent/child trees of instances: who spawned whom, cascading terminate, and replies that
//! travel from a child up to its caller.

use std::collections::HashMap;

use serde_json::json;

use super::Supervisor;
use crate::db::audit;
use crate::db::instances::Instance;
use crate::db::messages::Message;
use crate::db::replies::Reply;
use crate::error::{Error, Result};
use crate::states::InstanceState;

/// One instance in a tree, with its children.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct TreeNode {
    pub instance_id: String,
    pub name: String,
    pub role: String,
    pub model: String,
    pub state: crate::states::InstanceState,
    pub age_seconds: i64,
    pub children: Vec<TreeNode>,
}

/// A node and, below it, the instances whose parent it is.
fn build(
    inst: &Instance,
    by_parent: &HashMap<Option<&str>, Vec<&Instance>>,
    now: chrono::DateTime<chrono::Utc>,
) -> TreeNode {
    let created = chrono::DateTime::parse_from_rfc3339(&inst.created_at)
        .map(|t| t.to_utc())
        .unwrap_or(now);
    TreeNode {
        instance_id: inst.id.clone(),
        name: inst.name.clone(),
        role: inst.role.clone(),
        model: inst.model.clone(),
        state: inst.state,
        age_seconds: (now - created).num_seconds(),
        children: by_parent
            .get(&Some(inst.id.as_str()))
            .map(|kids| kids.iter().map(|k| build(k, by_parent, now)).collect())
            .unwrap_or_default(),
    }
}

/// A node and its subtree as indented lines, like `tree` draws them.
fn render(node: &TreeNode, prefix: &str, last: bool, top: bool, out: &mut String) {
    let branch = if top {
        ""
    } else if last {
        "└── "
    } else {
        "├── "
    };
    out.push_str(&format!(
        "{prefix}{branch}{} ({}, {}) {} {}s\n",
        node.instance_id, node.role, node.model, node.state, node.age_seconds
    ));
    let child_prefix = if top {
        prefix.to_string()
    } else {
        format!("{prefix}{}", if last { "    " } else { "│   " })
    };
    for (i, c) in node.children.iter().enumerate() {
        render(c, &child_prefix, i + 1 == node.children.len(), false, out);
    }
}

impl Supervisor {
    /// The forest of instances (live only unless `include_ended`), roots first, and the same
    /// as indented text.
    pub async fn tree(
        &self,
        root: Option<&str>,
        include_ended: bool,
    ) -> Result<(Vec<TreeNode>, String)> {
        let all = Instance::list(self.pool(), true).await?;
        let keep: Vec<&Instance> = all
            .iter()
            .filter(|i| include_ended || !i.state.is_ended())
            .collect();
        let ids: std::collections::HashSet<&str> = keep.iter().map(|i| i.id.as_str()).collect();
        let mut by_parent: HashMap<Option<&str>, Vec<&Instance>> = HashMap::new();
        for inst in &keep {
            // A child whose parent is not shown hangs from the top.
            let parent = inst.parent_id.as_deref().filter(|p| ids.contains(p));
            by_parent.entry(parent).or_default().push(inst);
        }
        let now = chrono::Utc::now();
        let roots: Vec<TreeNode> = match root {
            Some(id) => {
                let inst = all
                    .iter()
                    .find(|i| i.id == id)
                    .ok_or_else(|| Error::UnknownInstance(id.to_string()))?;
                vec![build(inst, &by_parent, now)]
            }
            None => by_parent
                .get(&None)
                .map(|top| top.iter().map(|i| build(i, &by_parent, now)).collect())
                .unwrap_or_default(),
        };
        let mut text = String::new();
        for r in &roots {
            render(r, "", true, true, &mut text);
        }
        if text.is_empty() {
            text = "no instances\n".into();
        }
        Ok((roots, text))
    }

    /// Depth of a would-be child of `parent` (a root instance has depth 1).
    pub(super) async fn depth_below(&self, parent: &str) -> Result<usize> {
        let mut depth = 1;
        let mut current = Some(parent.to_string());
        while let Some(id) = current {
            depth += 1;
            current = Instance::find(self.pool(), &id)
                .await?
                .and_then(|i| i.parent_id);
            if depth > 64 {
                break;
            }
        }
        Ok(depth)
    }

    /// Checks the tree limits before `parent` gets another child.
    pub(super) async fn check_tree_limits(&self, parent: &str) -> Result<()> {
        let config = self.config();
        let depth = self.depth_below(parent).await?;
        if depth > config.max_depth {
            return Err(Error::Limit(format!(
                "a child of {parent} would be {depth} levels deep (max_depth = {})",
                config.max_depth
            )));
        }
        let children = Instance::children(self.pool(), parent, false).await?.len();
        if children >= config.max_children {
            return Err(Error::Limit(format!(
                "{parent} already has {children} live children (max_children = {})",
                config.max_children
            )));
        }
        Ok(())
    }

    /// Orders ids so that every instance comes after all of its descendants.
    pub(super) async fn deepest_first(&self, ids: Vec<String>) -> Vec<String> {
        let mut with_depth = Vec::new();
        for id in ids {
            let mut depth = 0;
            let mut current = Instance::find(self.pool(), &id)
                .await
                .ok()
                .flatten()
                .and_then(|i| i.parent_id);
            while let Some(p) = current {
                depth += 1;
                if depth > 64 {
                    break;
                }
                current = Instance::find(self.pool(), &p)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|i| i.parent_id);
            }
            with_depth.push((depth, id));
        }
        with_depth.sort_by_key(|(depth, _)| std::cmp::Reverse(*depth));
        with_depth.into_iter().map(|(_, id)| id).collect()
    }

    /// Live descendants of an instance, deepest first.
    async fn live_descendants(&self, id: &str) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut frontier = vec![id.to_string()];
        while let Some(next) = frontier.pop() {
            for child in Instance::children(self.pool(), &next, false).await? {
                frontier.push(child.id.clone());
                found.push(child.id);
            }
        }
        Ok(self.deepest_first(found).await)
    }

    /// Ends an instance and, first, all of its descendants (deepest first). Returns the ids
    /// terminated, in order.
    pub async fn terminate(&self, instance_id: &str, caller: Option<&str>) -> Result<Vec<String>> {
        if let Some(host) = self.owner_elsewhere(instance_id).await? {
            let act = crate::handover::Act::TerminateTree;
            return self.hand_over(&host, instance_id, caller, act).await;
        }
        let (sup, id, caller) = (
            self.clone(),
            instance_id.to_string(),
            caller.map(str::to_string),
        );
        super::to_the_end(async move { sup.terminate_now(&id, caller.as_deref()).await }).await
    }

    async fn terminate_now(&self, instance_id: &str, caller: Option<&str>) -> Result<Vec<String>> {
        // Fail fast, with the usual error, if the instance itself cannot be terminated. One
        // whose CLI is gone (exited, failed, suspended) is ended where it lies.
        self.after_reconcile(instance_id).await;
        let live = match self.live(instance_id).await {
            Ok(_) => true,
            Err(Error::NotRunning { state, .. }) if state != InstanceState::Terminated => false,
            Err(e) => return Err(e),
        };
        let mut done = Vec::new();
        for id in self.live_descendants(instance_id).await? {
            match self.terminate_one(&id, caller).await {
                Ok(()) => done.push(id),
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "could not terminate a descendant")
                }
            }
        }
        let ended = match live {
            true => match self.terminate_one(instance_id, caller).await {
                // Its CLI went away meanwhile, and its task with it.
                Err(Error::NotRunning { state, .. }) if state != InstanceState::Terminated => false,
                other => other.map(|()| true)?,
            },
            false => false,
        };
        if !ended {
            self.end_not_running(instance_id, caller).await?;
        }
        done.push(instance_id.to_string());
        if done.len() > 1 {
            audit::record(
                self.pool(),
                caller,
                Some(instance_id),
                "instance.terminate_tree",
                json!({ "order": done }),
            )
            .await;
        }
        Ok(done)
    }

    /// Ends an instance whose CLI is not running: its tmux session (a dead pane, or a CLI
    /// troupe lost) goes, and it is marked terminated.
    async fn end_not_running(&self, instance_id: &str, caller: Option<&str>) -> Result<()> {
        let inst = Instance::find(self.pool(), instance_id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(instance_id.to_string()))?;
        if !inst.tmux_session.is_empty() {
            let _ = self.shared.tmux.kill_session(&inst.tmux_session).await;
        }
        let reason = format!("terminated while {}", inst.state.as_str());
        Instance::set_state(self.pool(), instance_id, InstanceState::Terminated, &reason).await?;
        audit::record(
            self.pool(),
            caller,
            Some(instance_id),
            "instance.terminate",
            json!({ "was": inst.state.as_str() }),
        )
        .await;
        tracing::info!(instance = instance_id, "{reason}");
        self.shared
            .notice("terminate", format!("terminated {instance_id} ({reason})"));
        Ok(())
    }

    /// A child's message to whoever gave it work: its parent instance, or the orchestrating
    /// session when it has none. The correlation id defaults to the message the child is
    /// answering.
    pub async fn reply_to_caller(
        &self,
        from: &str,
        message: &str,
        correlation_id: Option<&str>,
    ) -> Result<Reply> {
        if message.trim().is_empty() {
            return Err(Error::InvalidInput("reply is empty".into()));
        }
        let inst = Instance::find(self.pool(), from)
            .await?
            .ok_or_else(|| Error::UnknownInstance(from.to_string()))?;
        let correlation = match correlation_id {
            Some(c) => Some(c.to_string()),
            None => Message::in_progress(self.pool(), from).await?,
        };
        let id = Reply::insert(
            self.pool(),
            from,
            inst.parent_id.as_deref(),
            correlation.as_deref(),
            message,
        )
        .await?;
        Ok(Reply {
            id,
            from_instance: from.to_string(),
            to_instance: inst.parent_id,
            correlation_id: correlation,
            content: message.to_string(),
            created_at: crate::db::now(),
            read_at: None,
        })
    }

    /// Where `target` stands relative to the instance `caller` (see [`crate::access`]).
    pub async fn place_of(&self, caller: &str, target: &str) -> Result<crate::access::Place> {
        use crate::access::Place;
        if caller == target {
            return Ok(Place::Itself);
        }
        let found = Instance::find(self.pool(), target)
            .await?
            .ok_or_else(|| Error::UnknownInstance(target.to_string()))?;
        let me = Instance::find(self.pool(), caller).await?;
        let mut up = found.parent_id.clone();
        let mut steps = 0;
        while let Some(at) = up {
            if at == caller {
                return Ok(Place::Descendant);
            }
            steps += 1;
            if steps > 64 {
                break;
            }
            up = Instance::find(self.pool(), &at)
                .await?
                .and_then(|i| i.parent_id);
        }
        let Some(me) = me else {
            return Ok(Place::Outside);
        };
        if me.parent_id.as_deref() == Some(target) {
            return Ok(Place::Parent);
        }
        if me.team_id.is_some() && me.team_id == found.team_id {
            return Ok(Place::Teammate);
        }
        Ok(Place::Outside)
    }

    /// `root` and every instance below it, ended ones included.
    pub async fn subtree(&self, root: &str) -> Result<std::collections::HashSet<String>> {
        let all = Instance::list_summaries(self.pool(), true).await?;
        let mut inside: std::collections::HashSet<String> = [root.to_string()].into();
        // Parents come before their children in no guaranteed order: repeat until stable.
        loop {
            let before = inside.len();
            for i in all.iter() {
                if let Some(p) = &i.parent_id
                    && inside.contains(p)
                {
                    inside.insert(i.id.clone());
                }
            }
            if inside.len() == before {
                return Ok(inside);
            }
        }
    }

    /// Where the team `name` stands for the instance `caller`: its own team, or outside.
    pub async fn team_place(&self, caller: &str, name: &str) -> Result<crate::access::Place> {
        let team = crate::db::teams::Team::find_by_name(self.pool(), name).await?;
        let me = Instance::find(self.pool(), caller).await?;
        Ok(match (team, me) {
            (Some(t), Some(me)) if me.team_id.as_deref() == Some(t.id.as_str()) => {
                crate::access::Place::Teammate
            }
            _ => crate::access::Place::Outside,
        })
    }

    /// The instance `id`, when `caller` may look into it: the person (no caller) into any;
    /// an instance into itself and its descendants only.
    pub async fn visible_to(&self, caller: Option<&str>, id: &str) -> Result<Instance> {
        let inst = Instance::find(self.pool(), id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(id.to_string()))?;
        let Some(caller) = caller else {
            return Ok(inst);
        };
        let mut current = Some(inst.id.clone());
        let mut steps = 0;
        while let Some(at) = current {
            if at == caller {
                return Ok(inst);
            }
            steps += 1;
            if steps > 64 {
                break;
            }
            current = match at == inst.id {
                true => inst.parent_id.clone(),
                false => Instance::find(self.pool(), &at)
                    .await?
                    .and_then(|i| i.parent_id),
            };
        }
        Err(Error::Forbidden(format!(
            "{id} is neither {caller} nor one of its descendants; an instance may look only \
             into itself and the instances it spawned (and theirs)"
        )))
    }

    /// Replies waiting for `to` (None: the orchestrating session); each is returned once.
    pub async fn pending_replies(&self, to: Option<&str>) -> Result<Vec<Reply>> {
        Ok(Reply::take_unread(self.pool(), to).await?)
    }
}
