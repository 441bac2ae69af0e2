//! The states an instance, a message and an interrupt move through. They are stored as their
//! snake_case names (the database refuses any other value), serialised the same way, and
//! described in the tool schemas.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an instance is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
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
    /// A session troupe did not start (`troupe chat`): its spawns are its children and its
    /// tokens are counted, but troupe does not type into it.
    Attached,
    /// The host that runs it went silent past the heartbeat limit (a fleet on PostgreSQL): it
    /// may still run there. Its messages wait, and the host takes it up again when it is back.
    HostLost,
}

impl InstanceState {
    /// Ended for good: no task follows it and a restart does not bring it back.
    pub fn is_ended(self) -> bool {
        matches!(self, InstanceState::Terminated | InstanceState::Failed)
    }
}

/// Where a message is on its way to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
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
    /// True once the message's turn is over, one way or another.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            MessageState::Answered | MessageState::Interrupted | MessageState::Failed
        )
    }
}

/// What came of an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
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

/// The stored (and serialised) name of each state, and what follows from it. Rows are read
/// with `query_as!`, which converts the stored text with `From`; the database refuses any other
/// text (migrations 0003, 0004 and 0007), so the fallback never applies to a row troupe wrote.
macro_rules! stored_names {
    ($t:ident, fallback $fallback:ident, { $($v:ident => $name:literal),* $(,)? }) => {
        impl $t {
            pub const ALL: &[$t] = &[$($t::$v),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $name),*
                }
            }
        }

        impl From<String> for $t {
            fn from(text: String) -> Self {
                $t::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .unwrap_or($t::$fallback)
            }
        }

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
    };
}

/// Where a CLI's permission request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AskState {
    /// The CLI waits for someone to decide.
    Pending,
    Allowed,
    Denied,
    /// Nobody decided while troupe held it; the CLI's own dialog took over.
    Expired,
}

/// Where an approval of an instance's call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Asked of the person, not answered yet.
    Pending,
    /// The person said yes: the call may be made once.
    Approved,
    Denied,
    /// The approved call was made.
    Used,
    /// Past its life unanswered or unused.
    Expired,
}

stored_names!(AskState, fallback Expired, {
    Pending => "pending",
    Allowed => "allowed",
    Denied => "denied",
    Expired => "expired",
});
stored_names!(ApprovalState, fallback Expired, {
    Pending => "pending",
    Approved => "approved",
    Denied => "denied",
    Used => "used",
    Expired => "expired",
});
stored_names!(InstanceState, fallback Failed, {
    Starting => "starting",
    Idle => "idle",
    Busy => "busy",
    WaitingPermission => "waiting_permission",
    Suspended => "suspended",
    Exited => "exited",
    Terminated => "terminated",
    Failed => "failed",
    Attached => "attached",
    HostLost => "host_lost",
});
stored_names!(MessageState, fallback Failed, {
    Queued => "queued",
    Submitted => "submitted",
    Started => "started",
    Answered => "answered",
    Interrupted => "interrupted",
    Failed => "failed",
});
stored_names!(InterruptOutcome, fallback Unconfirmed, {
    Requested => "requested",
    Confirmed => "confirmed",
    NotBusy => "not_busy",
    FinishedFirst => "finished_first",
    Unconfirmed => "unconfirmed",
});

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + Serialize + From<String> + fmt::Display,
    {
        for s in all {
            assert_eq!(serde_json::to_value(s).unwrap(), s.to_string());
            assert_eq!(T::from(s.to_string()), *s);
        }
    }

    #[test]
    fn names_match_serde_and_the_stored_text() {
        check(InstanceState::ALL);
        check(MessageState::ALL);
        check(InterruptOutcome::ALL);
        check(AskState::ALL);
        check(ApprovalState::ALL);
        assert_eq!(InstanceState::ALL.len(), 10);
        assert_eq!(
            MessageState::from("timed_out".to_string()),
            MessageState::Failed
        );
    }
}
