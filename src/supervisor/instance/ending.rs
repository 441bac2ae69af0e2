//! How an instance's task ends: its CLI failed, or it is terminated, suspended or handed
//! over; what waits on it is answered either way.

use super::*;

impl Actor {
    pub(super) async fn fail(&mut self, reason: &str, kill: bool) {
        if kill {
            let _ = self.shared.tmux.kill_session(&self.session).await;
        }
        tracing::warn!(instance = %self.id, "failed: {reason}");
        self.shared
            .notice("error", format!("{} failed: {reason}", self.id));
        self.persist(Write::State {
            state: InstanceState::Failed,
            reason: reason.to_string(),
        })
        .await;
        self.persist(Write::FailUnfinished {
            reason: reason.to_string(),
        })
        .await;
        self.finish_writes().await;
        audit::record(
            &self.shared.pool,
            None,
            Some(&self.id),
            "instance.failed",
            serde_json::json!({ "reason": reason }),
        )
        .await;
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(Error::Agent(reason.to_string())));
        }
        self.end_interrupts(reason).await;
        self.forget();
    }

    /// Interrupts still waiting when the task ends.
    pub(super) async fn end_interrupts(&mut self, reason: &str) {
        for (row, reply) in self.interrupts.drain() {
            let _ = Interrupt::record_outcome(
                &self.shared.pool,
                row,
                InterruptOutcome::Unconfirmed,
                reason,
            )
            .await;
            let _ = reply.send(Err(Error::Agent(reason.to_string())));
        }
    }

    pub(super) fn forget(&self) {
        self.shared
            .instances
            .lock()
            .expect("instances poisoned")
            .remove(&self.id);
    }

    pub(super) async fn terminate(&mut self) -> Result<()> {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(Error::Agent("terminated while starting".into())));
        }
        let tmux = &self.shared.tmux;
        match tmux.kill_session(&self.session).await {
            Ok(()) => {}
            // Already gone is what terminate wants.
            Err(_) if !tmux.has_session(&self.session).await.unwrap_or(false) => {}
            Err(e) => return Err(e.into()),
        }
        self.persist(Write::FailUnfinished {
            reason: "the instance was terminated".into(),
        })
        .await;
        self.end_interrupts("the instance was terminated").await;
        self.persist(Write::State {
            state: InstanceState::Terminated,
            reason: "terminated on request".into(),
        })
        .await;
        self.finish_writes().await;
        self.forget();
        Ok(())
    }

    /// Ends the tmux session but keeps the conversation: the next message resumes it.
    pub(super) async fn suspend(&mut self) -> Result<()> {
        if self.machine.busy() {
            return Err(Error::InvalidInput(format!(
                "instance {} is busy; wait for its answer or interrupt it before suspending",
                self.id
            )));
        }
        if self.shared.tmux.has_session(&self.session).await? {
            self.shared.tmux.kill_session(&self.session).await?;
        }
        self.persist(Write::State {
            state: InstanceState::Suspended,
            reason: "suspended; the next message resumes it".into(),
        })
        .await;
        self.finish_writes().await;
        self.forget();
        Ok(())
    }

    pub(super) fn detach(&mut self) {
        if let Some(t) = self.transcript.take() {
            self.shared.watcher.unwatch(t.path());
        }
    }
}

pub(super) async fn exited(watch: &Option<ExitWatch>) {
    match watch {
        Some(w) => w.exited().await,
        None => std::future::pending().await,
    }
}
