//! Acts on another host's instances, handed to their owner through the registry, and the acts
//! other hosts hand to this one ([`crate::handover`] says why through the registry).

use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::db::host_calls::{HostCall, NewCall};
use crate::db::hosts::Host;
use crate::handover::{Act, Failure, Outcome, not_answered, outcome};

/// How long an answered act whose caller never came back for it is kept.
const ANSWERED_KEPT: chrono::Duration = chrono::Duration::minutes(10);

/// Takes back an act no host has taken yet, so it cannot run after its caller gave up;
/// false when its owner had taken it.
async fn withdraw(pool: &crate::db::Db, id: &str) -> bool {
    let why = Some("withdrawn by the caller");
    HostCall::settle(pool, id, "queued", "failed", None, why)
        .await
        .unwrap_or(false)
}

impl Supervisor {
    /// The host that runs `instance_id`, when that is another host of a shared registry.
    pub(crate) async fn owner_elsewhere(&self, instance_id: &str) -> Result<Option<String>> {
        if !self.shared.pool.is_shared() || self.handle(instance_id).is_some() {
            return Ok(None);
        }
        let Some(inst) = Instance::find(&self.shared.pool, instance_id).await? else {
            return Ok(None);
        };
        let me = &self.shared.config.host;
        Ok((!inst.host.is_empty() && &inst.host != me).then_some(inst.host))
    }

    /// How long a caller waits for the owner: the longest act (a resume) may take the CLI's
    /// start.
    fn hand_over_limit(&self) -> Duration {
        self.shared.config.startup_timeout + Duration::from_secs(30)
    }

    /// Has `host` carry out `act` on `instance_id` as `caller`, and returns its answer. A host
    /// that is not serving is named at once, with what to do.
    pub(crate) async fn hand_over<T: DeserializeOwned>(
        &self,
        host: &str,
        instance_id: &str,
        caller: Option<&str>,
        act: Act,
    ) -> Result<T> {
        let pool = &self.shared.pool;
        let row = Host::find(pool, host).await?;
        let limit = chrono::Duration::from_std(self.shared.config.host_lost_after)
            .unwrap_or(chrono::Duration::seconds(15));
        let standing = row
            .as_ref()
            .map(|h| crate::hosts::standing(h, chrono::Utc::now(), limit));
        if !standing.as_ref().is_some_and(|s| s.serving()) {
            return Err(Error::Refused(crate::hosts::elsewhere(
                instance_id,
                host,
                row.as_ref().zip(standing.as_ref()),
            )));
        }
        let id = format!("call-{}", uuid::Uuid::now_v7().simple());
        let text = serde_json::to_string(&act).map_err(|e| Error::Agent(e.to_string()))?;
        // Subscribed before the row is written: an answer between the write and the wait
        // still rings.
        let mut rung = pool.subscribe_calls();
        HostCall::insert(
            pool,
            &NewCall {
                id: &id,
                host,
                from_host: &self.shared.config.host,
                instance_id,
                act: &text,
                caller,
            },
        )
        .await?;
        tracing::debug!(call = %id, host, instance = instance_id, act = act.name(), "handed over");
        let wait = self.hand_over_limit();
        let deadline = tokio::time::Instant::now() + wait;
        let answer = loop {
            rung.mark_unchanged();
            let Some(call) = HostCall::find(pool, &id).await? else {
                break Err(Error::Agent(format!(
                    "the {} handed to host {host} vanished from the registry",
                    act.name()
                )));
            };
            match outcome(&call.state, call.result.as_deref(), call.error.as_deref()) {
                Outcome::Done(v) => {
                    break serde_json::from_value(v).map_err(|e| {
                        Error::Agent(format!(
                            "host {host}'s answer to the {} could not be read: {e}",
                            act.name()
                        ))
                    });
                }
                Outcome::Failed(f) => break Err(f.into()),
                Outcome::Pending => {}
            }
            // Woken by the answer, or at each heartbeat limit to see whether the owner still
            // serves: one that died with the act in hand would otherwise hold the caller to
            // the end of the wait.
            let look =
                (tokio::time::Instant::now() + self.shared.config.host_lost_after).min(deadline);
            let answered = tokio::time::timeout_at(look, rung.changed()).await.is_ok();
            if !answered && tokio::time::Instant::now() < deadline {
                // A registry that does not answer says nothing about the owner: wait on.
                let Ok(row) = Host::find(pool, host).await else {
                    continue;
                };
                let standing = row
                    .as_ref()
                    .map(|h| crate::hosts::standing(h, chrono::Utc::now(), limit));
                if standing.as_ref().is_some_and(|s| s.serving()) {
                    continue;
                }
                let withdrawn = withdraw(pool, &id).await;
                let mut why =
                    crate::hosts::elsewhere(instance_id, host, row.as_ref().zip(standing.as_ref()));
                if !withdrawn {
                    why = format!(
                        "{why}. It had taken the {}, which may have run before it went",
                        act.name()
                    );
                }
                break Err(Error::Refused(why));
            }
            if !answered {
                // Withdrawn if still untaken, so it cannot run long after the caller gave up.
                let withdrawn = withdraw(pool, &id).await;
                break Err(Error::Refused(not_answered(
                    host,
                    &act,
                    instance_id,
                    !withdrawn,
                    wait.as_secs(),
                )));
            }
        };
        if let Err(e) = HostCall::delete(pool, &id).await {
            tracing::debug!(call = %id, error = %e, "answered call not deleted");
        }
        answer
    }

    /// Takes the acts other hosts hand to this one and carries each out as its caller, until
    /// `stop`. Each act runs on its own, so an interrupt never waits behind a resume.
    pub async fn serve_handed_over(self, stop: CancellationToken) {
        let pool = self.shared.pool.clone();
        let me = self.shared.config.host.clone();
        let mut rung = pool.subscribe_calls();
        loop {
            rung.mark_unchanged();
            match HostCall::queued(&pool, &me).await {
                Ok(calls) => {
                    for call in calls {
                        match HostCall::settle(&pool, &call.id, "queued", "taken", None, None).await
                        {
                            Ok(true) => {
                                let sup = self.clone();
                                tokio::spawn(async move { sup.carry_out(call).await });
                            }
                            Ok(false) => {}
                            Err(e) => pool.health().failed(&e),
                        }
                    }
                }
                Err(e) => pool.health().failed(&e),
            }
            let before = crate::db::stamp(chrono::Utc::now() - ANSWERED_KEPT);
            let _ = HostCall::purge_answered(&pool, &me, &before).await;
            tokio::select! {
                _ = rung.changed() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn carry_out(&self, call: HostCall) {
        let pool = &self.shared.pool;
        let answer = match serde_json::from_str::<Act>(&call.act) {
            Ok(act) => {
                tracing::debug!(call = %call.id, from = %call.from_host, act = act.name(), "carrying out");
                self.act_here(&call.instance_id, call.caller.as_deref(), act)
                    .await
            }
            Err(e) => Err(Error::InvalidInput(format!(
                "host {} handed over an act this troupe does not know ({e}); run the same \
                 troupe version on every host",
                call.from_host
            ))),
        };
        let written = match answer {
            Ok(v) => {
                let v = v.to_string();
                HostCall::settle(pool, &call.id, "taken", "done", Some(&v), None).await
            }
            Err(e) => {
                let f = serde_json::to_string(&Failure::from(&e)).unwrap_or_default();
                HostCall::settle(pool, &call.id, "taken", "failed", None, Some(&f)).await
            }
        };
        if let Err(e) = written {
            tracing::warn!(call = %call.id, error = %e, "could not write the answer to a handed-over act");
        }
    }

    /// Carries out `act` on an instance this host runs, as `caller`.
    async fn act_here(
        &self,
        id: &str,
        caller: Option<&str>,
        act: Act,
    ) -> Result<serde_json::Value> {
        fn json<T: serde::Serialize>(v: T) -> Result<serde_json::Value> {
            serde_json::to_value(v).map_err(|e| Error::Agent(e.to_string()))
        }
        match act {
            Act::Send { text } => json(self.send(id, &text, caller).await?.id),
            Act::Spawn { request } => json(self.spawn(*request, caller).await?.id),
            Act::Interrupt => json(self.interrupt(id, caller).await?),
            Act::Suspend => json(self.suspend(id, caller).await?),
            Act::Terminate => json(self.terminate_one(id, caller).await?),
            Act::TerminateTree => json(self.terminate(id, caller).await?),
            Act::Resume => json(self.resume_instance(id, caller).await?.id),
            Act::DecidePermission {
                request_id,
                decision,
                message,
                by,
            } => json(
                self.respond_to_permission_by(
                    id,
                    &request_id,
                    decision,
                    message,
                    caller,
                    by.as_deref(),
                )
                .await?
                .id,
            ),
            Act::ListFiles {
                path,
                recursive,
                max_entries,
            } => json(
                self.list_files(caller, id, &path, recursive, max_entries)
                    .await?,
            ),
            Act::ReadFile { path, max_bytes } => {
                json(self.read_file(caller, id, &path, max_bytes).await?)
            }
            Act::WorktreeStatus => json(self.worktree_status(id, caller).await?),
            Act::RemoveWorktree { force_ignored } => {
                json(self.remove_worktree(id, caller, force_ignored).await?)
            }
        }
    }
}
