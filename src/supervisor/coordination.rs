//! Work spread over several instances: parallel sends, pipelines, consensus questions, and
//! interrupts of many. Built on send / wait / interrupt; one failing instance never fails the
//! others.

use std::time::Duration;

use super::InterruptReport;
use super::{SpawnRequest, Supervisor};
use crate::db::instances::Instance;
use crate::error::{Error, Result};
use crate::states::MessageState;

/// Where one task ended: its message's state, or why it has none to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Submitted,
    Started,
    Answered,
    Interrupted,
    Failed,
    /// The wait ended before the answer; the message goes on.
    TimedOut,
    /// Not sent: an earlier step of a pipeline did not answer.
    Skipped,
    /// Not sent: the send was refused.
    Error,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Submitted => "submitted",
            TaskStatus::Started => "started",
            TaskStatus::Answered => "answered",
            TaskStatus::Interrupted => "interrupted",
            TaskStatus::Failed => "failed",
            TaskStatus::TimedOut => "timed_out",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Error => "error",
        }
    }
}

impl From<MessageState> for TaskStatus {
    fn from(state: MessageState) -> Self {
        match state {
            MessageState::Queued => TaskStatus::Queued,
            MessageState::Submitted => TaskStatus::Submitted,
            MessageState::Started => TaskStatus::Started,
            MessageState::Answered => TaskStatus::Answered,
            MessageState::Interrupted => TaskStatus::Interrupted,
            MessageState::Failed => TaskStatus::Failed,
        }
    }
}

/// What became of one task.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct TaskResult {
    pub instance_id: String,
    pub message_id: Option<String>,
    pub status: TaskStatus,
    pub response: Option<String>,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

impl TaskResult {
    fn error(
        instance_id: &str,
        message_id: Option<String>,
        status: TaskStatus,
        e: impl ToString,
    ) -> Self {
        TaskResult {
            instance_id: instance_id.to_string(),
            message_id,
            status,
            response: None,
            error: Some(e.to_string()),
        }
    }
}

impl Supervisor {
    /// Sends one message and, if asked, waits for its answer; failures land in the result.
    pub async fn send_task(
        &self,
        instance_id: &str,
        text: &str,
        sender: Option<&str>,
        wait: Option<Duration>,
    ) -> TaskResult {
        let message = match self.send(instance_id, text, sender).await {
            Ok(m) => m,
            Err(e) => return TaskResult::error(instance_id, None, TaskStatus::Error, e),
        };
        let Some(timeout) = wait else {
            return TaskResult {
                instance_id: instance_id.to_string(),
                message_id: Some(message.id),
                status: message.state.into(),
                response: None,
                error: None,
            };
        };
        match self.wait_message(&message.id, timeout).await {
            Ok(m) => TaskResult {
                instance_id: instance_id.to_string(),
                message_id: Some(m.id),
                error: (m.state != MessageState::Answered)
                    .then(|| m.state_reason.clone())
                    .filter(|r| !r.is_empty()),
                status: m.state.into(),
                response: m.response,
            },
            Err(e @ Error::Timeout { .. }) => {
                TaskResult::error(instance_id, Some(message.id), TaskStatus::TimedOut, e)
            }
            Err(e) => TaskResult::error(instance_id, Some(message.id), TaskStatus::Error, e),
        }
    }

    /// All tasks sent at once; results in the order given.
    pub async fn send_many(
        &self,
        tasks: &[(String, String)],
        sender: Option<&str>,
        wait: Option<Duration>,
    ) -> Vec<TaskResult> {
        futures::future::join_all(
            tasks
                .iter()
                .map(|(id, text)| self.send_task(id, text, sender, wait)),
        )
        .await
    }

    /// Each task in turn, each given the previous answer; stops at the first that fails.
    pub async fn pipeline(
        &self,
        tasks: &[(String, String)],
        sender: Option<&str>,
        wait: Duration,
    ) -> Vec<TaskResult> {
        let mut results: Vec<TaskResult> = Vec::new();
        let mut previous: Option<String> = None;
        for (id, text) in tasks {
            if results
                .last()
                .is_some_and(|r| r.status != TaskStatus::Answered)
            {
                results.push(TaskResult::error(
                    id,
                    None,
                    TaskStatus::Skipped,
                    "an earlier step did not answer",
                ));
                continue;
            }
            let text = match &previous {
                Some(p) => format!("{text}\n\nOutput of the previous step:\n{p}"),
                None => text.clone(),
            };
            let r = self.send_task(id, &text, sender, Some(wait)).await;
            previous = r.response.clone();
            results.push(r);
        }
        results
    }

    /// Spawns several instances at once; each result is the instance or why it failed.
    pub async fn spawn_many(
        &self,
        requests: Vec<SpawnRequest>,
        caller: Option<&str>,
    ) -> Vec<Result<Instance>> {
        futures::future::join_all(requests.into_iter().map(|r| self.spawn(r, caller))).await
    }

    /// Interrupts several instances at once.
    pub async fn interrupt_many(
        &self,
        ids: &[String],
        caller: Option<&str>,
    ) -> Vec<(String, Result<InterruptReport>)> {
        let reports =
            futures::future::join_all(ids.iter().map(|id| self.interrupt(id, caller))).await;
        ids.iter().cloned().zip(reports).collect()
    }

    /// Every live instance's id.
    pub fn live_ids(&self) -> Vec<String> {
        self.shared
            .instances
            .lock()
            .expect("instances poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// This host's live instances and, on a shared registry, the running instances of the
    /// other hosts: what `interrupt_all` and `terminate_all` act on, through each owner.
    pub async fn fleet_live_ids(&self) -> Result<Vec<String>> {
        use crate::states::InstanceState::*;
        let mut ids = self.live_ids();
        if self.shared.pool.is_shared() {
            let me = &self.shared.config.host;
            for inst in Instance::list(&self.shared.pool, false).await? {
                let running = matches!(inst.state, Starting | Idle | Busy | WaitingPermission);
                if running && &inst.host != me && !ids.contains(&inst.id) {
                    ids.push(inst.id);
                }
            }
        }
        Ok(ids)
    }

    /// Terminates every live instance of the fleet, children before parents, each through
    /// its owner; the ids terminated.
    pub async fn terminate_fleet(&self, caller: Option<&str>) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for id in self.deepest_first(self.fleet_live_ids().await?).await {
            match self.terminate_one(&id, caller).await {
                Ok(()) => done.push(id),
                Err(e) => tracing::warn!(instance = %id, error = %e, "could not terminate"),
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_spelled_as_the_tools_always_said_them() {
        for status in [
            TaskStatus::Queued,
            TaskStatus::Submitted,
            TaskStatus::Started,
            TaskStatus::Answered,
            TaskStatus::Interrupted,
            TaskStatus::Failed,
            TaskStatus::TimedOut,
            TaskStatus::Skipped,
            TaskStatus::Error,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                status.as_str(),
                "{status:?}"
            );
        }
        for state in [
            MessageState::Queued,
            MessageState::Answered,
            MessageState::Interrupted,
            MessageState::Failed,
        ] {
            assert_eq!(TaskStatus::from(state).as_str(), state.to_string());
        }
        use crate::supervisor::RecoveryOutcome::*;
        for outcome in [Reattached, Resumed, Failed] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
        }
    }
}
