//! The states an instance, a message and an interrupt move through. They are stored as their
//! snake_case names (the database refuses any other value), serialised the same way, and
//! described in the tool schemas.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an instance is doing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum InstanceState {
    /// The CLI is launching (or resuming); messages wait until it is ready.
    Starting,
    /// Ready for a message.
    Idle,
    /// Working on a turn.
    Busy,
    /// Stopped at a permission prompt inside a turn.
    WaitingPermission,
    /// Its CLI was stopped on request; the conversation is kept and a message resumes it.
    Suspended,
    /// Its CLI exited on its own (crashed, killed); the conversation is kept, queued messages
    /// wait, and resume_instance (or the next message) brings it back.
    Exited,
    /// Ended on request.
    Terminated,
    /// Its CLI is gone or could not start; the reason says why.
    Failed,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Idle => "idle",
            InstanceState::Busy => "busy",
            InstanceState::WaitingPermission => "waiting_permission",
            InstanceState::Suspended => "suspended",
            InstanceState::Exited => "exited",
            InstanceState::Terminated => "terminated",
            InstanceState::Failed => "failed",
        }
    }

    /// Ended for good: no task follows it and a restart does not bring it back.
    pub fn is_ended(self) -> bool {
        matches!(self, InstanceState::Terminated | InstanceState::Failed)
    }
}

/// Where a message is on its way to an answer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum MessageState {
    /// Written, waiting for the instance to be free.
    Queued,
    /// Typed into the CLI; the CLI has not acknowledged it yet.
    Submitted,
    /// The CLI started a turn for it.
    Started,
    /// The turn ended with an answer.
    Answered,
    /// The turn was stopped by an interrupt (or cut off when the CLI died and was resumed);
    /// the response holds what was said before.
    Interrupted,
    /// The turn could not run or ended in an error; the reason says why.
    Failed,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Submitted => "submitted",
            MessageState::Started => "started",
            MessageState::Answered => "answered",
            MessageState::Interrupted => "interrupted",
            MessageState::Failed => "failed",
        }
    }

    /// True once the message's turn is over, one way or another.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            MessageState::Answered | MessageState::Interrupted | MessageState::Failed
        )
    }
}

/// What came of an interrupt.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum InterruptOutcome {
    /// Asked for; the CLI has not answered yet.
    Requested,
    /// The CLI recorded the stopped turn; the conversation is kept.
    Confirmed,
    /// Nothing was running.
    NotBusy,
    /// The turn ended on its own before the interrupt took effect.
    FinishedFirst,
    /// No sign that the turn stopped; the detail says what was seen.
    Unconfirmed,
}

impl InterruptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            InterruptOutcome::Requested => "requested",
            InterruptOutcome::Confirmed => "confirmed",
            InterruptOutcome::NotBusy => "not_busy",
            InterruptOutcome::FinishedFirst => "finished_first",
            InterruptOutcome::Unconfirmed => "unconfirmed",
        }
    }
}

/// Rows are read with `query_as!`, which converts the stored text with `From`. The database
/// refuses any other text (migrations/0002), so the fallback never applies to a row troupe
/// wrote; it maps to the state that asks for a look rather than claims progress.
macro_rules! from_stored_text {
    ($t:ty, $fallback:expr, [$($v:expr),*]) => {
        impl From<String> for $t {
            fn from(text: String) -> Self {
                [$($v),*]
                    .into_iter()
                    .find(|v: &$t| v.as_str() == text)
                    .unwrap_or($fallback)
            }
        }
    };
}
from_stored_text!(
    InstanceState,
    InstanceState::Failed,
    [
        InstanceState::Starting,
        InstanceState::Idle,
        InstanceState::Busy,
        InstanceState::WaitingPermission,
        InstanceState::Suspended,
        InstanceState::Exited,
        InstanceState::Terminated,
        InstanceState::Failed
    ]
);
from_stored_text!(
    MessageState,
    MessageState::Failed,
    [
        MessageState::Queued,
        MessageState::Submitted,
        MessageState::Started,
        MessageState::Answered,
        MessageState::Interrupted,
        MessageState::Failed
    ]
);
from_stored_text!(
    InterruptOutcome,
    InterruptOutcome::Unconfirmed,
    [
        InterruptOutcome::Requested,
        InterruptOutcome::Confirmed,
        InterruptOutcome::NotBusy,
        InterruptOutcome::FinishedFirst,
        InterruptOutcome::Unconfirmed
    ]
);

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares with the stored name, as tests and reports read it.
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    )*};
}
display_as_str!(InstanceState, MessageState, InterruptOutcome);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_the_stored_text() {
        for s in [
            InstanceState::Starting,
            InstanceState::Idle,
            InstanceState::Busy,
            InstanceState::WaitingPermission,
            InstanceState::Suspended,
            InstanceState::Exited,
            InstanceState::Terminated,
            InstanceState::Failed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(InstanceState::from(s.as_str().to_string()), s);
        }
        for s in [
            MessageState::Queued,
            MessageState::Submitted,
            MessageState::Started,
            MessageState::Answered,
            MessageState::Interrupted,
            MessageState::Failed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(MessageState::from(s.as_str().to_string()), s);
        }
        for s in [
            InterruptOutcome::Requested,
            InterruptOutcome::Confirmed,
            InterruptOutcome::NotBusy,
            InterruptOutcome::FinishedFirst,
            InterruptOutcome::Unconfirmed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(InterruptOutcome::from(s.as_str().to_string()), s);
        }
    }
}
