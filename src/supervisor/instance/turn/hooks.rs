//! What the CLI's hooks say of a turn: a prompt taken, a turn stopped or failed; and how a
//! turn is completed or superseded.

use super::*;

impl Machine {
    /// The CLI took a prompt.
    pub(in crate::supervisor::instance) fn prompt_submitted(
        &mut self,
        now: Instant,
        prompt_id: Option<String>,
    ) {
        if self.turns.late_hook(&prompt_id) && !self.joins_closed_turn(&prompt_id) {
            // A later submit hook naming this turn is a message taken into it.
            if let Some(turn) = self
                .turns
                .by_prompt(&prompt_id)
                .and_then(|k| self.turns.get_mut(k))
            {
                turn.submit_hooked = true;
            }
            return;
        }
        if let Some(turn) = self.turns.live_mut()
            && turn.prompt_fits(&prompt_id)
        {
            turn.submit_hooked = true;
            let started = turn.acknowledge(&prompt_id);
            self.out.extend(started);
            return;
        }
        // A prompt troupe did not type (someone attached to the session): the CLI is busy
        // with it all the same.
        if let Some(old) = self.turns.live {
            self.supersede(now, old);
        }
        let key = self.turns.add(None);
        let turn = self.turns.get_mut(key).expect("just added");
        turn.acked = true;
        turn.submit_hooked = true;
        turn.prompt_id = prompt_id;
        self.turns.live = Some(key);
    }

    /// Whether a prompt submitted under a turn that already finished is the typed message
    /// that is waiting to start, taken by the CLI into the turn it was closing: a second
    /// submit hook naming that turn. The turn's own may come after its end was read (the
    /// first read of a transcript can hold a whole turn), and is only late.
    pub(in crate::supervisor::instance) fn joins_closed_turn(
        &self,
        prompt_id: &Option<String>,
    ) -> bool {
        let closed = self
            .turns
            .by_prompt(prompt_id)
            .and_then(|k| self.turns.get(k))
            .is_some_and(|t| t.finished && t.submit_hooked);
        let waiting = self
            .turns
            .live()
            .is_some_and(|t| !t.acked && t.message_id.is_some() && t.prompt_id.is_none());
        self.habits.joins_closing_turn && closed && waiting
    }

    /// The turn is over and the hook carries its answer.
    pub(in crate::supervisor::instance) fn turn_stopped(
        &mut self,
        now: Instant,
        prompt_id: Option<String>,
        reply: String,
    ) {
        let Some(key) = self.stopped_turn(&prompt_id) else {
            return;
        };
        let turn = self.turns.get(key).expect("live turn");
        let answer = if reply.trim().is_empty() {
            turn.reply_text()
        } else {
            Some(reply)
        };
        self.complete(now, key, MessageState::Answered, answer, "");
    }

    /// The turn ended in an API error.
    pub(in crate::supervisor::instance) fn turn_failed(
        &mut self,
        now: Instant,
        prompt_id: Option<String>,
        error: String,
    ) {
        let Some(key) = self.stopped_turn(&prompt_id) else {
            return;
        };
        let partial = self.turns.get(key).and_then(Turn::reply_text);
        self.complete(now, key, MessageState::Failed, partial, &error);
    }

    /// The running turn a turn-stopped or turn-failed hook closes, if it fits.
    pub(in crate::supervisor::instance) fn stopped_turn(
        &mut self,
        prompt_id: &Option<String>,
    ) -> Option<u64> {
        if self.turns.late_hook(prompt_id) {
            return None;
        }
        let key = self.turns.live?;
        let turn = self.turns.get_mut(key)?;
        if !turn.prompt_fits(prompt_id) {
            // A stray hook (a late one of an earlier turn, or not from this turn at all).
            return None;
        }
        // The hook may be the first word of this turn (its prompt not read yet): the
        // message started, under this prompt id, before it ends.
        let started = turn.acknowledge(prompt_id);
        self.out.extend(started);
        Some(key)
    }

    /// Records a turn's outcome; the instance is free before its caller hears the answer,
    /// so a caller that looks right after sees it idle.
    pub(in crate::supervisor::instance) fn complete(
        &mut self,
        now: Instant,
        key: u64,
        state: MessageState,
        response: Option<String>,
        reason: &str,
    ) {
        let Some(turn) = self.turns.get_mut(key) else {
            return;
        };
        if turn.finished {
            return;
        }
        turn.finished = true;
        turn.stop_wait = None;
        turn.submit_deadline = None;
        turn.nudge_at = None;
        // Output and usage still arrive from the transcript; make sure they are read.
        turn.catch_up = turn.ended.is_none().then_some((now, now + REPLY_RECHECK));
        let message_id = turn.message_id.clone();
        if self.turns.live == Some(key) {
            self.turns.live = None;
            self.waiting_permission = false;
            self.permission_held = false;
            if !self.starting() {
                self.report(InstanceState::Idle, "turn finished");
            }
        }
        if let Some(id) = &message_id {
            self.finish(id, state, response.clone(), reason);
        }
        if self.interrupting().is_some() {
            self.resolve_interrupt(
                InterruptOutcome::FinishedFirst,
                message_id,
                response,
                "the turn finished before the interrupt arrived",
            );
        }
    }

    /// The turn is over because another prompt started: answered if it said something,
    /// failed otherwise.
    pub(in crate::supervisor::instance) fn supersede(&mut self, now: Instant, key: u64) {
        let Some(turn) = self.turns.get(key) else {
            return;
        };
        if turn.finished {
            return;
        }
        match turn.reply_text() {
            Some(reply) => self.complete(now, key, MessageState::Answered, Some(reply), ""),
            None => self.complete(
                now,
                key,
                MessageState::Failed,
                None,
                "another prompt started before this turn ended",
            ),
        }
    }

    /// After a resume: a turn the transcript leaves open died with the previous process.
    pub(in crate::supervisor::instance) fn close_cut_off_turn(&mut self, now: Instant) {
        if let Some(key) = self.turns.live {
            let partial = self.turns.get(key).and_then(Turn::reply_text);
            self.complete(
                now,
                key,
                MessageState::Interrupted,
                partial,
                "the CLI stopped during this turn; troupe resumed the conversation",
            );
            // The process that would have written the rest of it is gone.
            if let Some(turn) = self.turns.get_mut(key) {
                turn.catch_up = None;
            }
        }
    }
}
