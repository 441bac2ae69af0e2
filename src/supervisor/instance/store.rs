//! The task's database writes: the ordered queue of [`super::writes`] carried out, each row
//! announced once it is written, and output records with their usage and cost.

use super::*;

impl Actor {
    pub(super) async fn record_output(
        &self,
        record: &Record,
        message_id: Option<&str>,
    ) -> Result<()> {
        record_output(
            &self.shared.pool,
            &self.shared.config.prices,
            &self.id,
            record,
            message_id,
        )
        .await
    }

    /// Writes the row, after any still unwritten before it.
    pub(super) async fn persist(&mut self, write: Write) {
        self.unwritten.push(write);
        self.flush().await;
    }

    /// Writes what is due, oldest first; a failure waits for its retry, and so does everything
    /// after it.
    pub(super) async fn flush(&mut self) {
        while let Some(write) = self.unwritten.next(Instant::now()).cloned() {
            match self.write(&write).await {
                Ok(()) => {
                    self.shared.pool.health().answered();
                    self.unwritten.written();
                    self.announce(&write);
                }
                Err(e) => {
                    let wait = self.unwritten.failed(Instant::now());
                    if let Error::Db(e) = &e {
                        self.shared.pool.health().failed(e);
                    }
                    // An outage is logged once by the database's health; each retry of it is
                    // detail.
                    if self.shared.pool.health().outage().is_some() {
                        tracing::debug!(
                            instance = %self.id,
                            error = %e,
                            unwritten = self.unwritten.len(),
                            "cannot write to the database; trying again in {wait:?}"
                        );
                        return;
                    }
                    tracing::warn!(
                        instance = %self.id,
                        error = %e,
                        unwritten = self.unwritten.len(),
                        "cannot write to the database; trying again in {wait:?}"
                    );
                    return;
                }
            }
        }
    }

    /// One last try at what is left, before the task answers that it ended (or ends).
    pub(super) async fn finish_writes(&mut self) {
        if self.unwritten.len() == 0 {
            return;
        }
        self.unwritten.due_now();
        self.flush().await;
        if self.unwritten.len() > 0 {
            tracing::error!(
                instance = %self.id,
                unwritten = self.unwritten.len(),
                "the task ends with rows the database would not take"
            );
        }
    }

    pub(super) async fn write(&self, write: &Write) -> Result<()> {
        let pool = &self.shared.pool;
        match write {
            Write::Started {
                message_id,
                prompt_id,
            } => Message::mark_started(pool, message_id, prompt_id.as_deref()).await?,
            Write::Output { message_id, record } => {
                self.record_output(record, message_id.as_deref()).await?
            }
            Write::Finish {
                message_id,
                state,
                response,
                reason,
            } => Message::finish(pool, message_id, *state, response.as_deref(), reason).await?,
            Write::Requeue { message_id } => Message::requeue(pool, message_id).await?,
            Write::State { state, reason } => {
                Instance::set_state(pool, &self.id, *state, reason).await?
            }
            Write::Interrupt {
                id,
                outcome,
                detail,
            } => Interrupt::record_outcome(pool, *id, *outcome, detail).await?,
            Write::Session { id } => {
                Instance::adopt_agent_session(pool, &self.id, id).await?;
            }
            Write::FailUnfinished { reason } => {
                for message_id in Message::fail_unfinished(pool, &self.id, reason).await? {
                    self.publish_message(&message_id, MessageState::Failed);
                }
            }
        }
        Ok(())
    }

    /// Tells waiters and streams about a row once it is written.
    pub(super) fn announce(&mut self, write: &Write) {
        match write {
            Write::Started { message_id, .. } => {
                self.publish_message(message_id, MessageState::Started)
            }
            Write::Finish {
                message_id, state, ..
            } => self.publish_message(message_id, *state),
            Write::Requeue { message_id } => self.publish_message(message_id, MessageState::Queued),
            Write::State { state, reason } => {
                // Busy and idle alternate with every turn; only what a person acts on is said.
                match state {
                    InstanceState::Idle if !self.ready_said => {
                        tracing::info!(instance = %self.id, "ready")
                    }
                    InstanceState::WaitingPermission => {
                        tracing::info!(instance = %self.id, "waiting for permission: {reason}")
                    }
                    _ => {}
                }
                if *state == InstanceState::Idle {
                    self.ready_said = true;
                }
                self.shared.publish(Event::InstanceState {
                    instance_id: self.id.clone(),
                    state: *state,
                })
            }
            Write::Output {
                record: Record::Assistant { usage: Some(_), .. },
                ..
            } => self.shared.publish(Event::Usage {
                instance_id: self.id.clone(),
            }),
            Write::Output { .. }
            | Write::Interrupt { .. }
            | Write::Session { .. }
            | Write::FailUnfinished { .. } => {}
        }
    }

    pub(super) fn publish_message(&self, message_id: &str, state: MessageState) {
        self.shared.publish(Event::Message {
            instance_id: self.id.clone(),
            message_id: message_id.to_string(),
            state,
        });
    }
}

/// The day a transcript timestamp (RFC 3339) falls on; today when it has none.
pub(super) fn call_day(ts: &str) -> chrono::NaiveDate {
    ts.get(..10)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().date_naive())
}

/// Writes a transcript record's output chunks and the model call's usage.
pub(crate) async fn record_output(
    pool: &crate::db::Db,
    prices: &pricing::PriceTable,
    id: &str,
    record: &Record,
    message_id: Option<&str>,
) -> Result<()> {
    match record {
        Record::Prompt { uuid, text, .. } => {
            OutputChunk::insert(pool, id, message_id, "prompt", uuid, text).await?;
        }
        Record::Interrupted { uuid, .. } => {
            OutputChunk::insert(pool, id, message_id, "interrupt", uuid, "[interrupted]").await?;
        }
        Record::ToolResult { uuid, text, .. } => {
            OutputChunk::insert(pool, id, message_id, "tool_result", uuid, text).await?;
        }
        Record::Assistant {
            uuid,
            ts,
            message_id: response_id,
            model,
            blocks,
            usage,
            synthetic,
            ..
        } => {
            for (i, block) in blocks.iter().enumerate() {
                let source_id = format!("{uuid}:{i}");
                let (source, content) = match block {
                    Block::Text(text) => ("assistant", text.clone()),
                    Block::ToolUse { name, input } => ("tool_use", format!("{name} {input}")),
                };
                OutputChunk::insert(pool, id, message_id, source, &source_id, &content).await?;
            }
            if let Some(usage) = usage.filter(|_| !*synthetic && !response_id.is_empty()) {
                let cost_micros = prices.cost_micros(model, call_day(ts), &usage);
                if cost_micros.is_none() {
                    pricing::note_unpriced(model);
                }
                UsageRecord::insert(
                    pool,
                    &NewUsage {
                        instance_id: id,
                        message_id,
                        source_id: response_id,
                        model,
                        input_tokens: usage.input,
                        output_tokens: usage.output,
                        cache_creation_tokens: usage.cache_creation,
                        cache_read_tokens: usage.cache_read,
                        // Priced as of the day of the call, by the CLI's clock.
                        cost_micros,
                    },
                )
                .await?;
            }
        }
        Record::TurnEnd { .. } | Record::Other => {}
    }
    Ok(())
}
