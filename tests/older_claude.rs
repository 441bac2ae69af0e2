//! The core scenarios again, on the oldest Claude Code troupe is tested against (every other
//! test binary runs the newest; `support::clis` picks the version by this binary's name).
//! The same test bodies, the version a parameter: spawn, send, interrupt, commands typed as
//! text, restart and resume, worktree spawns, permission requests, approvals, and the
//! person's session spawning a helper in its own folder.
//!
//! Each included file brings its own copy of `support`; nothing in it is shared between
//! copies but what the process shares (tmux sockets are named per copy).
#![allow(clippy::duplicate_mod)]

#[path = "claude_instances.rs"]
mod claude_instances;
#[path = "hierarchy.rs"]
mod hierarchy;
#[path = "permissions.rs"]
mod permissions;
#[path = "restart.rs"]
mod restart;
#[path = "worktrees.rs"]
mod worktrees;
