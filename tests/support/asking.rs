//! Helpers for tests of permission requests: an instance's status, a message sent without
//! waiting, the request it stops at, and the answer once the turn is over.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Harness, McpClient, eventually};

pub const WAIT: Duration = Duration::from_secs(60);

/// The instance's own token, as its CLI presents it.
pub async fn token_of(h: &Harness, id: &str) -> String {
    troupe::db::credentials::Credentials::find(h.pool(), id)
        .await
        .unwrap()
        .unwrap()
        .token
}

/// An MCP session that speaks for instance `id`, with its own token.
pub async fn as_instance(h: &Harness, id: &str) -> McpClient {
    let bearer = format!("Bearer {}", token_of(h, id).await);
    McpClient::connect(
        &format!("{}/mcp", h.server().url()),
        &[("x-troupe-instance", id), ("authorization", &bearer)],
    )
    .await
}

/// get_instance_status for one instance.
pub async fn status(h: &Harness, id: &str) -> Value {
    let r = h
        .call("get_instance_status", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    r.structured["instances"][0].clone()
}

/// Sends `message` without waiting and returns its id.
pub async fn send(h: &Harness, id: &str, message: &str) -> String {
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": message, "wait_for_response": false }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    r.structured["message_id"].as_str().unwrap().to_string()
}

/// Waits for the instance to stop at a permission request naming `command` and returns the
/// request's id, read from its state.
pub async fn waiting_request(h: &Harness, id: &str, command: &str) -> String {
    eventually("the instance waiting for permission", WAIT, || async {
        let s = status(h, id).await;
        if s["state"] != "waiting_permission" {
            return None;
        }
        let reason = s["state_reason"].as_str().unwrap_or_default().to_string();
        assert!(
            reason.contains(command),
            "the command is in the state: {reason}"
        );
        let at = reason.find("perm-")?;
        Some(
            reason[at..]
                .trim_end_matches(')')
                .split_whitespace()
                .next()?
                .to_string(),
        )
    })
    .await
}

/// The message once answered (the test fails if it ended any other way).
pub async fn answered(h: &Harness, message_id: &str) -> Value {
    let r = h
        .call(
            "get_message",
            json!({ "message_id": message_id, "wait_seconds": 60 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.text);
    r.structured
}

/// Turns on require_approval for spawn_claude and spawns `lead` as the person, with the code
/// the refusal hands them (the harness's client cannot show a form).
pub async fn lead_under_approval(h: &Harness) -> String {
    let r = h
        .call(
            "configure_orchestration",
            json!({ "require_approval": ["spawn_claude"] }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let asked = h
        .call("spawn_claude", json!({ "role": "tester", "name": "lead" }))
        .await;
    let code = person_code(&asked);
    let lead = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "lead", "approval": code }),
        )
        .await;
    assert!(!lead.is_error, "{}", lead.text);
    lead.structured["instance_id"].as_str().unwrap().to_string()
}

/// The one-time code a refusal hands the person (the harness's client shows no forms).
pub fn person_code(r: &super::ToolResult) -> String {
    r.text
        .split("\"approval\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a code for the person")
        .to_string()
}
