//! Permission requests of a Codex instance in a prompting mode, with the real Codex CLI
//! against the fake model: the model asks to run a command outside the sandbox, Codex's
//! PermissionRequest hook (`troupe hook`) holds it at troupe, the instance waits
//! (waiting_permission, the command in its state), respond_to_permission allows or denies and
//! the turn finishes either way; a rule decides without asking anyone.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::asking::{WAIT, answered, send, status, waiting_request};
use support::{Harness, eventually};

/// What a model sends to run `command` outside Codex's sandbox: Codex asks first.
fn escalated(command: &str) -> String {
    format!(
        "CALL_TOOL exec_command {}",
        json!({
            "cmd": command,
            "sandbox_permissions": "require_escalated",
            "justification": "Do you want to make this file?"
        })
    )
}

async fn spawn_careful(h: &Harness, workdir: &std::path::Path, rules: Value) -> String {
    h.spawn_codex(json!({
        "role": "developer", "name": "careful", "permission_mode": "default",
        "permission_rules": rules, "project_dir": workdir.display().to_string(),
    }))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_codex_permission_request_waits_and_is_allowed_or_denied() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let id = spawn_careful(&h, &workdir, json!({})).await;
    assert_eq!(status(&h, &id).await["permission_mode"], "default");

    // Allowed by the person: the command runs outside the sandbox and the turn finishes.
    let made = workdir.join("allowed.txt");
    let m = send(&h, &id, &escalated(&format!("touch {}", made.display()))).await;
    let request = waiting_request(&h, &id, "touch").await;
    assert!(!made.exists(), "nothing runs before a decision");
    let pending = h.call("get_pending_permissions", json!({})).await;
    assert!(!pending.is_error, "{}", pending.text);
    let ask = &pending.structured["requests"][0];
    assert_eq!(ask["request_id"], request.as_str(), "{}", pending.text);
    assert_eq!(ask["tool_name"], "Bash");
    assert_eq!(
        ask["summary"],
        format!("Bash: touch {}", made.display()),
        "{}",
        pending.text
    );
    let r = h
        .call(
            "respond_to_permission",
            json!({ "instance_id": id, "request_id": request, "decision": "allow" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["state"], "allowed");
    answered(&h, &m).await;
    assert!(made.exists(), "the allowed command ran");

    // Denied, with a reason: nothing runs, the model reads why, the turn still finishes.
    let refused = workdir.join("denied.txt");
    let m = send(&h, &id, &escalated(&format!("touch {}", refused.display()))).await;
    let request = waiting_request(&h, &id, "denied.txt").await;
    let r = h
        .call(
            "respond_to_permission",
            json!({
                "instance_id": id, "request_id": request, "decision": "deny",
                "message": "not in this directory"
            }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["state"], "denied");
    let done = answered(&h, &m).await;
    assert!(!refused.exists(), "the denied command did not run");
    assert!(
        done["response"]
            .as_str()
            .unwrap_or_default()
            .contains("not in this directory"),
        "the model was told why: {done}"
    );
    eventually("the instance idle again", WAIT, || async {
        (status(&h, &id).await["state"] == "idle").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_decides_a_codex_request_without_asking_anyone() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let id = spawn_careful(
        &h,
        &workdir,
        json!({ "allow": ["Bash(touch *)"], "deny": ["Bash(touch *forbidden*)"] }),
    )
    .await;
    let allowed = workdir.join("by-rule.txt");
    let m = send(&h, &id, &escalated(&format!("touch {}", allowed.display()))).await;
    answered(&h, &m).await;
    assert!(allowed.exists(), "the rule allowed it");
    let forbidden = workdir.join("forbidden.txt");
    let m = send(
        &h,
        &id,
        &escalated(&format!("touch {}", forbidden.display())),
    )
    .await;
    let done = answered(&h, &m).await;
    assert!(!forbidden.exists(), "the deny rule won");
    assert!(
        done["response"]
            .as_str()
            .unwrap_or_default()
            .contains("Bash(touch *forbidden*)"),
        "the model was told which rule: {done}"
    );
    let pending = h.call("get_pending_permissions", json!({})).await;
    assert_eq!(
        pending.structured["requests"],
        json!([]),
        "nobody was asked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecided_codex_request_falls_back_to_codexs_own_dialog() {
    let h = Harness::start_with(|c| c.permission_wait = Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let id = spawn_careful(&h, &workdir, json!({})).await;
    let made = workdir.join("undecided.txt");
    send(&h, &id, &escalated(&format!("touch {}", made.display()))).await;
    let request = waiting_request(&h, &id, "undecided.txt").await;
    // Past the wait troupe answers nothing, and Codex asks at its pane.
    let inst = troupe::db::instances::Instance::find(h.pool(), &id)
        .await
        .unwrap()
        .unwrap();
    eventually("Codex's approval dialog", WAIT, || async {
        h.capture(&inst.tmux_session)
            .contains("Would you like to run the following command")
            .then_some(())
    })
    .await;
    assert_eq!(status(&h, &id).await["state"], "waiting_permission");
    let late = h
        .call(
            "respond_to_permission",
            json!({ "instance_id": id, "request_id": request, "decision": "allow" }),
        )
        .await;
    assert!(
        late.is_error && late.text.contains("expired"),
        "{}",
        late.text
    );
    assert!(!made.exists(), "nobody allowed it");
    // Someone answers at the pane instead: the command runs, and the state follows.
    let pressed = std::process::Command::new("tmux")
        .args(["-L", &h.socket, "send-keys", "-t"])
        .arg(format!("={}:", inst.tmux_session))
        .arg("y")
        .status()
        .unwrap();
    assert!(pressed.success());
    eventually("the command allowed at the pane", WAIT, || async {
        made.exists().then_some(())
    })
    .await;
    eventually("the instance idle after its turn", WAIT, || async {
        (status(&h, &id).await["state"] == "idle").then_some(())
    })
    .await;
}

/// A Codex instance in a read-only sandbox gets no helper that may do more than it: its
/// spawn of a skip-mode Claude is refused, and a spawn that names no mode gets `plan`. Both
/// asked by the real Codex CLI through its own MCP client.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_codex_gets_no_helper_that_writes() {
    let h = Harness::start().await;
    let parent = h
        .spawn_codex(json!({ "role": "architect", "name": "reader", "sandbox_mode": "read-only" }))
        .await;
    let ask = |args: Value| {
        let h = &h;
        let parent = parent.clone();
        async move {
            let r = h
                .call(
                    "send_to_instance",
                    json!({
                        "instance_id": parent,
                        "message": format!("CALL_TOOL mcp__troupe__spawn_claude {args}"),
                        "timeout_seconds": 120
                    }),
                )
                .await;
            assert!(!r.is_error, "{}", r.text);
            assert_eq!(r.structured["status"], "answered", "{}", r.structured);
            r.structured["response"].as_str().unwrap().to_string()
        }
    };
    let refused =
        ask(json!({ "role": "tester", "name": "writer", "permission_mode": "skip" })).await;
    assert!(
        refused.contains("more than its parent"),
        "the refusal reached the model: {refused}"
    );
    let answer = ask(json!({ "role": "tester", "name": "kid" })).await;
    assert!(answer.contains("kid-"), "{answer}");
    let kids = troupe::db::instances::Instance::children(h.pool(), &parent, false)
        .await
        .unwrap();
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(kids[0].permission_mode, "plan", "{:?}", kids[0]);
}
