//! What troupe asks of the person's client in the stateless era (MCP 2026-07-28), where the
//! server cannot send the client requests of its own: a tool call that needs the client's
//! roots (a spawn with no `project_dir`) or the person's approval (`require_approval`) answers
//! `input_required` with those requests, and the client calls again with the answers and the
//! `requestState` troupe gave it. The session era asks the same things on the session instead
//! (see [`super::roots`] and [`super::approval`]).
//!
//! `requestState` comes back from the client, so it is only a handle: what was asked, for
//! which call, lives here, is good once, and expires.
#![allow(deprecated)] // Roots are deprecated in the newest draft, and still how clients say where they work.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::model::{
    ClientCapabilities, ElicitResult, ElicitationAction, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, JsonObject, ListRootsResult,
};
use serde_json::json;

/// The keys of troupe's input requests.
pub const ROOTS: &str = "roots";
pub const APPROVAL: &str = "approval";
pub const PERMISSION: &str = "permission";

/// How long the person has to answer before the call must start over.
const LIFE: Duration = Duration::from_secs(10 * 60);
/// The most rounds in flight; the oldest is dropped first.
const MAX_PENDING: usize = 1024;

/// What a call needs from the client before it can run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub roots: bool,
    pub approval: bool,
}

impl Needs {
    pub fn any(self) -> bool {
        self.roots || self.approval
    }
}

/// Whether a call of `tool` with `args` places instances with no directory given, so the
/// client's roots decide where they work.
pub fn wants_roots(tool: &str, args: Option<&JsonObject>) -> bool {
    let unplaced = |o: &serde_json::Map<String, serde_json::Value>| {
        o.get("project_dir")
            .and_then(|d| d.as_str())
            .is_none_or(|d| d.trim().is_empty())
    };
    match tool {
        "spawn_claude" | "spawn_codex" => args.is_none_or(unplaced),
        "spawn_multiple_instances" => args
            .and_then(|a| a.get("instances"))
            .and_then(|i| i.as_array())
            .is_some_and(|list| list.iter().any(|e| e.as_object().is_some_and(unplaced))),
        _ => false,
    }
}

/// What the client can answer, from the capabilities its request declares.
pub fn can_answer(caps: &ClientCapabilities) -> Needs {
    let form = caps
        .elicitation
        .as_ref()
        // A client that names no mode takes forms.
        .is_some_and(|e| e.form.is_some() || e.url.is_none());
    Needs {
        roots: caps.roots.is_some(),
        approval: form,
    }
}

/// The input requests for what is needed.
pub fn requests(needs: Needs, question: &str) -> InputRequests {
    let mut out = InputRequests::new();
    if needs.roots {
        let r = serde_json::from_value::<InputRequest>(json!({ "method": "roots/list" }))
            .expect("roots/list is an input request");
        out.insert(ROOTS.into(), r);
    }
    if needs.approval {
        let schema = rmcp::model::ElicitationSchema::from_type::<super::approval::Approve>()
            .expect("the approval form has a schema");
        let r = serde_json::from_value::<InputRequest>(json!({
            "method": "elicitation/create",
            "params": { "mode": "form", "message": question, "requestedSchema": schema },
        }))
        .expect("elicitation/create is an input request");
        out.insert(APPROVAL.into(), r);
    }
    out
}

/// The first `file://` root in the client's answer to `roots/list`.
pub fn answered_dir(responses: &InputResponses) -> Option<String> {
    let listed: ListRootsResult = serde_json::from_value(responses.get(ROOTS)?.clone()).ok()?;
    listed
        .roots
        .iter()
        .find_map(|r| super::roots::file_path(&r.uri))
}

/// The person's answer to the approval form: allowed, or in a word why not.
pub fn answered_approval(responses: &InputResponses) -> Result<(), &'static str> {
    let Some(value) = responses.get(APPROVAL) else {
        return Err("gave no answer to");
    };
    let Ok(answer) = serde_json::from_value::<ElicitResult>(value.clone()) else {
        return Err("gave no answer to");
    };
    match answer.action {
        ElicitationAction::Accept => {
            let approve = answer
                .content
                .as_ref()
                .and_then(|c| c.get("approve"))
                .and_then(|a| a.as_bool());
            match approve {
                Some(true) => Ok(()),
                _ => Err("did not approve"),
            }
        }
        ElicitationAction::Decline => Err("declined"),
        ElicitationAction::Cancel => Err("cancelled"),
        _ => Err("gave no answer to"),
    }
}

/// What a round asked the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// What the call needed before it could run.
    Inputs(Needs),
    /// A permission question that came up while the call waited for `message_id`; the retry
    /// decides it and goes on waiting until `until`.
    Permission {
        instance_id: String,
        request_id: String,
        message_id: String,
        until: Instant,
    },
    /// An instance's call that waits for the person's approval, asked while the person's call
    /// waited for `message_id`; the retry answers it and goes on waiting until `until`.
    Approval {
        approval_id: String,
        message_id: String,
        until: Instant,
    },
}

/// Where a tool call of the person's waits, so that a permission question arriving during
/// the wait can end it with `input_required` and the retry can go on waiting.
#[derive(Debug, Clone, Default)]
pub struct Waiting(std::sync::Arc<Mutex<Option<(String, Instant)>>>);

impl Waiting {
    /// The call now waits for `message_id` until `until`.
    pub fn on(&self, message_id: &str, until: Instant) {
        *self.0.lock().expect("waiting poisoned") = Some((message_id.to_string(), until));
    }

    pub fn get(&self) -> Option<(String, Instant)> {
        self.0.lock().expect("waiting poisoned").clone()
    }
}

/// A round troupe started and the client has not finished.
struct Pending {
    tool: String,
    args: u64,
    asked: Asked,
    at: Instant,
}

/// The rounds troupe started and clients have not finished, for every MCP session of one
/// server (a stateless client's retry may come on another).
#[derive(Default)]
pub struct Rounds {
    pending: Mutex<HashMap<String, Pending>>,
    /// Keyed per server, so a client cannot make two calls' arguments collide on purpose.
    hasher: RandomState,
}

impl Rounds {
    fn digest(&self, args: Option<&JsonObject>) -> u64 {
        let text = args
            .map(|a| serde_json::Value::Object(a.clone()).to_string())
            .unwrap_or_default();
        self.hasher.hash_one(text)
    }

    /// Starts a round: the `input_required` answer to give the client.
    pub fn ask(
        &self,
        tool: &str,
        args: Option<&JsonObject>,
        needs: Needs,
        question: &str,
    ) -> InputRequiredResult {
        let handle = self.remember(tool, args, Asked::Inputs(needs));
        InputRequiredResult::new(Some(requests(needs, question)), Some(handle))
    }

    /// Starts a round that asks the person about a permission request.
    pub fn ask_permission(
        &self,
        tool: &str,
        args: Option<&JsonObject>,
        asked: Asked,
        question: &str,
    ) -> InputRequiredResult {
        let handle = self.remember(tool, args, asked);
        let schema =
            rmcp::model::ElicitationSchema::from_type::<super::permissions::PermissionAnswer>()
                .expect("the permission form has a schema");
        let r = serde_json::from_value::<InputRequest>(json!({
            "method": "elicitation/create",
            "params": { "mode": "form", "message": question, "requestedSchema": schema },
        }))
        .expect("elicitation/create is an input request");
        let mut requests = InputRequests::new();
        requests.insert(PERMISSION.into(), r);
        InputRequiredResult::new(Some(requests), Some(handle))
    }

    /// Starts a round that asks the person about an instance's call that needs their approval.
    pub fn ask_approval(
        &self,
        tool: &str,
        args: Option<&JsonObject>,
        asked: Asked,
        question: &str,
    ) -> InputRequiredResult {
        let handle = self.remember(tool, args, asked);
        let needs = Needs {
            roots: false,
            approval: true,
        };
        InputRequiredResult::new(Some(requests(needs, question)), Some(handle))
    }

    fn remember(&self, tool: &str, args: Option<&JsonObject>, asked: Asked) -> String {
        let handle = format!("round-{}", uuid::Uuid::new_v4().simple());
        let mut pending = self.pending.lock().expect("rounds poisoned");
        pending.retain(|_, p| p.at.elapsed() < LIFE);
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(
            handle.clone(),
            Pending {
                tool: tool.to_string(),
                args: self.digest(args),
                asked,
                at: Instant::now(),
            },
        );
        handle
    }

    /// Ends a round: what was asked, if `state` is a live handle troupe gave for this very call
    /// (the same tool and arguments). Each handle is good once.
    pub fn finish(&self, state: &str, tool: &str, args: Option<&JsonObject>) -> Option<Asked> {
        let mut pending = self.pending.lock().expect("rounds poisoned");
        let p = pending.remove(state)?;
        (p.tool == tool && p.args == self.digest(args) && p.at.elapsed() < LIFE).then_some(p.asked)
    }
}

/// The person's answer to a permission form: Some(allow?), or None when they gave none
/// (the request then waits for another decider).
pub fn answered_permission(responses: &InputResponses) -> Option<bool> {
    let answer: ElicitResult = serde_json::from_value(responses.get(PERMISSION)?.clone()).ok()?;
    match answer.action {
        ElicitationAction::Accept => answer
            .content
            .as_ref()
            .and_then(|c| c.get("allow"))
            .and_then(|a| a.as_bool())
            .or(Some(false)),
        ElicitationAction::Decline => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: serde_json::Value) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_spawns_without_a_directory_want_roots() {
        assert!(wants_roots("spawn_claude", None));
        assert!(wants_roots(
            "spawn_claude",
            Some(&obj(json!({ "role": "tester" })))
        ));
        assert!(wants_roots(
            "spawn_codex",
            Some(&obj(json!({ "project_dir": " " })))
        ));
        assert!(!wants_roots(
            "spawn_claude",
            Some(&obj(json!({ "project_dir": "/w" })))
        ));
        assert!(!wants_roots("send_to_instance", None));
        let many = obj(json!({ "instances": [{ "project_dir": "/w" }, { "role": "x" }] }));
        assert!(wants_roots("spawn_multiple_instances", Some(&many)));
        let placed = obj(json!({ "instances": [{ "project_dir": "/w" }] }));
        assert!(!wants_roots("spawn_multiple_instances", Some(&placed)));
    }

    #[test]
    fn capabilities_say_what_can_be_asked() {
        let caps: ClientCapabilities =
            serde_json::from_value(json!({ "roots": {}, "elicitation": {} })).unwrap();
        assert_eq!(
            can_answer(&caps),
            Needs {
                roots: true,
                approval: true
            }
        );
        let url_only: ClientCapabilities =
            serde_json::from_value(json!({ "elicitation": { "url": {} } })).unwrap();
        assert_eq!(can_answer(&url_only), Needs::default());
    }

    #[test]
    fn the_requests_are_what_the_protocol_names() {
        let r = requests(
            Needs {
                roots: true,
                approval: true,
            },
            "troupe: allow spawn_claude?",
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v[ROOTS]["method"], "roots/list");
        assert_eq!(v[APPROVAL]["method"], "elicitation/create");
        assert_eq!(
            v[APPROVAL]["params"]["message"],
            "troupe: allow spawn_claude?"
        );
        assert_eq!(
            v[APPROVAL]["params"]["requestedSchema"]["properties"]["approve"]["type"],
            "boolean"
        );
    }

    #[test]
    fn answers_are_read_and_bad_ones_refuse() {
        let mut r = InputResponses::new();
        r.insert(
            ROOTS.into(),
            json!({ "roots": [{ "uri": "file:///home/me/my%20app" }] }),
        );
        r.insert(
            APPROVAL.into(),
            json!({ "action": "accept", "content": { "approve": true } }),
        );
        assert_eq!(answered_dir(&r).as_deref(), Some("/home/me/my app"));
        assert_eq!(answered_approval(&r), Ok(()));
        r.insert(
            APPROVAL.into(),
            json!({ "action": "accept", "content": { "approve": false } }),
        );
        assert_eq!(answered_approval(&r), Err("did not approve"));
        r.insert(APPROVAL.into(), json!({ "action": "decline" }));
        assert_eq!(answered_approval(&r), Err("declined"));
        r.insert(APPROVAL.into(), json!("yes"));
        assert_eq!(answered_approval(&r), Err("gave no answer to"));
        assert_eq!(
            answered_approval(&InputResponses::new()),
            Err("gave no answer to")
        );
        assert_eq!(answered_dir(&InputResponses::new()), None);
    }

    #[test]
    fn a_permission_answer_allows_denies_or_leaves_it_open() {
        let mut r = InputResponses::new();
        assert_eq!(answered_permission(&r), None);
        r.insert(
            PERMISSION.into(),
            json!({ "action": "accept", "content": { "allow": true } }),
        );
        assert_eq!(answered_permission(&r), Some(true));
        r.insert(
            PERMISSION.into(),
            json!({ "action": "accept", "content": {} }),
        );
        assert_eq!(
            answered_permission(&r),
            Some(false),
            "the box left unticked"
        );
        r.insert(PERMISSION.into(), json!({ "action": "decline" }));
        assert_eq!(answered_permission(&r), Some(false));
        r.insert(PERMISSION.into(), json!({ "action": "cancel" }));
        assert_eq!(answered_permission(&r), None);
        let asked = Rounds::default().ask_permission(
            "get_message",
            None,
            Asked::Permission {
                instance_id: "i".into(),
                request_id: "perm-1".into(),
                message_id: "m".into(),
                until: Instant::now(),
            },
            "troupe: i asks to use Bash: ls. Allow it?",
        );
        let v = serde_json::to_value(&asked).unwrap();
        assert_eq!(v["resultType"], "input_required");
        assert_eq!(
            v["inputRequests"][PERMISSION]["params"]["requestedSchema"]["properties"]["allow"]["type"],
            "boolean"
        );
    }

    #[test]
    fn a_handle_is_good_once_and_only_for_its_call() {
        let rounds = Rounds::default();
        let args = obj(json!({ "role": "tester" }));
        let needs = Needs {
            roots: true,
            approval: false,
        };
        let asked = rounds.ask("spawn_claude", Some(&args), needs, "q");
        let handle = asked.request_state.clone().unwrap();
        let other = obj(json!({ "role": "architect" }));
        assert_eq!(
            rounds.finish(&handle, "spawn_claude", Some(&other)),
            None,
            "other arguments"
        );
        let asked = rounds.ask("spawn_claude", Some(&args), needs, "q");
        let handle = asked.request_state.clone().unwrap();
        assert_eq!(
            rounds.finish(&handle, "spawn_codex", Some(&args)),
            None,
            "another tool"
        );
        let asked = rounds.ask("spawn_claude", Some(&args), needs, "q");
        let handle = asked.request_state.clone().unwrap();
        assert_eq!(
            rounds.finish(&handle, "spawn_claude", Some(&args)),
            Some(Asked::Inputs(needs))
        );
        assert_eq!(
            rounds.finish(&handle, "spawn_claude", Some(&args)),
            None,
            "used"
        );
        assert_eq!(
            rounds.finish("round-made-up", "spawn_claude", Some(&args)),
            None
        );
    }
}
