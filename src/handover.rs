//! Acts on an instance that another host of the fleet runs, apart from I/O: what is handed
//! over and how its failure comes back.
//!
//! An instance's tmux session, CLI, hooks and files are on its owner's machine, so only the
//! owner can press its keys or read its files. The host a caller reached does not call the
//! owner over the network: it writes the act into the registry (`host_calls`), the owner hears
//! of it through a NOTIFY, carries it out as that caller and writes the answer back. The
//! registry is already the one thing every host must reach and trust, so the hand-over needs
//! no host-to-host address, credential or TLS of its own, an act is never lost between two
//! hosts, and the caller's identity is a column the owner reads, not a token sent along.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::permissions::Decision;
use crate::states::{InstanceState, MessageState};

/// What the caller asks of the instance's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "act", rename_all = "snake_case")]
pub enum Act {
    Send {
        text: String,
    },
    Spawn {
        request: Box<crate::supervisor::SpawnRequest>,
    },
    Interrupt,
    Suspend,
    Terminate,
    /// The instance and, first, its descendants (`terminate_instance`).
    TerminateTree,
    Resume,
    DecidePermission {
        request_id: String,
        decision: Decision,
        message: Option<String>,
        /// Who decided when not the caller (a notification's link: `notify:<sink>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    ListFiles {
        path: String,
        recursive: bool,
        max_entries: Option<u64>,
    },
    ReadFile {
        path: String,
        max_bytes: Option<u64>,
    },
    WorktreeStatus,
    RemoveWorktree {
        force_ignored: bool,
    },
}

impl Act {
    /// The act in a few words, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Send { .. } => "send",
            Act::Spawn { .. } => "spawn",
            Act::Interrupt => "interrupt",
            Act::Suspend => "suspend",
            Act::Terminate | Act::TerminateTree => "terminate",
            Act::Resume => "resume",
            Act::DecidePermission { .. } => "permission decision",
            Act::ListFiles { .. } => "file listing",
            Act::ReadFile { .. } => "file read",
            Act::WorktreeStatus => "worktree status",
            Act::RemoveWorktree { .. } => "worktree removal",
        }
    }
}

/// An [`Error`] as it travels back from the owner: the kinds a caller tells apart keep their
/// fields, so the caller's host words them exactly as the owner would have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    InvalidInput {
        text: String,
    },
    UnknownInstance {
        id: String,
    },
    UnknownMessage {
        id: String,
    },
    NotRunning {
        id: String,
        state: InstanceState,
        reason: String,
    },
    Limit {
        text: String,
    },
    Refused {
        text: String,
    },
    Forbidden {
        text: String,
    },
    Timeout {
        instance_id: String,
        message_id: String,
        seconds: u64,
        state: MessageState,
    },
    /// Anything else (tmux, the database, a file): its text.
    Other {
        text: String,
    },
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Failure {
        match e {
            Error::InvalidInput(text) => Failure::InvalidInput { text: text.clone() },
            Error::UnknownInstance(id) => Failure::UnknownInstance { id: id.clone() },
            Error::UnknownMessage(id) => Failure::UnknownMessage { id: id.clone() },
            Error::NotRunning { id, state, reason } => Failure::NotRunning {
                id: id.clone(),
                state: *state,
                reason: reason.clone(),
            },
            Error::Limit(text) => Failure::Limit { text: text.clone() },
            Error::Refused(text) => Failure::Refused { text: text.clone() },
            Error::Forbidden(text) => Failure::Forbidden { text: text.clone() },
            Error::Timeout {
                instance_id,
                message_id,
                seconds,
                state,
            } => Failure::Timeout {
                instance_id: instance_id.clone(),
                message_id: message_id.clone(),
                seconds: *seconds,
                state: *state,
            },
            other => Failure::Other {
                text: other.to_string(),
            },
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        match f {
            Failure::InvalidInput { text } => Error::InvalidInput(text),
            Failure::UnknownInstance { id } => Error::UnknownInstance(id),
            Failure::UnknownMessage { id } => Error::UnknownMessage(id),
            Failure::NotRunning { id, state, reason } => Error::NotRunning { id, state, reason },
            Failure::Limit { text } => Error::Limit(text),
            Failure::Refused { text } => Error::Refused(text),
            Failure::Forbidden { text } => Error::Forbidden(text),
            Failure::Timeout {
                instance_id,
                message_id,
                seconds,
                state,
            } => Error::Timeout {
                instance_id,
                message_id,
                seconds,
                state,
            },
            Failure::Other { text } => Error::Agent(text),
        }
    }
}

/// Where a handed-over act stands, from its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not taken, or taken and still running.
    Pending,
    /// Done: the answer as JSON.
    Done(serde_json::Value),
    Failed(Failure),
}

/// Reads a row's state and its result or error columns. A row the owner wrote badly (a newer
/// troupe, a hand edit) is a failure that says so, never a panic.
pub fn outcome(state: &str, result: Option<&str>, error: Option<&str>) -> Outcome {
    match state {
        "done" => match result.map(serde_json::from_str) {
            Some(Ok(v)) => Outcome::Done(v),
            _ => Outcome::Failed(Failure::Other {
                text: "the owner host's answer could not be read".into(),
            }),
        },
        "failed" => match error.map(serde_json::from_str::<Failure>) {
            Some(Ok(f)) => Outcome::Failed(f),
            _ => Outcome::Failed(Failure::Other {
                text: error
                    .unwrap_or("the owner host failed without a reason")
                    .into(),
            }),
        },
        _ => Outcome::Pending,
    }
}

/// What a caller hears when the owner did not answer in time: whether it ever took the act
/// decides whether the act may still happen.
pub fn not_answered(host: &str, act: &Act, instance_id: &str, taken: bool, secs: u64) -> String {
    let instance_id = match (act, instance_id) {
        (Act::Spawn { .. }, _) | (_, "") => "a new instance",
        _ => instance_id,
    };
    if taken {
        format!(
            "host {host} took the {} of {instance_id} but did not answer within {secs} s; it \
             may still finish: list_instances and get_message show what it did",
            act.name()
        )
    } else {
        format!(
            "host {host} did not take the {} of {instance_id} within {secs} s, so it was \
             withdrawn; `troupe hosts` shows whether {host} is up",
            act.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acts_travel_as_tagged_json() {
        let act = Act::DecidePermission {
            request_id: "perm-1".into(),
            decision: Decision::Allow,
            message: None,
            by: None,
        };
        let text = serde_json::to_string(&act).unwrap();
        assert!(text.contains(r#""act":"decide_permission""#), "{text}");
        assert_eq!(serde_json::from_str::<Act>(&text).unwrap(), act);
        let plain: Act = serde_json::from_str(r#"{"act":"interrupt"}"#).unwrap();
        assert_eq!(plain, Act::Interrupt);
        assert!(serde_json::from_str::<Act>(r#"{"act":"format_disk"}"#).is_err());
    }

    #[test]
    fn an_error_comes_back_as_the_owner_said_it() {
        let errors = [
            Error::NotRunning {
                id: "inst-1".into(),
                state: InstanceState::Suspended,
                reason: "idle for 10 min".into(),
            },
            Error::Timeout {
                instance_id: "inst-1".into(),
                message_id: "msg-1".into(),
                seconds: 30,
                state: MessageState::Started,
            },
            Error::Forbidden("not yours".into()),
            Error::Refused("uncommitted changes".into()),
            Error::UnknownInstance("inst-9".into()),
        ];
        for e in errors {
            let wire = serde_json::to_string(&Failure::from(&e)).unwrap();
            let back: Error = serde_json::from_str::<Failure>(&wire).unwrap().into();
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{wire}"
            );
        }
        let io = Error::Io(std::io::Error::other("disk full"));
        let back: Error = Failure::from(&io).into();
        assert_eq!(back.to_string(), "disk full");
    }

    #[test]
    fn a_row_is_read_without_trusting_it() {
        assert_eq!(outcome("queued", None, None), Outcome::Pending);
        assert_eq!(outcome("taken", None, None), Outcome::Pending);
        assert_eq!(
            outcome("done", Some(r#"{"a":1}"#), None),
            Outcome::Done(serde_json::json!({"a": 1}))
        );
        assert!(matches!(
            outcome("done", Some("{not json"), None),
            Outcome::Failed(Failure::Other { .. })
        ));
        assert_eq!(
            outcome("failed", None, Some(r#"{"kind":"refused","text":"no"}"#)),
            Outcome::Failed(Failure::Refused { text: "no".into() })
        );
        assert_eq!(
            outcome("failed", None, Some("plain words")),
            Outcome::Failed(Failure::Other {
                text: "plain words".into()
            })
        );
    }

    #[test]
    fn an_unanswered_act_says_whether_it_may_still_happen() {
        let taken = not_answered("beta", &Act::Interrupt, "inst-1", true, 60);
        assert!(
            taken.starts_with("host beta took the interrupt of inst-1"),
            "{taken}"
        );
        let withdrawn = not_answered("beta", &Act::Terminate, "inst-1", false, 60);
        assert!(withdrawn.contains("withdrawn"), "{withdrawn}");
        assert!(withdrawn.contains("`troupe hosts`"), "{withdrawn}");
    }
}
