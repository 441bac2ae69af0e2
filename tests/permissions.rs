//! Permission requests routed to whoever decides, with the real Claude Code in its prompting
//! permission mode against the fake model: the instance waits (waiting_permission, the
//! command in its state), its parent sees the request, respond_to_permission allows or denies,
//! and the turn finishes either way; a rule decides without asking anyone.

mod support;

use serde_json::{Value, json};
use support::asking::{WAIT, answered, as_instance, send, status, waiting_request};
use support::{Harness, McpClient};

fn bash(command: &str) -> String {
    format!(
        "CALL_TOOL Bash {}",
        json!({ "command": command, "description": "make a file" })
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permission_request_waits_for_its_parent_and_is_allowed_or_denied() {
    let h = Harness::start().await;
    let lead = h
        .spawn(json!({ "role": "architect", "name": "lead", "model": "haiku" }))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let kid = h
        .spawn(json!({
            "role": "developer", "name": "careful", "model": "haiku",
            "parent_instance_id": lead, "permission_mode": "default",
            "project_dir": workdir.display().to_string(),
        }))
        .await;
    assert_eq!(status(&h, &kid).await["permission_mode"], "default");
    let lead_mcp = as_instance(&h, &lead).await;
    let kid_mcp = as_instance(&h, &kid).await;

    // Allowed by the parent: the command runs and the turn finishes.
    let made = workdir.join("allowed.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", made.display()))).await;
    let request = waiting_request(&h, &kid, "touch").await;
    assert!(!made.exists(), "nothing runs before a decision");
    let pending = lead_mcp.call_tool("get_pending_replies", json!({})).await;
    assert!(!pending.is_error, "{}", pending.text);
    let asks = &pending.structured["permission_requests"];
    assert_eq!(asks[0]["request_id"], request.as_str(), "{}", pending.text);
    assert_eq!(asks[0]["tool_name"], "Bash");
    assert!(
        asks[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Bash: touch")
    );
    // The asking instance may not decide for itself.
    let own = kid_mcp
        .call_tool(
            "respond_to_permission",
            json!({ "instance_id": kid, "request_id": request, "decision": "allow" }),
        )
        .await;
    assert!(own.is_error && own.text.contains("its own"), "{}", own.text);
    let r = lead_mcp
        .call_tool(
            "respond_to_permission",
            json!({ "instance_id": kid, "request_id": request, "decision": "allow" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["state"], "allowed");
    assert_eq!(r.structured["decided_by"], lead.as_str());
    answered(&h, &m).await;
    assert!(made.exists(), "the allowed command ran");
    let again = lead_mcp
        .call_tool(
            "respond_to_permission",
            json!({ "instance_id": kid, "request_id": request, "decision": "deny" }),
        )
        .await;
    assert!(
        again.is_error && again.text.contains("already allowed"),
        "{}",
        again.text
    );

    // Denied by the person, with a reason: nothing runs and the turn still finishes.
    let refused = workdir.join("denied.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", refused.display()))).await;
    let request = waiting_request(&h, &kid, "denied.txt").await;
    let r = h
        .call(
            "respond_to_permission",
            json!({
                "instance_id": kid, "request_id": request, "decision": "deny",
                "message": "not in this directory"
            }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["decided_by"], "person");
    let done = answered(&h, &m).await;
    assert!(!refused.exists(), "the denied command did not run");
    assert!(
        done["response"]
            .as_str()
            .unwrap_or_default()
            .contains("not in this directory"),
        "the model was told why: {done}"
    );
    assert_eq!(status(&h, &kid).await["state"], "idle");

    // Each decision and who made it is audited.
    let decided = troupe::db::audit::of_kind(h.pool(), "permission.decided")
        .await
        .unwrap();
    let by: Vec<String> = decided
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.detail).unwrap()["by"].to_string())
        .collect();
    assert_eq!(by, [format!("{lead:?}"), "\"person\"".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_decides_without_asking_anyone() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let kid = h
        .spawn(json!({
            "role": "developer", "name": "ruled", "model": "haiku",
            "permission_mode": "default",
            "permission_rules": { "allow": ["Bash(touch *)"], "deny": ["Bash(touch *forbidden*)"] },
            "project_dir": workdir.display().to_string(),
        }))
        .await;
    let allowed = workdir.join("by-rule.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", allowed.display()))).await;
    answered(&h, &m).await;
    assert!(allowed.exists(), "the rule allowed it");
    let forbidden = workdir.join("forbidden.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", forbidden.display()))).await;
    answered(&h, &m).await;
    assert!(!forbidden.exists(), "the deny rule won");

    let pending = h.call("get_pending_permissions", json!({})).await;
    assert_eq!(
        pending.structured["requests"],
        json!([]),
        "nobody was asked"
    );
    let decided = troupe::db::audit::of_kind(h.pool(), "permission.decided")
        .await
        .unwrap();
    let by: Vec<Value> = decided
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.detail).unwrap())
        .collect();
    assert_eq!(by.len(), 2, "{by:?}");
    assert_eq!(by[0]["by"], "rule Bash(touch *)");
    assert_eq!(by[0]["decision"], "allow");
    assert_eq!(by[1]["by"], "rule Bash(touch *forbidden*)");
    assert_eq!(by[1]["decision"], "deny");

    // A rule that cannot match anything is refused when it is set.
    let bad = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "permission_rules": { "allow": ["Bash(npm test*"] } }),
        )
        .await;
    assert!(
        bad.is_error && bad.text.contains("Tool(pattern)"),
        "{}",
        bad.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_persons_client_is_asked_when_it_can_answer_at_once() {
    let h = Harness::start().await;
    let person = McpClient::declaring(h.server(), json!({ "elicitation": { "form": {} } })).await;
    let mut heard = person.listen().await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let kid = h
        .spawn(json!({
            "role": "developer", "model": "haiku", "permission_mode": "default",
            "project_dir": workdir.display().to_string(),
        }))
        .await;
    let made = workdir.join("asked.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", made.display()))).await;
    // The question arrives on the session's own stream, next to the notification.
    let (mut noticed, mut question) = (false, None);
    while question.is_none() || !noticed {
        let msg = tokio::time::timeout(WAIT, heard.recv())
            .await
            .expect("the person hears of it")
            .expect("the stream goes on");
        match msg["method"].as_str() {
            Some("elicitation/create") => question = Some(msg),
            Some("notifications/message") if msg["params"]["data"]["kind"] == "permission" => {
                let text = msg["params"]["data"]["text"].as_str().unwrap();
                assert!(text.contains("respond_to_permission"), "{text}");
                noticed = true;
            }
            _ => {}
        }
    }
    let question = question.unwrap();
    assert!(
        question["params"]["message"]
            .as_str()
            .unwrap()
            .contains("Bash: touch"),
        "{question}"
    );
    person
        .reply(
            &question["id"],
            json!({ "action": "accept", "content": { "allow": true } }),
        )
        .await;
    answered(&h, &m).await;
    assert!(made.exists(), "allowed from the person's client");
}

fn troupe(h: &Harness, args: &[&str]) -> (bool, String) {
    support::process::troupe_cli(&h.server().url(), h.server().token(), args)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_lists_allows_and_denies() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let kid = h
        .spawn(json!({
            "role": "developer", "name": "shell", "model": "haiku", "permission_mode": "default",
            "project_dir": workdir.display().to_string(),
        }))
        .await;
    let (ok, out) = tokio::task::block_in_place(|| troupe(&h, &["permissions"]));
    assert!(
        ok && out.contains("no permission requests are waiting"),
        "{out}"
    );

    let made = workdir.join("from-the-shell.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", made.display()))).await;
    let request = waiting_request(&h, &kid, "from-the-shell").await;
    let (ok, out) = tokio::task::block_in_place(|| troupe(&h, &["permissions"]));
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&request))
        .unwrap_or_else(|| panic!("{request} listed: {out}"));
    assert!(row.contains(&kid) && row.contains("Bash: touch"), "{row}");
    let (ok, out) = tokio::task::block_in_place(|| troupe(&h, &["allow", &request]));
    assert!(ok && out.contains("allowed"), "{out}");
    answered(&h, &m).await;
    assert!(made.exists());

    let refused = workdir.join("refused-from-the-shell.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", refused.display()))).await;
    let request = waiting_request(&h, &kid, "refused-from-the-shell").await;
    let (ok, out) = tokio::task::block_in_place(|| {
        troupe(&h, &["deny", &request, "-m", "use the build directory"])
    });
    assert!(ok && out.contains("denied"), "{out}");
    let done = answered(&h, &m).await;
    assert!(!refused.exists());
    assert!(
        done["response"]
            .as_str()
            .unwrap_or_default()
            .contains("use the build directory")
    );

    let (ok, out) = tokio::task::block_in_place(|| troupe(&h, &["allow", &request]));
    assert!(
        !ok && out.contains("troupe permissions"),
        "decided already: {out}"
    );
}
