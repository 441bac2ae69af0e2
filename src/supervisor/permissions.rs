//! Permission requests from instances in a prompting mode, routed to whoever decides: a rule
//! at once, else the person (a notification, the dashboard, respond_to_permission) or an
//! instance above it in the tree. The CLI's hook is held until then; past the wait, troupe
//! answers nothing and the CLI's own dialog waits for a person at the pane.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::instance::Command;
use super::{Event, Shared, Supervisor};
use crate::agents::Agent;
use crate::db::audit;
use crate::db::instances::Instance;
use crate::db::messages::Message;
use crate::db::permissions::{NewRequest, PermissionAsk};
use crate::error::{Error, Result};
use crate::permissions::{Decision, Rules, describe};

/// A decision on its way to the hook that waits for it.
pub(crate) struct Verdict {
    decision: Decision,
    message: Option<String>,
}

/// Removes a held request's waiter when its hook stops waiting, whatever the reason (a
/// decision, the wait running out, the CLI hanging up), and marks it expired if nobody
/// decided it.
struct Held {
    shared: Arc<Shared>,
    id: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let waiting = self
            .shared
            .permission_waiters
            .lock()
            .expect("permission waiters poisoned")
            .remove(&self.id)
            .is_some();
        if waiting && let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (shared, id) = (self.shared.clone(), self.id.clone());
            rt.spawn(async move {
                if PermissionAsk::settle(
                    &shared.pool,
                    &id,
                    crate::states::AskState::Expired.as_str(),
                    None,
                    None,
                )
                .await
                .unwrap_or(false)
                {
                    audit::record(
                        &shared.pool,
                        None,
                        None,
                        "permission.expired",
                        json!({ "request_id": id }),
                    )
                    .await;
                }
            });
        }
    }
}

impl Supervisor {
    /// A CLI's permission hook: the answer it gets (an empty object leaves the CLI's
    /// dialog on screen).
    pub(crate) async fn permission_requested(
        &self,
        agent: &dyn Agent,
        inst: &Instance,
        task: &mpsc::UnboundedSender<Command>,
        tool: String,
        input: Value,
    ) -> Result<Value> {
        let pool = self.pool();
        let id = format!("perm-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let summary = describe(&tool, &input);
        let message_id = Message::in_progress(pool, &inst.id).await?;
        PermissionAsk::insert(
            pool,
            &NewRequest {
                id: &id,
                instance_id: &inst.id,
                message_id: message_id.as_deref(),
                tool_name: &tool,
                tool_input: &input.to_string(),
                summary: &summary,
            },
        )
        .await?;
        audit::record(
            pool,
            Some(&inst.id),
            Some(&inst.id),
            "permission.asked",
            json!({ "request_id": id, "tool_name": tool, "tool_input": input }),
        )
        .await;
        tracing::info!(instance = %inst.id, request = %id, "asks for permission: {summary}");

        if let Some(hit) = self.rules_for(inst).await.decide(&tool, &input) {
            let by = format!("rule {}", hit.rule);
            PermissionAsk::settle(pool, &id, hit.decision.state(), Some(&by), None).await?;
            audit::record(
                pool,
                None,
                Some(&inst.id),
                "permission.decided",
                json!({ "request_id": id, "decision": hit.decision, "by": by }),
            )
            .await;
            tracing::info!(instance = %inst.id, request = %id, "{} by {by}", hit.decision.state());
            let why = format!("troupe's rule {} denies this", hit.rule);
            return Ok(agent.permission_answer(Some(hit.decision), Some(&why)));
        }
        Ok(self.await_decision(agent, inst, task, id, summary).await)
    }

    /// Holds the CLI's permission hook until someone decides, or the wait runs out (then the
    /// CLI's own dialog waits at its pane).
    async fn await_decision(
        &self,
        agent: &dyn Agent,
        inst: &Instance,
        task: &mpsc::UnboundedSender<Command>,
        id: String,
        summary: String,
    ) -> Value {
        let (tx, rx) = oneshot::channel();
        self.shared
            .permission_waiters
            .lock()
            .expect("permission waiters poisoned")
            .insert(id.clone(), tx);
        let _held = Held {
            shared: self.shared.clone(),
            id: id.clone(),
        };
        let _ = task.send(Command::PermissionAsked {
            request_id: id.clone(),
            summary: summary.clone(),
        });
        self.shared.publish(Event::PermissionAsked {
            instance_id: inst.id.clone(),
            request_id: id.clone(),
            summary: summary.clone(),
        });
        // Asked of everyone who may decide, whatever notify_on says: the CLI waits on it.
        self.shared.publish(Event::Notice {
            kind: "permission",
            text: format!(
                "{} asks for permission: {summary}. Decide with respond_to_permission(\
                 instance_id=\"{}\", request_id=\"{id}\", decision=\"allow\" or \"deny\")",
                inst.id, inst.id
            ),
        });
        match tokio::time::timeout(self.config().permission_wait, rx).await {
            Ok(Ok(verdict)) => {
                let _ = task.send(Command::PermissionAnswered);
                agent.permission_answer(Some(verdict.decision), verdict.message.as_deref())
            }
            _ => {
                tracing::info!(instance = %inst.id, request = %id, "no decision in time; the CLI's dialog waits at its pane");
                let _ = task.send(Command::PermissionLeftAtPane);
                agent.permission_answer(None, None)
            }
        }
    }

    /// The instance's own rules, then its team's.
    async fn rules_for(&self, inst: &Instance) -> Rules {
        let parse = |s: Option<&str>| -> Rules {
            s.and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default()
        };
        let own = parse(inst.permission_rules.as_deref());
        let team = match &inst.team_id {
            Some(t) => crate::db::teams::Team::find_by_id(self.pool(), t)
                .await
                .ok()
                .flatten()
                .map(|t| parse(t.permission_rules.as_deref()))
                .unwrap_or_default(),
            None => Rules::default(),
        };
        own.with(&team)
    }

    /// Decides a held permission request. The person may decide any; an instance only those
    /// of instances below it in the tree, never its own.
    pub async fn respond_to_permission(
        &self,
        instance_id: &str,
        request_id: &str,
        decision: Decision,
        message: Option<String>,
        caller: Option<&str>,
    ) -> Result<PermissionAsk> {
        self.respond_to_permission_by(instance_id, request_id, decision, message, caller, None)
            .await
    }

    /// [`Supervisor::respond_to_permission`], recorded as decided `by` (e.g. `notify:ops`, a
    /// notification's link) rather than by the caller.
    pub async fn respond_to_permission_by(
        &self,
        instance_id: &str,
        request_id: &str,
        decision: Decision,
        message: Option<String>,
        caller: Option<&str>,
        by: Option<&str>,
    ) -> Result<PermissionAsk> {
        let pool = self.pool();
        if let Some(host) = self.owner_elsewhere(instance_id).await? {
            let act = crate::handover::Act::DecidePermission {
                request_id: request_id.to_string(),
                decision,
                message,
                by: by.map(str::to_string),
            };
            let id: String = self.hand_over(&host, instance_id, caller, act).await?;
            return PermissionAsk::find(pool, &id)
                .await?
                .ok_or_else(|| Error::InvalidInput(format!("{id} vanished")));
        }
        self.decidable(instance_id, request_id, caller).await?;
        let waiter = self
            .shared
            .permission_waiters
            .lock()
            .expect("permission waiters poisoned")
            .remove(request_id);
        let Some(waiter) = waiter else {
            return Err(Error::Refused(format!(
                "{instance_id}'s CLI no longer waits for troupe on {request_id}; its own dialog \
                 is on screen: answer it there (troupe attach {instance_id})"
            )));
        };
        let by = by.or(caller).unwrap_or("person");
        let message = message
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        if !PermissionAsk::settle(
            pool,
            request_id,
            decision.state(),
            Some(by),
            message.as_deref(),
        )
        .await?
        {
            return Err(Error::Refused(format!(
                "{request_id} was decided meanwhile"
            )));
        }
        audit::record(
            pool,
            caller,
            Some(instance_id),
            "permission.decided",
            json!({ "request_id": request_id, "decision": decision, "by": by, "message": message }),
        )
        .await;
        tracing::info!(
            instance = instance_id,
            request = request_id,
            "{} by {by}",
            decision.state()
        );
        let _ = waiter.send(Verdict { decision, message });
        PermissionAsk::find(pool, request_id)
            .await?
            .ok_or_else(|| Error::InvalidInput(format!("{request_id} vanished")))
    }

    /// The request, if `caller` may decide it now: one of `instance_id`'s, still pending, and
    /// not the caller's own.
    async fn decidable(
        &self,
        instance_id: &str,
        request_id: &str,
        caller: Option<&str>,
    ) -> Result<PermissionAsk> {
        let req = PermissionAsk::find(self.pool(), request_id)
            .await?
            .filter(|r| r.instance_id == instance_id)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{instance_id} has no permission request {request_id:?}; \
                     get_pending_permissions lists the open ones"
                ))
            })?;
        if caller == Some(instance_id) {
            return Err(Error::Forbidden(
                "an instance cannot decide its own permission requests; its parent or the \
                 person does"
                    .into(),
            ));
        }
        self.visible_to(caller, instance_id).await?;
        if req.state != crate::states::AskState::Pending {
            return Err(Error::Refused(format!(
                "{request_id} is already {} (by {}); nothing to decide",
                req.state,
                req.decided_by.as_deref().unwrap_or("nobody: it expired")
            )));
        }
        Ok(req)
    }

    /// Open permission requests `caller` may decide: all of them for the person, those of
    /// instances below it for an instance.
    pub async fn pending_permissions(&self, caller: Option<&str>) -> Result<Vec<PermissionAsk>> {
        let mut out = Vec::new();
        for req in PermissionAsk::pending(self.pool()).await? {
            if caller == Some(req.instance_id.as_str()) {
                continue;
            }
            if self.visible_to(caller, &req.instance_id).await.is_ok() {
                out.push(req);
            }
        }
        Ok(out)
    }
}
