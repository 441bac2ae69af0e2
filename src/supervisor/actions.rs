//! What callers do to a running instance: send and wait, interrupt, suspend, terminate.

use serde_json::Value;

use super::*;
use crate::handover::Act;
use crate::states::InterruptOutcome;

/// What an interrupt did, as callers read it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct InterruptReport {
    /// True when the CLI confirmed that the running turn stopped.
    pub interrupted: bool,
    pub outcome: InterruptOutcome,
    /// The message whose turn was stopped, if any.
    pub message_id: Option<String>,
    /// What the instance had answered before it stopped.
    pub partial_response: Option<String>,
    pub detail: String,
}

impl From<instance::InterruptAnswer> for InterruptReport {
    fn from(answer: instance::InterruptAnswer) -> InterruptReport {
        InterruptReport {
            interrupted: answer.interrupted(),
            outcome: answer.outcome,
            message_id: answer.message_id,
            partial_response: answer.partial_response,
            detail: answer.detail,
        }
    }
}

impl Supervisor {
    /// Ends the instance's tmux session but keeps its conversation; a message resumes it.
    pub async fn suspend(&self, instance_id: &str, caller: Option<&str>) -> Result<()> {
        if let Some(host) = self.owner_elsewhere(instance_id).await? {
            return self
                .hand_over(&host, instance_id, caller, Act::Suspend)
                .await;
        }
        self.ask(instance_id, "suspending", Command::Suspend)
            .await?;
        self.done(caller, instance_id, "instance.suspend", json!({}))
            .await;
        Ok(())
    }

    /// Terminates every live instance (for `serve --terminate-on-exit`).
    pub async fn terminate_all(&self) {
        let ids: Vec<String> = self
            .shared
            .instances
            .lock()
            .expect("instances poisoned")
            .keys()
            .cloned()
            .collect();
        for id in self.deepest_first(ids).await {
            if let Err(e) = self.terminate_one(&id, None).await {
                tracing::warn!(instance = %id, error = %e, "could not terminate");
            }
        }
    }

    /// Queues a message for an instance; it is delivered as soon as the instance is idle.
    pub async fn send(
        &self,
        instance_id: &str,
        text: &str,
        sender: Option<&str>,
    ) -> Result<Message> {
        if !text.chars().any(|c| !c.is_whitespace() && !c.is_control()) {
            return Err(Error::InvalidInput(
                "message is empty (only spaces or control characters); say what the instance \
                 should do"
                    .into(),
            ));
        }
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::InvalidInput(format!(
                "message is {} bytes; the most is {MAX_MESSAGE_BYTES}. Put the long part in a \
                 file the instance can read and send its path",
                text.len()
            )));
        }
        if let Some(host) = self.owner_elsewhere(instance_id).await? {
            let act = Act::Send {
                text: text.to_string(),
            };
            let id: String = self.hand_over(&host, instance_id, sender, act).await?;
            return Message::find(&self.shared.pool, &id)
                .await?
                .ok_or(Error::UnknownMessage(id));
        }
        let settings = self.settings();
        self.check_enabled(&settings)?;
        self.check_spending(&settings).await?;
        self.after_reconcile(instance_id).await;
        let tx = match self.live_going_on(instance_id).await {
            Ok(tx) => tx,
            // Its conversation is kept: bring it back, then queue.
            Err(Error::NotRunning {
                state: InstanceState::Suspended | InstanceState::Exited,
                ..
            }) => {
                self.resume_instance(instance_id, sender).await?;
                self.live(instance_id).await?
            }
            Err(e) => return Err(e),
        };
        let id = format!("msg-{}", uuid::Uuid::now_v7().simple());
        Message::insert_queued(&self.shared.pool, &id, instance_id, sender, text).await?;
        self.shared.publish(Event::Message {
            instance_id: instance_id.to_string(),
            message_id: id.clone(),
            state: MessageState::Queued,
        });
        // The row is the queue; this hands it to the task. A task that ended meanwhile
        // (terminate, suspend) will never deliver it: say so instead of leaving it queued.
        let queued = Command::Queued {
            id: id.clone(),
            text: text.to_string(),
        };
        if tx.send(queued).is_err() {
            self.shared
                .fail_messages(
                    instance_id,
                    "the instance stopped before the message was delivered",
                )
                .await;
        }
        Message::find(&self.shared.pool, &id)
            .await?
            .ok_or(Error::UnknownMessage(id))
    }

    /// Waits until a message's turn is over, or fails with [`Error::Timeout`] naming the
    /// message so it can be fetched later.
    pub async fn wait_message(&self, message_id: &str, timeout: Duration) -> Result<Message> {
        let mut events = self.shared.events.subscribe();
        // A write by another process (another host on a shared PostgreSQL registry) arrives
        // as a database wake-up, not as an event of this process.
        let mut written = self.shared.pool.subscribe();
        let timeout = timeout.min(MAX_WAIT);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut waiting = super::notify::Waits::begin(&self.shared.waits, message_id);
        loop {
            written.mark_unchanged();
            let message = Message::find(&self.shared.pool, message_id)
                .await?
                .ok_or_else(|| Error::UnknownMessage(message_id.to_string()))?;
            if message.is_finished() {
                waiting.taken = true;
                return Ok(message);
            }
            loop {
                let woke = tokio::time::timeout_at(deadline, async {
                    tokio::select! {
                        event = events.recv() => Some(event),
                        _ = written.changed() => None,
                    }
                })
                .await;
                match woke {
                    // The database changed: read the message again.
                    Ok(None) => break,
                    Err(_) => {
                        return Err(Error::Timeout {
                            instance_id: message.instance_id,
                            message_id: message.id,
                            seconds: timeout.as_secs(),
                            state: message.state,
                        });
                    }
                    Ok(Some(Ok(Event::Message { message_id: m, .. }))) if m == message_id => break,
                    Ok(Some(Ok(_))) => continue,
                    Ok(Some(Err(broadcast::error::RecvError::Lagged(_)))) => break,
                    Ok(Some(Err(broadcast::error::RecvError::Closed))) => {
                        return Err(Error::Agent("troupe is shutting down".into()));
                    }
                }
            }
        }
    }

    /// Presses the CLI's interrupt key and waits until the CLI confirms the turn stopped.
    pub async fn interrupt(
        &self,
        instance_id: &str,
        caller: Option<&str>,
    ) -> Result<InterruptReport> {
        if let Some(host) = self.owner_elsewhere(instance_id).await? {
            return self
                .hand_over(&host, instance_id, caller, Act::Interrupt)
                .await;
        }
        self.after_reconcile(instance_id).await;
        let report: InterruptReport = self
            .ask(instance_id, "the interrupt", Command::Interrupt)
            .await?
            .into();
        let detail = serde_json::to_value(&report).unwrap_or_default();
        self.done(caller, instance_id, "instance.interrupt", detail)
            .await;
        tracing::info!(instance = instance_id, outcome = %report.outcome, "interrupt");
        Ok(report)
    }

    /// Ends one instance: its tmux session is killed and its unfinished messages fail.
    pub(super) async fn terminate_one(
        &self,
        instance_id: &str,
        caller: Option<&str>,
    ) -> Result<()> {
        if let Some(host) = self.owner_elsewhere(instance_id).await? {
            return self
                .hand_over(&host, instance_id, caller, Act::Terminate)
                .await;
        }
        self.ask(instance_id, "terminate", Command::Terminate)
            .await?;
        self.done(caller, instance_id, "instance.terminate", json!({}))
            .await;
        tracing::info!(instance = instance_id, "terminated");
        self.shared
            .notice("terminate", format!("terminated {instance_id}"));
        Ok(())
    }

    /// Asks an instance's task to do something and waits for its answer: `command` wraps the
    /// reply channel; `doing` names the act in the errors.
    async fn ask<T>(
        &self,
        instance_id: &str,
        doing: &str,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let tx = self.live(instance_id).await?;
        let (reply, rx) = oneshot::channel();
        if tx.send(command(reply)).is_ok()
            && let Ok(answer) = rx.await
        {
            return answer;
        }
        // The task ended before it took the command: what the instance is now says why
        // (its CLI exited, it was terminated), else it stopped midway.
        match self.live(instance_id).await {
            Err(e @ Error::NotRunning { .. }) => Err(e),
            _ => Err(Error::Agent(format!(
                "instance {instance_id} stopped during {doing}"
            ))),
        }
    }

    /// Records an act done on an instance.
    async fn done(&self, caller: Option<&str>, instance_id: &str, kind: &str, detail: Value) {
        audit::record(&self.shared.pool, caller, Some(instance_id), kind, detail).await;
    }
}
