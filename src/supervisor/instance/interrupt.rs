//! Interrupts: the CLI's interrupt key stops the running turn and keeps the conversation. The CLI confirms by
//! writing the interrupted turn to its transcript; a turn that ends on its own first, or no
//! sign at all within the limit, is reported as such.

use tokio::time::Instant;

use super::machine::{Effect, InterruptReport, Look, Machine, Seen};
use crate::states::InterruptOutcome;

#[derive(Debug)]
pub(super) struct Pending {
    pub id: i64,
    pub message_id: Option<String>,
    /// When to stop waiting for the CLI's confirmation (None once the look is asked for).
    pub deadline: Option<Instant>,
}

impl Machine {
    pub(super) fn ask_interrupt(&mut self, now: Instant, id: i64) {
        let refused = if self.interrupt.is_some() {
            Some("another interrupt is already in progress")
        } else if self.turns.live().is_none() {
            Some("the instance was idle; there was nothing to interrupt")
        } else {
            None
        };
        if let Some(detail) = refused {
            let outcome = if self.interrupt.is_some() {
                InterruptOutcome::Unconfirmed
            } else {
                InterruptOutcome::NotBusy
            };
            self.out.push(Effect::ResolveInterrupt {
                id,
                result: Ok(InterruptReport {
                    interrupted: false,
                    outcome,
                    message_id: None,
                    partial_response: None,
                    detail: detail.into(),
                }),
            });
            return;
        }
        self.out.push(Effect::PressInterrupt { id });
        self.interrupt = Some(Pending {
            id,
            message_id: self.live_message(),
            deadline: Some(now + self.limits.interrupt),
        });
    }

    pub(super) fn interrupt_tick(&mut self, now: Instant) {
        if let Some(pending) = self.interrupt.as_mut()
            && pending.deadline.is_some_and(|d| now >= d)
        {
            pending.deadline = None;
            let id = pending.id;
            // The confirmation may sit unread in the transcript.
            self.out.push(Effect::ReadTranscript);
            self.out.push(Effect::Look(Look::InterruptLate { id }));
        }
    }

    pub(super) fn interrupt_late_seen(&mut self, id: i64, seen: &Seen) {
        if self.interrupt.as_ref().is_some_and(|p| p.id == id) {
            self.resolve_interrupt(
                InterruptOutcome::Unconfirmed,
                None,
                None,
                &format!(
                    "no interrupted turn in the transcript after the interrupt key; screen ends with: {}",
                    seen.tail
                ),
            );
        }
    }

    /// Answers the pending interrupt.
    pub(super) fn resolve_interrupt(
        &mut self,
        outcome: InterruptOutcome,
        message_id: Option<String>,
        partial_response: Option<String>,
        detail: &str,
    ) {
        let Some(pending) = self.interrupt.take() else {
            return;
        };
        self.out.push(Effect::ResolveInterrupt {
            id: pending.id,
            result: Ok(InterruptReport {
                interrupted: outcome == InterruptOutcome::Confirmed,
                outcome,
                message_id: message_id.or(pending.message_id),
                partial_response,
                detail: detail.to_string(),
            }),
        });
    }
}
