//! The foundation, end to end over real MCP HTTP: real Claude Code instances in tmux, answered
//! by the fake model, with every step checked in SQLite.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::{
    Harness, McpClient, eventually, fake_model::conversation_text, fake_model::last_user_text,
};
use troupe::db::instances::Instance;
use troupe::db::interrupts::Interrupt;
use troupe::db::messages::Message;
use troupe::db::output::OutputChunk;
use troupe::db::usage::UsageRecord;

/// The request the main conversation sent with `needle` as its latest user text (Claude Code
/// sends side requests, e.g. for a title, that wrap the text differently).
async fn main_request(h: &Harness, needle: &str) -> serde_json::Value {
    let needle = needle.to_string();
    h.model
        .wait_for_request(
            move |r| last_user_text(r).ends_with(&needle),
            Duration::from_secs(30),
        )
        .await
        .expect("the model received the message")
}

#[tokio::test(flavor = "multi_thread")]
async fn spawn_send_and_the_answer_is_recorded() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "developer", "name": "dev" })).await;
    assert!(id.starts_with("dev-"), "{id}");

    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(inst.state, "idle");
    assert_eq!(inst.role, "developer");
    assert_eq!(inst.model, "sonnet");
    assert!(h.tmux_has_session(&inst.tmux_session));

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "hello troupe" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["response"], "ECHO: hello troupe");
    assert_eq!(r.structured["status"], "answered");
    let request = main_request(&h, "hello troupe").await;
    assert!(
        request["system"]
            .to_string()
            .contains("You are a developer"),
        "the role's system prompt reaches the model"
    );
    // troupe's tools are in front of the model from its first request, not deferred behind
    // a tool search (2.1.328 defers MCP tools unless the server is marked alwaysLoad).
    let tools: Vec<String> = request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["defer_loading"] != true)
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    for tool in ["mcp__troupe__reply_to_caller", "mcp__troupe__spawn_claude"] {
        assert!(tools.iter().any(|t| t == tool), "{tool} not in {tools:?}");
    }
    // ... through a private file: nothing secret sits on the command line, which every local
    // user can read.
    let out = std::process::Command::new("tmux")
        .args(["-L", &h.socket, "display-message", "-p", "-t"])
        .arg(format!("={}:", inst.tmux_session))
        .arg("#{pane_pid}")
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
    assert!(argv.contains("--append-system-prompt-file"), "{argv}");
    assert!(!argv.contains("You are a developer"), "{argv}");
    let token = troupe::db::credentials::Credentials::find(h.pool(), &id)
        .await
        .unwrap()
        .unwrap()
        .token;
    assert!(!argv.contains(&token), "{argv}");
    assert!(!argv.contains(h.server().token()), "{argv}");

    let message_id = r.structured["message_id"].as_str().unwrap();
    let m = Message::find(h.pool(), message_id).await.unwrap().unwrap();
    assert_eq!(m.state, "answered");
    assert_eq!(m.response.as_deref(), Some("ECHO: hello troupe"));
    assert!(
        m.prompt_id.is_some(),
        "the CLI's prompt id ties the turn to the message"
    );
    // The Stop hook answers at once; output and usage come from the transcript, which
    // may land just after the answer.
    eventually(
        "the prompt and reply as output chunks of the message",
        Duration::from_secs(10),
        || async {
            let n = OutputChunk::count_for_message(h.pool(), message_id)
                .await
                .unwrap();
            (n >= 2).then_some(())
        },
    )
    .await;
    let usage = eventually(
        "a usage row for the model call",
        Duration::from_secs(10),
        || async {
            let rows = UsageRecord::for_instance(h.pool(), &id).await.unwrap();
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await;
    assert!(
        usage
            .iter()
            .all(|u| u.input_tokens > 0 && u.output_tokens > 0)
    );
    assert!(
        usage.iter().all(|u| u.cost_micros.is_some_and(|c| c > 0)),
        "{usage:?}"
    );

    let out = h
        .call("get_instance_output", json!({ "instance_id": id }))
        .await;
    assert!(
        out.structured["output"]
            .as_str()
            .unwrap()
            .contains("ECHO: hello troupe")
    );
    let status = h
        .call("get_instance_status", json!({ "instance_id": id }))
        .await;
    let s = &status.structured["instances"][0];
    assert_eq!(s["state"], "idle");
    assert!(s["usage"]["output_tokens"].as_i64().unwrap() > 0);
    let list = h.call("list_instances", json!({})).await;
    assert_eq!(list.structured["count"], 1);
}

/// With the data directory under HOME (serve's default), troupe has the CLI trust the
/// workspaces folder once at start; an instance in a new default workspace then starts with no
/// trust dialog. Outside HOME (every other test here) each instance answers the dialog.
#[tokio::test(flavor = "multi_thread")]
async fn the_workspaces_folder_is_trusted_once_and_instances_there_skip_the_dialog() {
    let h = Harness::start_at_home().await;
    let root = h.data_dir.join("workspaces").canonicalize().unwrap();
    let state_file = h.home.join(".claude.json");
    let trusted = || {
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap_or_default())
                .unwrap_or_default();
        state["projects"][root.display().to_string()]["hasTrustDialogAccepted"] == true
    };
    support::eventually(
        "the workspaces folder trusted in the CLI's own state",
        Duration::from_secs(30),
        || async {
            let audited = troupe::db::audit::of_kind(h.pool(), "workspaces.trust_accepted")
                .await
                .unwrap();
            (trusted() && !audited.is_empty()).then_some(audited)
        },
    )
    .await;
    assert!(
        !h.tmux_has_session("troupe-trust"),
        "the CLI that answered the dialog is gone"
    );

    let id = h.spawn(json!({ "role": "tester" })).await;
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert!(
        Path::new(&inst.workdir).starts_with(&root),
        "{} is a default workspace",
        inst.workdir
    );
    let audit = troupe::db::audit::for_instance(h.pool(), &id)
        .await
        .unwrap();
    assert!(
        !audit.iter().any(|e| e.kind == "instance.trust_accepted"),
        "no dialog to answer in a workspace under the trusted folder: {audit:?}"
    );
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "hello from a trusted folder" }),
        )
        .await;
    assert_eq!(
        r.structured["response"], "ECHO: hello from a trusted folder",
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_line_message_reaches_the_model_as_three_lines() {
    let h = Harness::start().await;
    let project = h.dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let id = h
        .spawn(json!({ "role": "tester", "project_dir": project.display().to_string() }))
        .await;
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(
        inst.workdir,
        project.canonicalize().unwrap().display().to_string()
    );
    let audit = troupe::db::audit::for_instance(h.pool(), &id)
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.kind == "instance.trust_accepted"),
        "troupe accepted the folder-trust dialog for the directory it was given: {audit:?}"
    );
    let text = "line one\nline two\nline three";
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": text }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    let transcript = std::fs::read_to_string(inst.transcript_path.unwrap()).unwrap_or_default();
    assert_eq!(
        r.structured["response"],
        format!("ECHO: {text}"),
        "{}\n{transcript}",
        r.structured
    );
    main_request(&h, text).await;
}

/// Message text is typed into a TUI: commands, shell escapes and a paste breakout must reach
/// the model as text, and leave the instance working.
#[tokio::test(flavor = "multi_thread")]
async fn commands_and_escapes_in_a_message_arrive_as_text() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    // 2.1.197 reads a message with a space before its `/` as text; later versions run it as
    // a command all the same, so troupe puts a word before it there.
    let slash = if support::clis::claude_is_oldest() {
        ""
    } else {
        troupe::agents::claude::SLASH_PREFIX
    };
    for (text, model_sees) in [
        ("/clear", format!("{slash}/clear")),
        ("/help", format!("{slash}/help")),
        ("!echo shell", "!echo shell".into()),
        ("# remember this", "# remember this".into()),
        ("/exit", format!("{slash}/exit")),
        (
            "ECHO one\u{1b}[201~\rECHO two\r",
            "ECHO one[201~\nECHO two".into(),
        ),
    ] {
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": text, "timeout_seconds": 60 }),
            )
            .await;
        assert!(!r.is_error, "{text:?}: {}", r.text);
        assert_eq!(
            r.structured["status"], "answered",
            "{text:?}: {}",
            r.structured
        );
        assert_eq!(
            r.structured["response"],
            format!("ECHO: {model_sees}"),
            "{text:?}"
        );
    }
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(inst.state, "idle", "{}", inst.state_reason);
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "\u{1b}\r\u{7f}" }),
        )
        .await;
    assert!(
        r.is_error,
        "a message of control characters alone is refused"
    );
    assert!(r.text.contains("message is empty"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_stops_the_turn_and_keeps_the_conversation() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "researcher" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "please count slowly to 40", "wait_for_response": false }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    main_request(&h, "please count slowly to 40").await;
    // Let a few numbers stream.
    tokio::time::sleep(Duration::from_millis(1600)).await;

    let r = h
        .call("interrupt_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["success"], true, "{}", r.structured);
    assert_eq!(r.structured["outcome"], "confirmed");
    assert_eq!(r.structured["message_id"], message_id.as_str());

    let rows = Interrupt::for_instance(h.pool(), &id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "confirmed");
    assert!(rows[0].confirmed_at.is_some());
    let m = Message::find(h.pool(), &message_id).await.unwrap().unwrap();
    assert_eq!(m.state, "interrupted");
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(inst.state, "idle");

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "what number did you reach" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let followup = main_request(&h, "what number did you reach").await;
    let conversation = conversation_text(&followup);
    assert!(
        conversation.contains("please count slowly to 40"),
        "the interrupted turn is still in the conversation"
    );
    assert!(conversation.contains("[Request interrupted by user]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_ends_the_tmux_session_and_records_it() {
    let h = Harness::start().await;
    let id = h.spawn(json!({})).await;
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert!(h.tmux_has_session(&inst.tmux_session));

    let r = h
        .call("terminate_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["success"], true);
    assert!(!h.tmux_has_session(&inst.tmux_session));
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(inst.state, "terminated");
    assert!(inst.terminated_at.is_some());

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "are you there" }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("terminated"), "{}", r.text);
    let r = h
        .call("terminate_instance", json!({ "instance_id": id }))
        .await;
    assert!(r.is_error, "terminating twice says so");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error() {
    let h = Harness::start().await;

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": "ghost-0000", "message": "hi" }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("no instance ghost-0000"), "{}", r.text);

    let r = h
        .call("spawn_claude", json!({ "role": "juggler; rm -rf /" }))
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("is not usable"), "{}", r.text);

    let r = h
        .call("spawn_claude", json!({ "name": "bad name; rm -rf" }))
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("not usable"), "{}", r.text);

    let r = h
        .call("spawn_claude", json!({ "project_dir": "relative/dir" }))
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("absolute"), "{}", r.text);

    let r = h.call("spawn_claude", json!({ "model": "gpt-5" })).await;
    assert!(r.is_error);
    assert!(r.text.contains("unknown claude model"), "{}", r.text);
    assert!(r.text.contains("spawn_codex runs it"), "{}", r.text);

    let r = h
        .call(
            "get_instance_status",
            json!({ "instance_id": "ghost-0000" }),
        )
        .await;
    assert!(r.is_error);

    // No instance was left behind by the refused spawns.
    assert!(Instance::list(h.pool(), true).await.unwrap().is_empty());

    let id = h.spawn(json!({ "role": "reviewer" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "   " }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("empty"), "{}", r.text);

    // A wait that runs out says so and keeps the message id; the answer can be fetched later.
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "stall a moment", "timeout_seconds": 1 }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("within 1s"), "{}", r.text);
    let message_id = r
        .text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("msg-"))
        .map(|rest| {
            format!(
                "msg-{}",
                rest.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
            )
        })
        .expect("the error names the message");
    let r = h
        .call(
            "get_message",
            json!({ "message_id": message_id, "wait_seconds": 30 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered");
    assert_eq!(r.structured["response"], "ECHO: stall a moment");

    let _ = eventually("instance idle", Duration::from_secs(10), || async {
        let i = Instance::find(h.pool(), &id).await.unwrap().unwrap();
        (i.state == "idle").then_some(())
    })
    .await;
}

/// A CLI killed mid-turn is noticed at once (its process is watched): the running message
/// fails with the reason, a queued one waits, and resume_instance brings the conversation back
/// to answer it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cli_killed_mid_turn_is_noticed_and_resumed() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let send = |text: &'static str| {
        h.call(
            "send_to_instance",
            json!({ "instance_id": id, "message": text, "wait_for_response": false }),
        )
    };
    let first = send("please count slowly to 40").await;
    let first_id = first.structured["message_id"].as_str().unwrap().to_string();
    main_request(&h, "please count slowly to 40").await;
    let second = send("after the crash").await;
    let second_id = second.structured["message_id"]
        .as_str()
        .unwrap()
        .to_string();

    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    let out = std::process::Command::new("tmux")
        .args(["-L", &h.config().tmux_socket, "display-message", "-p", "-t"])
        .arg(format!("={}:", inst.tmux_session))
        .arg("#{pane_pid}")
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty(), "no pane pid");
    let killed = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let inst = eventually(
        "the instance to read exited",
        Duration::from_secs(10),
        || async {
            let i = Instance::find(h.pool(), &id).await.unwrap().unwrap();
            (i.state == "exited").then_some(i)
        },
    )
    .await;
    println!("kill -9 noticed after {:?}", killed.elapsed());
    assert!(
        inst.state_reason.contains("exited"),
        "{}",
        inst.state_reason
    );
    let m1 = Message::find(h.pool(), &first_id).await.unwrap().unwrap();
    assert_eq!(m1.state, "failed");
    assert!(m1.state_reason.contains("exited"), "{}", m1.state_reason);
    let m2 = Message::find(h.pool(), &second_id).await.unwrap().unwrap();
    assert_eq!(m2.state, "queued", "a queued message waits for the resume");

    let r = h
        .call("resume_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h
        .call(
            "get_message",
            json!({ "message_id": second_id, "wait_seconds": 60 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    assert_eq!(r.structured["response"], "ECHO: after the crash");
}

/// Hooks are the instance's alone. Without its token every event kind is refused (401) and
/// audited, and nothing changes; with it, a payload naming another session or another file as
/// its transcript is refused and audited, and the instance goes on following its own.
#[tokio::test(flavor = "multi_thread")]
async fn forged_hooks_are_refused() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    let session = inst.agent_session_id.clone();
    let own = inst.transcript_path.clone();
    let url = format!("{}/hooks/{id}", h.server().url());
    let http = reqwest::Client::new();
    let forged = h.dir.path().join("attacker.jsonl");
    std::fs::write(&forged, "").unwrap();
    let payloads = [
        json!({ "hook_event_name": "SessionStart", "session_id": session,
                "transcript_path": forged.display().to_string() }),
        json!({ "hook_event_name": "Stop", "session_id": session,
                "last_assistant_message": "FORGED ANSWER" }),
        json!({ "hook_event_name": "StopFailure", "session_id": session, "error": "forged" }),
        json!({ "hook_event_name": "PermissionRequest", "session_id": session,
                "tool_name": "Bash", "tool_input": {} }),
        json!({ "hook_event_name": "SessionEnd", "session_id": session }),
        json!({ "hook_event_name": "UserPromptSubmit", "session_id": session, "prompt": "x" }),
    ];
    for payload in &payloads {
        for auth in [
            None,
            Some("Bearer not-the-instance-token"),
            Some(&format!("Bearer {}", h.server().token()) as &str),
        ] {
            let mut req = http.post(&url).json(payload);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                401,
                "{} with {auth:?}",
                payload["hook_event_name"]
            );
        }
    }
    let refused = troupe::db::audit::for_instance(h.pool(), &id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "auth.refused")
        .count();
    assert_eq!(refused, payloads.len() * 3);
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(
        inst.state,
        troupe::states::InstanceState::Idle,
        "{}",
        inst.state_reason
    );

    // With the instance's token (as if its own CLI were confused): another session's payload,
    // and another file as the transcript, are refused too.
    let token = troupe::db::credentials::Credentials::find(h.pool(), &id)
        .await
        .unwrap()
        .unwrap()
        .token;
    let as_instance =
        |payload: serde_json::Value| http.post(&url).bearer_auth(&token).json(&payload).send();
    let r = as_instance(
        json!({ "hook_event_name": "Stop", "session_id": "another-session",
                                "last_assistant_message": "FORGED ANSWER" }),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = as_instance(payloads[0].clone()).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    eventually(
        "both refusals in the audit log",
        Duration::from_secs(10),
        || async {
            let n = troupe::db::audit::for_instance(h.pool(), &id)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.kind == "instance.hook_refused")
                .count();
            (n == 2).then_some(())
        },
    )
    .await;
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(inst.transcript_path, own);
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "still mine" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: still mine", "{}", r.text);
}

/// An MCP call in an instance's name needs that instance's token: the header alone, or with
/// the server's token, is refused and audited, and a spoofed reply never reaches anyone.
#[tokio::test(flavor = "multi_thread")]
async fn an_identity_without_its_token_is_refused() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let http = reqwest::Client::new();
    let url = format!("{}/mcp", h.server().url());
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "spoof", "version": "0" } }
    });
    for auth in [
        None,
        Some(h.server().token().to_string()),
        Some("nope".to_string()),
    ] {
        let mut req = http
            .post(&url)
            .header("x-troupe-instance", &id)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    let refused = troupe::db::audit::for_instance(h.pool(), &id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "auth.refused")
        .count();
    assert_eq!(refused, 3);
    // With its own token, the instance is itself: reply_to_caller works.
    let token = troupe::db::credentials::Credentials::find(h.pool(), &id)
        .await
        .unwrap()
        .unwrap()
        .token;
    let bearer = format!("Bearer {token}");
    let child = McpClient::connect(
        &url,
        &[("x-troupe-instance", &id), ("authorization", &bearer)],
    )
    .await;
    let r = child
        .call_tool("reply_to_caller", json!({ "message": "from the real one" }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h.call("get_pending_replies", json!({})).await;
    assert!(r.text.contains("from the real one"), "{}", r.text);
}

/// kill -9 of a CLI that is still starting: the spawn fails at once with what the screen
/// said, not at the startup timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_cli_killed_while_starting_fails_the_spawn_at_once() {
    let h = Harness::start().await;
    let spawn = h.call(
        "spawn_claude",
        json!({ "role": "tester", "name": "doomed" }),
    );
    let kill = async {
        let pid = eventually(
            "the starting CLI's pane",
            Duration::from_secs(10),
            || async {
                let list = Instance::list(h.pool(), true).await.unwrap();
                let inst = list.into_iter().find(|i| i.name == "doomed")?;
                let out = std::process::Command::new("tmux")
                    .args(["-L", &h.socket, "display-message", "-p", "-t"])
                    .arg(format!("={}:", inst.tmux_session))
                    .arg("#{pane_pid}")
                    .output()
                    .ok()?;
                let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
                (!pid.is_empty()).then_some(pid)
            },
        )
        .await;
        let killed = std::time::Instant::now();
        assert!(
            std::process::Command::new("kill")
                .args(["-9", &pid])
                .status()
                .unwrap()
                .success()
        );
        killed
    };
    let (r, killed) = tokio::join!(spawn, kill);
    let took = killed.elapsed();
    println!("spawn answered {took:?} after kill -9");
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("exited while starting"), "{}", r.text);
    assert!(took < Duration::from_secs(5), "{took:?}");
    let inst = Instance::list(h.pool(), true)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name == "doomed")
        .unwrap();
    assert_eq!(inst.state, "failed", "{}", inst.state_reason);
}

/// Any role name works: the presets keep their prompts, others get one built from the name.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_outside_the_presets_gets_a_prompt_of_its_own() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "Security Specialist" })).await;
    assert!(id.starts_with("security-specialist-"), "{id}");
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(
        (inst.role.as_str(), inst.model.as_str()),
        ("security specialist", "sonnet")
    );
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "check the login form" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let request = main_request(&h, "check the login form").await;
    assert!(
        request["system"]
            .to_string()
            .contains("You are the security specialist"),
        "the built prompt reaches the model"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_holds_what_the_model_reported_at_its_price() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester", "model": "haiku" })).await;
    for text in ["first call", "second call"] {
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": text }),
            )
            .await;
        assert_eq!(r.structured["status"], "answered", "{}", r.text);
        h.wait_for_transcript(&id, r.structured["message_id"].as_str().unwrap())
            .await;
    }
    let rows = UsageRecord::for_instance(h.pool(), &id).await.unwrap();
    assert!(rows.len() >= 2, "{rows:?}");
    let reported = h.model.reported();
    for row in &rows {
        let fake = reported
            .iter()
            .find(|r| r.id == row.source_id)
            .unwrap_or_else(|| panic!("{} is not a response the fake gave", row.source_id));
        assert_eq!(
            (
                row.input_tokens,
                row.output_tokens,
                row.cache_creation_tokens,
                row.cache_read_tokens
            ),
            (
                fake.input,
                fake.output,
                fake.cache_creation,
                fake.cache_read
            ),
            "{row:?}"
        );
        assert!(
            fake.cache_creation > 0 && fake.cache_read > 0,
            "every kind is counted"
        );
        // What `haiku` is, and its price per million tokens (input, output, cache write,
        // cache read), on each tested version.
        let (family, [input, output, write, read]) = if support::clis::claude_is_oldest() {
            ("claude-haiku-4", [1.0, 5.0, 1.25, 0.1])
        } else {
            ("claude-haiku-5-5", [0.1, 0.5, 0.125, 0.01])
        };
        assert!(row.model.starts_with(family), "{}", row.model);
        let price = fake.input as f64 * input
            + fake.output as f64 * output
            + fake.cache_creation as f64 * write
            + fake.cache_read as f64 * read;
        assert_eq!(row.cost_micros, Some(price.round() as i64), "{row:?}");
    }

    // A model with no price: the spawn says so, its tokens are counted, its cost is not
    // made up.
    let spawned = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "model": "claude-unpriced-1" }),
        )
        .await;
    assert!(!spawned.is_error, "{}", spawned.text);
    let warning = spawned.structured["warning"].as_str().unwrap_or_default();
    assert!(
        warning.starts_with("model claude-unpriced-1 has no price"),
        "{}",
        spawned.text
    );
    let odd = spawned.structured["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": odd, "message": "what does this cost" }),
        )
        .await;
    assert_eq!(r.structured["status"], "answered", "{}", r.text);
    h.wait_for_transcript(&odd, r.structured["message_id"].as_str().unwrap())
        .await;
    let rows = UsageRecord::for_instance(h.pool(), &odd).await.unwrap();
    assert!(
        rows.iter()
            .all(|u| u.cost_micros.is_none() && u.input_tokens > 0),
        "{rows:?}"
    );
    let status = h
        .call("get_instance_status", json!({ "instance_id": odd }))
        .await;
    let usage = &status.structured["instances"][0]["usage"];
    assert!(usage["unpriced_calls"].as_i64().unwrap() >= 1, "{usage}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_right_as_the_turn_begins_still_stops_it() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "please count slowly to 40", "wait_for_response": false }),
        )
        .await;
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    main_request(&h, "please count slowly to 40").await;
    let r = h
        .call("interrupt_instance", json!({ "instance_id": id }))
        .await;
    assert_eq!(r.structured["outcome"], "confirmed", "{}", r.text);
    let m = Message::find(h.pool(), &message_id).await.unwrap().unwrap();
    assert_eq!(m.state, "interrupted");
    // Claude Code took the message back into its input box; troupe emptied it, so the next
    // message arrives on its own.
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "a fresh start" }),
        )
        .await;
    assert_eq!(
        r.structured["response"], "ECHO: a fresh start",
        "{}",
        r.text
    );
}

/// `@path` in a message is text, never a file mention the CLI reads unasked: the file's
/// contents reach no model request, and the message after one that ends in `@path` arrives
/// as it was sent.
#[tokio::test(flavor = "multi_thread")]
async fn an_at_path_in_a_message_is_text_and_reads_no_file() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "SECRET-CONTENT-7c1f\n").unwrap();
    let id = h
        .spawn(json!({ "role": "tester", "permission_mode": "default" }))
        .await;
    for text in [
        format!("@{} summarise", secret.display()),
        format!("look at @{}", secret.display()),
        "next message zero".to_string(),
    ] {
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": text, "timeout_seconds": 60 }),
            )
            .await;
        assert!(!r.is_error, "{text:?}: {}", r.text);
        assert_eq!(
            r.structured["status"], "answered",
            "{text:?}: {}",
            r.structured
        );
        // The model reads each word that starts with `@` in backticks.
        let response = r.structured["response"].as_str().unwrap().replace('`', "");
        assert!(
            response.ends_with(&text),
            "{text:?} arrived as {response:?}"
        );
    }
    let requests = h.model.requests();
    let leaked = requests
        .iter()
        .find(|r| r.to_string().contains("SECRET-CONTENT-7c1f"));
    assert!(
        leaked.is_none(),
        "the file was read into a model request: {}",
        leaked
            .map(|r| r["messages"].to_string())
            .unwrap_or_default()
    );
}
