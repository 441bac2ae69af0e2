//! Codex instances end to end: the real Codex CLI in tmux, against the fake model's OpenAI
//! Responses API, driven through troupe's MCP tools exactly as Claude instances are.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_model::responses_user_text;
use support::{Harness, eventually};
use troupe::db::instances::Instance;
use troupe::db::interrupts::Interrupt;
use troupe::db::messages::Message;
use troupe::db::usage::UsageRecord;

/// The Responses request whose last user text ends with `needle`.
async fn codex_request(h: &Harness, needle: &str) -> Value {
    let needle = needle.to_string();
    h.model
        .wait_for_request(
            move |r| r["input"].is_array() && responses_user_text(r).ends_with(&needle),
            Duration::from_secs(30),
        )
        .await
        .expect("the model received the message")
}

/// Every text of a Responses request's input, joined: the conversation the model sees.
fn input_text(body: &Value) -> String {
    body["input"].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn spawn_codex_send_and_the_answer_and_usage_are_recorded() {
    let h = Harness::start().await;
    let id = h
        .spawn_codex(json!({ "role": "developer", "name": "cx" }))
        .await;
    assert!(id.starts_with("cx-"), "{id}");
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(inst.agent, "codex");
    assert_eq!(inst.model, "gpt-5");
    assert_eq!(inst.state, "idle");

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "hello codex" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    assert_eq!(r.structured["response"], "ECHO: hello codex");
    let request = codex_request(&h, "hello codex").await;
    assert!(
        input_text(&request).contains("You are a developer"),
        "the role's prompt reaches the model as developer instructions"
    );

    let message_id = r.structured["message_id"].as_str().unwrap();
    let m = Message::find(h.pool(), message_id).await.unwrap().unwrap();
    assert!(m.prompt_id.is_some(), "Codex's turn id ties the turn to it");
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert!(
        !inst.agent_session_id.is_empty(),
        "the session id was learned"
    );
    assert!(
        inst.transcript_path
            .as_deref()
            .is_some_and(|p| p.contains(&inst.agent_session_id)),
        "{:?}",
        inst.transcript_path
    );

    // One usage row per model response of the turn, with what the fake reported.
    let rows = eventually("the turn's usage row", Duration::from_secs(10), || async {
        let rows = UsageRecord::for_instance(h.pool(), &id).await.unwrap();
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    let turn: Vec<&UsageRecord> = rows
        .iter()
        .filter(|u| u.message_id.as_deref() == Some(message_id))
        .collect();
    assert_eq!(turn.len(), 1, "{rows:?}");
    let reported = h.model.reported();
    let fake = reported
        .iter()
        .find(|r| r.id == turn[0].source_id)
        .expect("the row is a response the fake gave");
    assert_eq!(
        (
            turn[0].input_tokens,
            turn[0].output_tokens,
            turn[0].cache_read_tokens
        ),
        (fake.input, fake.output, fake.cache_read),
        "the ledger holds what the fake reported, cached input apart"
    );
    assert_eq!(turn[0].output_tokens, 3, "ECHO: hello codex is three words");
    assert_eq!(turn[0].model, "gpt-5");
    // gpt-5: $1.25 input, $10 output, $0.125 cached input per million tokens.
    let price =
        fake.input as f64 * 1.25 + fake.output as f64 * 10.0 + fake.cache_read as f64 * 0.125;
    assert_eq!(turn[0].cost_micros, Some(price.round() as i64));

    // The same tools as for Claude.
    let out = h
        .call("get_instance_output", json!({ "instance_id": id }))
        .await;
    assert!(
        out.structured["output"]
            .as_str()
            .unwrap()
            .contains("ECHO: hello codex"),
        "{}",
        out.text
    );
    let second = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "and a second one" }),
        )
        .await;
    assert_eq!(
        second.structured["response"], "ECHO: and a second one",
        "{}",
        second.text
    );
    let r = h
        .call("terminate_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert!(!h.tmux_has_session(&inst.tmux_session));
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupting_codex_keeps_the_conversation() {
    let h = Harness::start().await;
    let id = h.spawn_codex(json!({ "role": "researcher" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "please count slowly to 40", "wait_for_response": false }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    codex_request(&h, "please count slowly to 40").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let r = h
        .call("interrupt_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["outcome"], "confirmed", "{}", r.structured);
    assert_eq!(r.structured["message_id"], message_id.as_str());
    let rows = Interrupt::for_instance(h.pool(), &id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "confirmed");
    let m = Message::find(h.pool(), &message_id).await.unwrap().unwrap();
    assert_eq!(m.state, "interrupted");

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "what number did you reach" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: what number did you reach");
    let followup = codex_request(&h, "what number did you reach").await;
    assert!(
        input_text(&followup).contains("please count slowly to 40"),
        "the interrupted turn is still in the conversation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_codex_instance_resumes_its_conversation_after_tmux_is_killed() {
    let mut h = Harness::start().await;
    let id = h.spawn_codex(json!({ "role": "developer" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "remember the word pineapple" }),
        )
        .await;
    assert_eq!(
        r.structured["response"],
        "ECHO: remember the word pineapple"
    );
    // The rollout holds the turn (its usage line) before the CLI is killed.
    h.wait_for_transcript(&id, r.structured["message_id"].as_str().unwrap())
        .await;
    let session = Instance::find(h.pool(), &id)
        .await
        .unwrap()
        .unwrap()
        .agent_session_id;

    h.stop_server().await;
    h.kill_tmux();
    h.start_server().await;

    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(inst.state, "idle", "{}", inst.state_reason);
    assert_eq!(inst.agent_session_id, session, "the same Codex session");
    assert!(h.tmux_has_session(&inst.tmux_session));
    let events = troupe::db::audit::for_instance(h.pool(), &id)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "instance.resumed"),
        "{events:?}"
    );

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "which word did I ask you to remember" }),
        )
        .await;
    assert_eq!(
        r.structured["response"], "ECHO: which word did I ask you to remember",
        "{}",
        r.text
    );
    let request = codex_request(&h, "which word did I ask you to remember").await;
    assert!(
        input_text(&request).contains("remember the word pineapple"),
        "codex resume sent the earlier conversation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_server_during_a_codex_turn_loses_nothing() {
    use support::process::{ServeProcess, ServeSpec};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::seed_home(&home);
    let model = support::FakeModel::start().await;
    support::seed_codex_home(&home, &model.base_url());
    let socket = support::unique_socket("cx9");
    let _tmux = support::TmuxServer(socket.clone());
    let spec = ServeSpec::new(
        dir.path(),
        &socket,
        support::instance_env(&home, &model.base_url()),
    )
    .await;
    let server = ServeProcess::start(&spec).await;
    let mcp = server.mcp().await;
    let r = mcp
        .call_tool("spawn_codex", json!({ "role": "tester" }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let id = r.structured["instance_id"].as_str().unwrap().to_string();
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": id, "message": "please count slowly to 8", "wait_for_response": false }),
        )
        .await;
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    model
        .wait_for_request(
            |r| r["input"].is_array() && responses_user_text(r).ends_with("count slowly to 8"),
            Duration::from_secs(30),
        )
        .await
        .expect("the model got the question");

    server.kill9();
    let server = ServeProcess::start(&spec).await;
    let mcp = server.mcp().await;
    let m = mcp
        .call_tool(
            "get_message",
            json!({ "message_id": message_id, "wait_seconds": 30 }),
        )
        .await;
    assert!(!m.is_error, "{}", m.text);
    assert_eq!(
        m.structured["status"],
        "answered",
        "{}\n{}",
        m.structured,
        ServeProcess::log_tail(&spec, 40)
    );
    assert_eq!(
        m.structured["response"].as_str().unwrap().trim(),
        "1 2 3 4 5 6 7 8"
    );
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": id, "message": "still here?" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: still here?", "{}", r.text);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claude_parent_spawns_a_codex_child_and_coordinates_it() {
    let h = Harness::start().await;
    let main = h
        .spawn(json!({ "role": "architect", "name": "main" }))
        .await;
    let ask = |text: String| {
        let h = &h;
        let main = main.clone();
        async move {
            let r = h
                .call(
                    "send_to_instance",
                    json!({ "instance_id": main, "message": text, "timeout_seconds": 120 }),
                )
                .await;
            assert!(!r.is_error, "{}", r.text);
            assert_eq!(r.structured["status"], "answered", "{}", r.structured);
            r.structured["response"].as_str().unwrap().to_string()
        }
    };
    let text =
        ask(r#"CALL_TOOL mcp__troupe__spawn_codex {"role": "developer", "name": "coder"}"#.into())
            .await;
    assert!(text.contains("\"instance_id\":\"coder-"), "{text}");
    let children = Instance::children(h.pool(), &main, false).await.unwrap();
    assert_eq!(children.len(), 1);
    let child = &children[0];
    assert_eq!(child.agent, "codex");

    let call = format!(
        "CALL_TOOL mcp__troupe__coordinate_instances {}",
        json!({ "mode": "parallel", "tasks": [{ "instance_id": child.id, "message": "port the parser" }] })
    );
    let text = ask(call).await;
    assert!(text.contains("ECHO: port the parser"), "{text}");
    assert!(text.contains("\"answered\":1"), "{text}");

    let tree = h.call("get_instance_tree", json!({})).await;
    let roots = tree.structured["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{}", tree.structured);
    assert_eq!(roots[0]["children"][0]["instance_id"], child.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_with_a_codex_member_starts_both_agents() {
    let h = Harness::start().await;
    let r = h
        .call(
            "create_team",
            json!({ "name": "mixed", "members": [
                { "role": "architect", "model": "haiku" },
                { "role": "developer", "name": "coder", "model": "codex/gpt-5" }
            ]}),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h.call("start_team", json!({ "name": "mixed" })).await;
    assert!(!r.is_error, "{}", r.text);
    let list = Instance::list(h.pool(), false).await.unwrap();
    let mut agents: Vec<(&str, &str)> = list
        .iter()
        .map(|i| (i.agent.as_str(), i.model.as_str()))
        .collect();
    agents.sort();
    assert_eq!(agents, [("claude", "haiku"), ("codex", "gpt-5")]);
    let coder = list.iter().find(|i| i.agent == "codex").unwrap();
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": coder.id, "message": "hello teammate" }),
        )
        .await;
    assert_eq!(
        r.structured["response"], "ECHO: hello teammate",
        "{}",
        r.text
    );

    let bad = h
        .call(
            "create_team",
            json!({ "name": "bad", "members": [{ "role": "developer", "model": "codex/sonnet" }] }),
        )
        .await;
    assert!(bad.is_error);
    assert!(bad.text.contains("unknown codex model"), "{}", bad.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_codex_input_gets_a_clear_error() {
    let h = Harness::start().await;
    let r = h
        .call("spawn_codex", json!({ "sandbox_mode": "yolo" }))
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("unknown sandbox_mode"), "{}", r.text);
    let r = h.call("spawn_claude", json!({ "model": "gpt-5" })).await;
    assert!(r.is_error);
    assert!(r.text.contains("unknown claude model"), "{}", r.text);
    let r = h
        .call("spawn_codex", json!({ "model": "gpt-5 --yolo" }))
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("unknown codex model"), "{}", r.text);
    assert!(Instance::list(h.pool(), true).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_codex_instance_spawns_children_of_its_own_through_troupe() {
    let h = Harness::start().await;
    // Sandboxed: Codex must still call troupe's tools without stopping to ask.
    let parent = h
        .spawn_codex(
            json!({ "role": "architect", "name": "lead", "sandbox_mode": "workspace-write" }),
        )
        .await;
    let r = h
        .call(
            "send_to_instance",
            json!({
                "instance_id": parent,
                "message": r#"CALL_TOOL mcp__troupe__spawn_claude {"role": "tester", "name": "kid"}"#,
                "timeout_seconds": 120
            }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    let answer = r.structured["response"].as_str().unwrap();
    assert!(
        answer.contains("kid-"),
        "the tool's result came back: {answer}"
    );
    // Two model responses in that turn (the call, then the text after its result): a usage
    // row for each, with what the fake reported for each.
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    let rows = eventually("both usage rows", Duration::from_secs(10), || async {
        let rows: Vec<UsageRecord> = UsageRecord::for_instance(h.pool(), &parent)
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.message_id.as_deref() == Some(message_id.as_str()))
            .collect();
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].output_tokens, 10, "the function call");
    let reported = h.model.reported();
    for row in &rows {
        let fake = reported.iter().find(|r| r.id == row.source_id).unwrap();
        assert_eq!(
            (row.input_tokens, row.output_tokens, row.cache_read_tokens),
            (fake.input, fake.output, fake.cache_read)
        );
    }
    let children = Instance::children(h.pool(), &parent, false).await.unwrap();
    assert_eq!(
        children.len(),
        1,
        "the spawn was attributed to the Codex parent"
    );
    assert!(children[0].id.starts_with("kid-"));
    assert_eq!(children[0].agent, "claude");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_right_as_a_codex_turn_begins_still_stops_it() {
    let h = Harness::start().await;
    let id = h.spawn_codex(json!({ "role": "tester" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "please count slowly to 40", "wait_for_response": false }),
        )
        .await;
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    codex_request(&h, "please count slowly to 40").await;
    let r = h
        .call("interrupt_instance", json!({ "instance_id": id }))
        .await;
    assert_eq!(r.structured["outcome"], "confirmed", "{}", r.text);
    let m = Message::find(h.pool(), &message_id).await.unwrap().unwrap();
    assert_eq!(m.state, "interrupted");
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

/// `@path` in a message to Codex is text: no file is attached, a word its file search would
/// complete arrives as typed, and the message after one ending in `@word` arrives unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn an_at_path_in_a_codex_message_is_text_and_reads_no_file() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().canonicalize().unwrap();
    let secret = project.join("secret.txt");
    std::fs::write(&secret, "SECRET-CONTENT-5e2b\n").unwrap();
    let id = h
        .spawn_codex(json!({ "role": "tester", "project_dir": project.display().to_string() }))
        .await;
    for text in [
        format!("@{} summarise", secret.display()),
        format!("look at @{}", secret.display()),
        // A word Codex's file search matches (`secret.txt`): an Enter while its popup is open
        // would put the file's path in place of the word, and leave the message unsent.
        "look at @secret".to_string(),
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
        assert_eq!(r.structured["response"], format!("ECHO: {text}"));
        // The model received exactly the text: no file attached, nothing completed or left
        // over from a popup, the space troupe types around an `@` word dropped.
        let request = codex_request(&h, &text).await;
        assert_eq!(responses_user_text(&request), text);
    }
    let requests = h.model.requests();
    let leaked = requests
        .iter()
        .find(|r| r.to_string().contains("SECRET-CONTENT-5e2b"));
    assert!(
        leaked.is_none(),
        "the file was read into a model request: {}",
        leaked.map(|r| r["input"].to_string()).unwrap_or_default()
    );
}
