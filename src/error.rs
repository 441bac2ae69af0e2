//! One error type. Each variant says what happened and, where it can, what to do next; tools
//! turn them into MCP tool errors the calling model can read.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("no instance {0}; list_instances shows the instances that exist")]
    UnknownInstance(String),
    #[error("no message {0}")]
    UnknownMessage(String),
    #[error("no approval {0:?}; `troupe approve` lists the ones waiting")]
    UnknownApproval(String),
    #[error("no team named {0:?}; list_teams shows the teams")]
    UnknownTeam(String),
    #[error("instance {id} is {state}{}; {}", reason_suffix(.reason), next_step(*.state))]
    NotRunning {
        id: String,
        state: crate::states::InstanceState,
        reason: String,
    },
    #[error("limit reached: {0}")]
    Limit(String),
    /// Not done, for a reason the caller can fix: the text says what is in the way (a
    /// worktree with uncommitted changes, say) and what to do.
    #[error("{0}")]
    Refused(String),
    /// The caller may not do this to that instance (an instance reaching outside its tree).
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "no answer from {instance_id} within {seconds}s; message {message_id} is still {state}. \
         Fetch the answer later with get_message(message_id=\"{message_id}\") or interrupt_instance"
    )]
    Timeout {
        instance_id: String,
        message_id: String,
        seconds: u64,
        state: crate::states::MessageState,
    },
    #[error("{0}")]
    Agent(String),
    #[error(transparent)]
    Tmux(#[from] crate::tmux::TmuxError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

fn next_step(state: crate::states::InstanceState) -> &'static str {
    use crate::states::InstanceState::*;
    match state {
        Suspended | Exited => "resume_instance brings it back with its conversation",
        Starting => "wait until it is ready",
        Terminated | Failed => {
            "resume_instance tries to bring it back with its conversation; or spawn a new one"
        }
        Idle | Busy | WaitingPermission => "try again in a moment",
        HostLost => {
            "its host takes it up again when it is back; `troupe hosts` shows the host, and \
             `troupe host forget` gives up on it"
        }
        Attached => {
            "it is a session troupe did not start (troupe chat); talk to it in its own terminal"
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
