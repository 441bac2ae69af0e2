//! Work spread over several instances: parallel sends, pipelines, consensus questions, and
//! interrupts of many. Built on send / wait / interrupt; one failing instance never fails the
//! others.

use std::time::Duration;

use super::instance::InterruptReport;
use super::{SpawnRequest, Supervisor};
use crate::db::instances::Instance;
use crate::error::{Error, Result};
use crate::states::MessageState;

/// What became of one task.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct TaskResult {
    pub instance_id: String,
    pub message_id: Option<String>,
    /// answered | interrupted | failed | timed_out | queued | skipped | error
    pub status: String,
    pub response: Option<String>,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

impl TaskResult {
    fn error(
        instance_id: &str,
        message_id: Option<String>,
        status: &str,
        e: impl ToString,
    ) -> Self {
        TaskResult {
            instance_id: instance_id.to_string(),
            message_id,
            status: status.into(),
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
            Err(e) => return TaskResult::error(instance_id, None, "error", e),
        };
        let Some(timeout) = wait else {
            return TaskResult {
                instance_id: instance_id.to_string(),
                message_id: Some(message.id),
                status: message.state.to_string(),
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
                status: m.state.to_string(),
                response: m.response,
            },
            Err(e @ Error::Timeout { .. }) => {
                TaskResult::error(instance_id, Some(message.id), "timed_out", e)
            }
            Err(e) => TaskResult::error(instance_id, Some(message.id), "error", e),
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
            if results.last().is_some_and(|r| r.status != "answered") {
                results.push(TaskResult::error(
                    id,
                    None,
                    "skipped",
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
}
