//! Least privilege, with the real Claude Code as the instances: an instance acts on itself
//! and the instances below it, never on its parent, its grandparent or a stranger; it cannot
//! change controls or approve its own calls; lists show it its own subtree.

mod support;

use serde_json::json;
use support::Harness;
use support::asking::as_instance;

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_acts_only_on_itself_and_the_instances_below_it() {
    let h = Harness::start().await;
    let lead = h
        .spawn(json!({ "role": "architect", "name": "lead", "model": "haiku" }))
        .await;
    let mid = h
        .spawn(json!({ "role": "developer", "name": "mid", "model": "haiku", "parent_instance_id": lead }))
        .await;
    let leaf = h
        .spawn(json!({ "role": "tester", "name": "leaf", "model": "haiku", "parent_instance_id": mid }))
        .await;
    let other = h
        .spawn(json!({ "role": "tester", "name": "other", "model": "haiku" }))
        .await;
    let as_leaf = as_instance(&h, &leaf).await;

    // Upwards and sideways: refused, each naming the reason.
    let refused = [
        (
            "terminate_instance",
            json!({ "instance_id": lead }),
            "neither you nor",
        ),
        (
            "interrupt_instance",
            json!({ "instance_id": mid }),
            "neither you nor",
        ),
        (
            "send_to_instance",
            json!({ "instance_id": other, "message": "hi", "wait_for_response": false }),
            "outside your reach",
        ),
        (
            "get_instance_output",
            json!({ "instance_id": other }),
            "outside your reach",
        ),
        (
            "get_instance_status",
            json!({ "instance_id": lead }),
            "outside your reach",
        ),
        (
            "spawn_claude",
            json!({ "role": "tester", "parent_instance_id": other }),
            "under itself only",
        ),
        (
            "configure_orchestration",
            json!({ "max_instances": 1000 }),
            "the person's",
        ),
        ("terminate_all", json!({}), "the person's"),
        (
            "create_team",
            json!({ "name": "mine", "members": [{ "role": "tester" }] }),
            "the person's",
        ),
    ];
    for (tool, args, why) in &refused {
        let r = as_leaf.call_tool(tool, args.clone()).await;
        assert!(r.is_error, "{tool} was allowed: {}", r.text);
        assert!(r.text.contains(why), "{tool}: {}", r.text);
    }
    for id in [&lead, &mid, &other] {
        let s = h
            .call("get_instance_status", json!({ "instance_id": id }))
            .await;
        assert_eq!(s.structured["instances"][0]["state"], "idle", "{id}");
    }
    let settings = h.call("get_orchestration_settings", json!({})).await;
    assert_ne!(
        settings.structured["max_instances"]["value"], 1000,
        "{}",
        settings.text
    );
    let refusals = troupe::db::audit::of_kind(h.pool(), "access.refused")
        .await
        .unwrap();
    assert_eq!(refusals.len(), refused.len(), "{refusals:?}");

    // Lists show an instance its own subtree.
    let listed = as_leaf.call_tool("list_instances", json!({})).await;
    assert_eq!(listed.structured["count"], 1, "{}", listed.text);
    let as_mid = as_instance(&h, &mid).await;
    let listed = as_mid.call_tool("get_instance_status", json!({})).await;
    let ids: Vec<&str> = listed.structured["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&mid.as_str()) && ids.contains(&leaf.as_str()));
    let tree = as_mid.call_tool("get_instance_tree", json!({})).await;
    let text = tree.structured["text"].as_str().unwrap();
    assert!(!text.contains(&lead) && !text.contains(&other), "{text}");

    // Downwards: allowed.
    let as_lead = as_instance(&h, &lead).await;
    let r = as_lead
        .call_tool("get_instance_output", json!({ "instance_id": leaf }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = as_lead
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": leaf, "message": "hello from the top" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["response"], "ECHO: hello from the top");
    let r = as_lead
        .call_tool("terminate_instance", json!({ "instance_id": mid }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let gone = r.structured["terminated"].to_string();
    assert!(gone.contains(&leaf) && gone.contains(&mid), "{gone}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_is_the_persons_and_a_code_approves_one_call() {
    let h = Harness::start().await;
    let r = h
        .call(
            "configure_orchestration",
            json!({ "require_approval": ["spawn_claude"] }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let lead = h
        .call("spawn_claude", json!({ "role": "tester", "name": "lead" }))
        .await;
    // The harness's client cannot show a form: the person gets a code.
    let code = lead
        .text
        .split("\"approval\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a code for the person")
        .to_string();
    let lead = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "lead", "approval": code }),
        )
        .await;
    assert!(!lead.is_error, "{}", lead.text);
    let lead = lead.structured["instance_id"].as_str().unwrap().to_string();
    let as_lead = as_instance(&h, &lead).await;

    // The instance is refused, is given no code, and cannot use the person's.
    let r = as_lead
        .call_tool("spawn_claude", json!({ "role": "tester", "name": "kid" }))
        .await;
    assert!(
        r.is_error && r.text.contains("person's approval"),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains("ok-"),
        "a code was handed to an instance: {}",
        r.text
    );
    let person = h
        .call("spawn_claude", json!({ "role": "tester", "name": "kid" }))
        .await;
    let code = person
        .text
        .split("\"approval\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let r = as_lead
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "name": "kid", "approval": code }),
        )
        .await;
    assert!(
        r.is_error,
        "the person's code worked for an instance: {}",
        r.text
    );
    // A code approves its own call only: other arguments are refused.
    let r = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "someone-else", "approval": code }),
        )
        .await;
    assert!(r.is_error && r.text.contains("not valid"), "{}", r.text);
}

/// A person who exported TROUPE_TOKEN (as `serve` suggests for Codex) starts troupe from that
/// shell: the instances it runs, and the tmux server they run in, do not get the token.
#[tokio::test(flavor = "multi_thread")]
async fn no_instance_inherits_the_server_token() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::seed_home(&home);
    let model = support::FakeModel::start().await;
    let socket = support::unique_socket("token");
    let _tmux = support::TmuxServer(socket.clone());
    let secret = "secret-server-token-0123456789abcdef";
    let mut env = support::instance_env(&home, &model.base_url());
    env.push(("TROUPE_TOKEN".into(), secret.into()));
    let spec = support::process::ServeSpec::new(dir.path(), &socket, env);
    let serve = support::process::ServeProcess::start(&spec).await;
    let person = support::McpClient::with_token(&serve.url, secret).await;
    let r = person
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let global = std::process::Command::new("tmux")
        .args(["-L", &socket, "show-environment", "-g"])
        .output()
        .unwrap();
    let global = String::from_utf8_lossy(&global.stdout);
    assert!(global.contains("HOME="), "{global}");
    assert!(!global.contains(secret), "the tmux server holds the token");
    let panes = std::process::Command::new("tmux")
        .args(["-L", &socket, "list-panes", "-a", "-F", "#{pane_pid}"])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&panes.stdout).into_owned();
    assert!(!pids.trim().is_empty());
    for pid in pids.lines() {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            environ.contains("ANTHROPIC_BASE_URL="),
            "the pane's environment is read"
        );
        assert!(!environ.contains(secret), "pane {pid} holds the token");
    }
}
