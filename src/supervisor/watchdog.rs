//! The controls that act on their own: a spent budget interrupts the running turns (once per
//! crossing, and says so), and an instance idle for `auto_terminate_after` is suspended (its
//! conversation is kept; the next message resumes it). One task, woken by events and by the
//! earliest idle deadline: nothing runs while nothing happens.

use std::collections::HashMap;

use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Duration, Instant};

use super::{Event, Supervisor};
use crate::db::audit;
use crate::db::instances::Instance;
use crate::states::InstanceState;

/// The idle instance due first, and when, from when each went idle and the idle limit.
pub fn next_suspension(
    idle_since: &HashMap<String, Instant>,
    limit: Option<Duration>,
) -> Option<(String, Instant)> {
    let limit = limit?;
    idle_since
        .iter()
        .map(|(id, since)| (id.clone(), *since + limit))
        .min_by_key(|(_, at)| *at)
}

pub(crate) fn spawn(sup: Supervisor) {
    let shared = sup.shared.clone();
    let mut events = sup.subscribe();
    let shutdown = shared.shutdown.clone();
    shared.tasks.spawn(async move {
        let mut idle_since: HashMap<String, Instant> = HashMap::new();
        // Instances idle when troupe starts count from now.
        if let Ok(list) = Instance::list(&sup.shared.pool, false).await {
            let me = &sup.shared.config.host;
            for i in list
                .into_iter()
                .filter(|i| i.state == InstanceState::Idle && &i.host == me)
            {
                idle_since.insert(i.id, Instant::now());
            }
        }
        let mut crossed = false;
        loop {
            let limit = sup
                .settings()
                .auto_terminate_after
                .value
                .map(Duration::from_secs);
            let due = next_suspension(&idle_since, limit);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = super::instance::sleep_until(due.as_ref().map(|(_, at)| *at)) => {
                    if let Some((id, _)) = due {
                        idle_since.remove(&id);
                        sup.auto_suspend(&id).await;
                    }
                }
                event = events.recv() => match event {
                    Ok(Event::InstanceState { instance_id, state }) => {
                        if state == InstanceState::Idle {
                            idle_since.entry(instance_id).or_insert_with(Instant::now);
                        } else {
                            idle_since.remove(&instance_id);
                        }
                    }
                    Ok(Event::Usage { .. }) => crossed = sup.check_budget(crossed).await,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => crossed = sup.check_budget(crossed).await,
                    Err(RecvError::Closed) => break,
                }
            }
        }
    });
}

impl Supervisor {
    /// After a model call: if a budget is now spent, interrupt every running turn (their
    /// conversations are kept) and say so, once per crossing. Returns whether a budget is spent.
    async fn check_budget(&self, was_crossed: bool) -> bool {
        let settings = self.settings();
        if settings.max_session_cost.value.is_none() && settings.max_cost_per_hour.value.is_none() {
            return false;
        }
        let reason = match self.over_budget(&settings).await {
            Ok(Some(reason)) => reason,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(error = %e, "cannot read what has been spent");
                return was_crossed;
            }
        };
        if was_crossed {
            return true;
        }
        tracing::warn!("budget spent: {reason}");
        let busy: Vec<String> = match Instance::list(&self.shared.pool, false).await {
            Ok(list) => list
                .into_iter()
                // Another host's instances are its to interrupt.
                .filter(|i| {
                    i.host == self.shared.config.host
                        && matches!(
                            i.state,
                            InstanceState::Busy | InstanceState::WaitingPermission
                        )
                })
                .map(|i| i.id)
                .collect(),
            Err(_) => Vec::new(),
        };
        let reports = self.interrupt_many(&busy, None).await;
        let interrupted: Vec<serde_json::Value> = reports
            .iter()
            .map(|(id, r)| match r {
                Ok(report) => json!({ "instance_id": id, "outcome": report.outcome,
                                      "message_id": report.message_id }),
                Err(e) => json!({ "instance_id": id, "error": e.to_string() }),
            })
            .collect();
        audit::record(
            &self.shared.pool,
            None,
            None,
            "budget.crossed",
            json!({ "reason": reason, "interrupted": interrupted }),
        )
        .await;
        self.shared.publish(Event::BudgetCrossed {
            reason: reason.to_string(),
        });
        self.shared.notice(
            "cost_threshold",
            format!(
                "{reason}. Running turns were interrupted ({}); new spawns and messages are \
                 refused until the limit is raised.",
                if busy.is_empty() {
                    "none was running".to_string()
                } else {
                    busy.join(", ")
                }
            ),
        );
        true
    }

    /// An instance idle past `auto_terminate_after` is suspended: its tmux session ends, its
    /// conversation stays, and the next message brings it back.
    async fn auto_suspend(&self, id: &str) {
        let still_idle = Instance::find(&self.shared.pool, id)
            .await
            .ok()
            .flatten()
            .is_some_and(|i| i.state == InstanceState::Idle);
        if !still_idle {
            return;
        }
        match self.suspend(id, None).await {
            Ok(()) => {
                let after = self.settings().auto_terminate_after.value.unwrap_or(0);
                tracing::info!(instance = id, "suspended after {after}s idle");
                audit::record(
                    &self.shared.pool,
                    None,
                    Some(id),
                    "instance.auto_suspended",
                    json!({ "idle_seconds": after }),
                )
                .await;
                self.shared.notice(
                    "terminate",
                    format!(
                        "suspended {id} after {after}s idle (auto_terminate_after); its \
                         conversation is kept and the next message resumes it"
                    ),
                );
            }
            Err(e) => {
                tracing::warn!(instance = id, error = %e, "could not suspend an idle instance")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_idle_longest_is_due_first() {
        let t0 = Instant::now();
        let idle = HashMap::from([
            ("a".to_string(), t0 + Duration::from_secs(5)),
            ("b".to_string(), t0),
        ]);
        assert_eq!(next_suspension(&idle, None), None, "no limit, nothing due");
        assert_eq!(
            next_suspension(&idle, Some(Duration::from_secs(60))),
            Some(("b".to_string(), t0 + Duration::from_secs(60)))
        );
        assert_eq!(
            next_suspension(&HashMap::new(), Some(Duration::from_secs(1))),
            None
        );
    }
}
