//! Who may do what to which instance. The person (the server token, the dashboard, the command
//! line) may do anything. An instance is a principal with a scope: it acts on itself and the
//! instances below it, replies to its parent, sends to and reads its teammates, and spawns
//! children under itself only; it never changes controls, approves anything or manages teams.
//!
//! Every MCP tool has one rule here, and the rule names the arguments that point at
//! instances; [`check`] decides one call. No I/O: where a target stands relative to the caller
//! ([`Place`]) is looked up by the caller of this module.

use serde_json::Value;

use crate::config::PermissionMode;

/// Where a target instance stands relative to the calling instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Itself,
    /// Below the caller: a child, a grandchild, ...
    Descendant,
    /// The caller's own parent.
    Parent,
    /// In a team with the caller, and none of the above.
    Teammate,
    Outside,
}

/// What a call does to an instance it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Status, output, messages, children, worktree status.
    Read,
    /// Give it work.
    Send,
    /// Interrupt, terminate, suspend, resume, remove its worktree, broadcast to its children.
    Control,
    /// Decide its permission requests.
    Decide,
    /// Read its files.
    Files,
    /// Be the parent of a new instance.
    Parent,
}

/// A tool's rule for instance callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The person's alone: controls, teams, everything-at-once.
    PersonOnly,
    /// Any caller; the tool works on the caller's own things only (its inbox, its parent).
    Own,
    /// Each instance named at these argument paths gets `Act`. A path is a key, `key[]` (each
    /// item of an array of ids), or `key[].field` (a field of each item).
    Names(&'static [(&'static str, Act)]),
}

/// Every MCP tool and its rule; a tool missing here is refused to instances.
pub const TOOLS: &[(&str, Rule)] = &[
    ("configure_orchestration", Rule::PersonOnly),
    ("get_orchestration_settings", Rule::Own),
    ("create_team", Rule::PersonOnly),
    ("start_team", Rule::PersonOnly),
    ("resume_team", Rule::PersonOnly),
    ("dissolve_team", Rule::PersonOnly),
    ("list_teams", Rule::PersonOnly),
    ("get_team", Rule::PersonOnly),
    ("interrupt_all", Rule::PersonOnly),
    ("terminate_all", Rule::PersonOnly),
    ("respond_to_approval", Rule::PersonOnly),
    ("reply_to_caller", Rule::Own),
    // An instance sees the approvals of its own calls and of those below it (see the tool).
    ("get_approval", Rule::Own),
    ("get_pending_permissions", Rule::Own),
    // Each lists the caller's own subtree for an instance (see the tools).
    ("list_instances", Rule::Own),
    (
        "get_instance_tree",
        Rule::Names(&[("instance_id", Act::Read)]),
    ),
    (
        "get_session_metrics",
        Rule::Names(&[("instance_id", Act::Read), ("team", Act::Read)]),
    ),
    (
        // Each reply is handed out once: taking an inbox's replies is acting on it.
        "get_pending_replies",
        Rule::Names(&[("instance_id", Act::Control)]),
    ),
    (
        "get_instance_status",
        Rule::Names(&[("instance_id", Act::Read)]),
    ),
    (
        "get_instance_output",
        Rule::Names(&[("instance_id", Act::Read)]),
    ),
    ("get_children", Rule::Names(&[("instance_id", Act::Read)])),
    (
        "get_worktree_status",
        Rule::Names(&[("instance_id", Act::Read)]),
    ),
    // The message's instance is looked up and read-checked by the caller of `check`.
    ("get_message", Rule::Names(&[("message_id", Act::Read)])),
    (
        "send_to_instance",
        Rule::Names(&[("instance_id", Act::Send)]),
    ),
    (
        "send_to_multiple_instances",
        Rule::Names(&[("messages[].instance_id", Act::Send)]),
    ),
    (
        "coordinate_instances",
        Rule::Names(&[
            ("tasks[].instance_id", Act::Send),
            ("instance_ids[]", Act::Send),
        ]),
    ),
    (
        "broadcast_to_children",
        Rule::Names(&[("instance_id", Act::Control)]),
    ),
    (
        "interrupt_instance",
        Rule::Names(&[("instance_id", Act::Control)]),
    ),
    (
        "interrupt_multiple_instances",
        Rule::Names(&[("instance_ids[]", Act::Control)]),
    ),
    (
        "terminate_instance",
        Rule::Names(&[("instance_id", Act::Control)]),
    ),
    (
        "suspend_instance",
        Rule::Names(&[("instance_id", Act::Control)]),
    ),
    (
        "resume_instance",
        Rule::Names(&[("instance_id", Act::Control)]),
    ),
    (
        "remove_worktree",
        Rule::Names(&[("instance_id", Act::Control)]),
    ),
    (
        "respond_to_permission",
        Rule::Names(&[("instance_id", Act::Decide)]),
    ),
    (
        "list_instance_files",
        Rule::Names(&[("instance_id", Act::Files)]),
    ),
    (
        "retrieve_instance_file",
        Rule::Names(&[("instance_id", Act::Files)]),
    ),
    (
        "spawn_claude",
        Rule::Names(&[
            ("parent_instance_id", Act::Parent),
            ("parent_id", Act::Parent),
        ]),
    ),
    (
        "spawn_codex",
        Rule::Names(&[
            ("parent_instance_id", Act::Parent),
            ("parent_id", Act::Parent),
        ]),
    ),
    (
        "spawn_multiple_instances",
        Rule::Names(&[
            ("instances[].parent_instance_id", Act::Parent),
            ("instances[].parent_id", Act::Parent),
        ]),
    ),
];

pub fn rule(tool: &str) -> Option<Rule> {
    TOOLS.iter().find(|(t, _)| *t == tool).map(|(_, r)| *r)
}

/// Whether an instance may `act` on an instance at `place`.
pub fn may(act: Act, place: Place) -> bool {
    use Place::*;
    match act {
        Act::Read | Act::Send => matches!(place, Itself | Descendant | Teammate),
        Act::Control | Act::Files => matches!(place, Itself | Descendant),
        // Never its own requests: a parent, or the person, decides them.
        Act::Decide => place == Descendant,
        Act::Parent => place == Itself,
    }
}

/// How much an instance may do unasked, least first: `plan` and a read-only sandbox write
/// nothing; `default` asks for every tool; `accept-edits` writes files unasked; `skip` (or
/// Codex's full access) does anything.
pub fn latitude(mode: PermissionMode, sandbox: Option<&str>) -> u8 {
    let by_mode = match mode {
        PermissionMode::Plan => 0,
        PermissionMode::Default => 1,
        PermissionMode::AcceptEdits => 2,
        PermissionMode::Skip => 3,
    };
    // A Codex sandbox bounds what its instance can do whatever the mode.
    let by_sandbox = match sandbox {
        Some("read-only") => 0,
        Some("workspace-write") => 2,
        _ => 3,
    };
    by_mode.min(by_sandbox)
}

/// The permission mode of a child an instance spawns: the one asked for if it gives no more
/// latitude than the parent has, else refused; with none asked, the server's default or the
/// parent's, whichever gives less.
pub fn child_mode(
    parent: (PermissionMode, Option<&str>),
    asked: Option<PermissionMode>,
    child_sandbox: Option<&str>,
    default: PermissionMode,
) -> Result<PermissionMode, String> {
    let bound = latitude(parent.0, parent.1);
    match asked {
        Some(mode) if latitude(mode, child_sandbox) > bound => Err(format!(
            "permission_mode {} (sandbox {}) would let the child do more than its parent, which \
             runs in {}{}; a child gets at most its parent's freedom: ask for a stricter mode",
            mode.as_str(),
            child_sandbox.unwrap_or("none"),
            parent.0.as_str(),
            parent
                .1
                .map(|s| format!(" with sandbox {s}"))
                .unwrap_or_default(),
        )),
        Some(mode) => Ok(mode),
        None => {
            let candidates = [
                default,
                PermissionMode::AcceptEdits,
                PermissionMode::Default,
                PermissionMode::Plan,
            ];
            Ok(candidates
                .into_iter()
                .find(|m| latitude(*m, child_sandbox) <= bound)
                .unwrap_or(PermissionMode::Plan))
        }
    }
}

/// What an instance may not do, in words that name the fix.
pub fn refusal(tool: &str, act: Option<(Act, &str)>) -> String {
    match act {
        None => format!(
            "{tool} is the person's to use, not an instance's: ask whoever gave you work \
             (reply_to_caller) if it is needed"
        ),
        Some((Act::Parent, target)) => format!(
            "{tool}: an instance spawns children under itself only, not under {target}; leave \
             parent_instance_id out"
        ),
        Some((Act::Decide, target)) => format!(
            "{tool}: {target} is not below you; an instance decides only the requests of the \
             instances it spawned (and theirs), never its own"
        ),
        Some((Act::Read | Act::Send, target)) => format!(
            "{tool}: {target} is outside your reach; an instance works with itself, the \
             instances it spawned (and theirs) and its teammates. To reach others, \
             reply_to_caller"
        ),
        Some((_, target)) => format!(
            "{tool}: {target} is neither you nor one of the instances you spawned (or theirs); \
             an instance may act only on those"
        ),
    }
}

/// The instance ids (or, for `message_id` and `team`, the names) `rule` finds in `args`,
/// each with what the call does to it.
pub fn targets(rule: Rule, args: &Value) -> Vec<(Act, String, &'static str)> {
    let Rule::Names(paths) = rule else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (path, act) in paths {
        for id in at_path(args, path) {
            out.push((*act, id, *path));
        }
    }
    out
}

fn at_path(args: &Value, path: &str) -> Vec<String> {
    let text = |v: &Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match path.split_once("[]") {
        None => args.get(path).and_then(text).into_iter().collect(),
        Some((key, rest)) => {
            let items = args
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let field = rest.strip_prefix('.');
            items
                .iter()
                .filter_map(|item| match field {
                    Some(f) => item.get(f).and_then(text),
                    None => text(item),
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_tool_has_a_rule() {
        for tool in crate::mcp::tool_names() {
            assert!(rule(tool).is_some(), "{tool} has no rule in access::TOOLS");
        }
        for (tool, _) in TOOLS {
            assert!(
                crate::mcp::tool_names().contains(tool),
                "{tool} in access::TOOLS is not a tool"
            );
        }
    }

    #[test]
    fn the_table_of_act_and_place() {
        use Place::*;
        let places = [Itself, Descendant, Parent, Teammate, Outside];
        let allowed = |act| -> Vec<Place> { places.into_iter().filter(|p| may(act, *p)).collect() };
        assert_eq!(allowed(Act::Read), [Itself, Descendant, Teammate]);
        assert_eq!(allowed(Act::Send), [Itself, Descendant, Teammate]);
        assert_eq!(allowed(Act::Control), [Itself, Descendant]);
        assert_eq!(allowed(Act::Files), [Itself, Descendant]);
        assert_eq!(allowed(Act::Decide), [Descendant]);
        assert_eq!(allowed(Act::Parent), [Itself]);
    }

    #[test]
    fn a_child_never_gets_more_latitude_than_its_parent() {
        use PermissionMode::*;
        // With nothing asked: the default, or stricter to stay within the parent.
        assert_eq!(child_mode((Skip, None), None, None, Skip), Ok(Skip));
        assert_eq!(child_mode((Default, None), None, None, Skip), Ok(Default));
        assert_eq!(
            child_mode((AcceptEdits, None), None, None, Skip),
            Ok(AcceptEdits)
        );
        assert_eq!(
            child_mode((Skip, Some("read-only")), None, None, Skip),
            Ok(Plan)
        );
        assert_eq!(child_mode((Plan, None), None, None, Default), Ok(Plan));
        // Asked for: allowed within the parent's latitude, refused beyond it.
        assert_eq!(
            child_mode((Skip, None), Some(Default), None, Skip),
            Ok(Default)
        );
        assert_eq!(
            child_mode((Default, None), Some(Plan), None, Skip),
            Ok(Plan)
        );
        let e = child_mode((Default, None), Some(Skip), None, Skip).unwrap_err();
        assert!(e.contains("runs in default"), "{e}");
        assert!(child_mode((Skip, Some("read-only")), Some(Skip), None, Skip).is_err());
        // A Codex child's sandbox counts: skip inside a read-only sandbox is within bounds.
        assert_eq!(
            child_mode(
                (Skip, Some("read-only")),
                Some(Skip),
                Some("read-only"),
                Skip
            ),
            Ok(Skip)
        );
        assert!(
            child_mode(
                (AcceptEdits, None),
                Some(Skip),
                Some("danger-full-access"),
                Skip
            )
            .is_err()
        );
    }

    #[test]
    fn controls_approvals_and_teams_are_the_persons() {
        for tool in [
            "configure_orchestration",
            "create_team",
            "start_team",
            "dissolve_team",
            "terminate_all",
            "interrupt_all",
            "respond_to_approval",
        ] {
            assert_eq!(rule(tool), Some(Rule::PersonOnly), "{tool}");
        }
        assert!(refusal("configure_orchestration", None).contains("reply_to_caller"));
    }

    #[test]
    fn targets_are_found_wherever_the_arguments_name_them() {
        let t = |tool: &str, args: Value| -> Vec<(Act, String)> {
            targets(rule(tool).unwrap(), &args)
                .into_iter()
                .map(|(a, id, _)| (a, id))
                .collect()
        };
        assert_eq!(
            t("terminate_instance", json!({ "instance_id": "a-1" })),
            [(Act::Control, "a-1".to_string())]
        );
        assert_eq!(
            t(
                "coordinate_instances",
                json!({ "tasks": [{ "instance_id": "a" }, { "instance_id": "b" }], "instance_ids": ["c", " "] })
            ),
            [
                (Act::Send, "a".to_string()),
                (Act::Send, "b".to_string()),
                (Act::Send, "c".to_string())
            ]
        );
        assert_eq!(
            t(
                "spawn_multiple_instances",
                json!({ "instances": [{ "role": "x" }, { "parent_instance_id": "p" }] })
            ),
            [(Act::Parent, "p".to_string())]
        );
        assert_eq!(t("spawn_claude", json!({ "role": "tester" })), []);
        assert_eq!(t("get_instance_status", json!({ "instance_id": 7 })), []);
    }
}
