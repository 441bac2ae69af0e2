//! troupe's controls: limits, budgets and allowed models, set in the conversation (and kept
//! across restarts), from the environment, or from the config file, each refusing with an
//! error that names it.

mod support;

use serde_json::json;
use support::Harness;

#[tokio::test(flavor = "multi_thread")]
async fn limits_set_in_the_conversation_refuse_by_name_and_survive_a_restart() {
    let mut h = Harness::start_with(|c| c.env_controls.max_cost_per_hour = Some(100.0)).await;
    let r = h
        .call(
            "configure_orchestration",
            json!({ "max_instances": 1, "allowed_models": ["haiku"] }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let s = &r.structured["settings"];
    assert_eq!(s["max_instances"]["value"], 1);
    assert_eq!(s["max_instances"]["source"], "conversation");
    assert_eq!(s["max_cost_per_hour"]["source"], "environment");
    assert_eq!(s["notify_on"]["source"], "default");
    assert!(
        r.structured["precedence"]
            .as_str()
            .unwrap()
            .starts_with("conversation")
    );

    let denied = h.call("spawn_claude", json!({ "model": "sonnet" })).await;
    assert!(denied.is_error);
    assert!(denied.text.contains("allowed_models"), "{}", denied.text);
    let id = h.spawn(json!({ "role": "tester", "model": "haiku" })).await;
    let full = h.call("spawn_claude", json!({ "model": "haiku" })).await;
    assert!(full.is_error);
    assert!(full.text.contains("max_instances = 1"), "{}", full.text);
    assert!(!full.text.contains("  "), "a run of spaces: {}", full.text);
    assert!(
        full.text.contains("configure_orchestration"),
        "{}",
        full.text
    );

    h.stop_server().await;
    h.start_server().await;
    let r = h.call("get_orchestration_settings", json!({})).await;
    assert_eq!(
        r.structured["settings"]["max_instances"]["value"], 1,
        "{}",
        r.text
    );
    let again = h.call("spawn_claude", json!({ "model": "haiku" })).await;
    assert!(again.text.contains("max_instances = 1"), "{}", again.text);

    let r = h
        .call(
            "configure_orchestration",
            json!({ "reset": ["max_instances"] }),
        )
        .await;
    assert_eq!(r.structured["settings"]["max_instances"]["value"], 50);
    assert_eq!(
        r.structured["settings"]["max_instances"]["source"],
        "default"
    );
    let bad = h
        .call(
            "configure_orchestration",
            json!({ "reset": ["max_everything"] }),
        )
        .await;
    assert!(
        bad.is_error && bad.text.contains("not a control"),
        "{}",
        bad.text
    );
    let bad = h
        .call(
            "configure_orchestration",
            json!({ "notify_on": ["everything"] }),
        )
        .await;
    assert!(
        bad.is_error && bad.text.contains("notify_on"),
        "{}",
        bad.text
    );

    // Off: nothing new starts and no work is sent.
    h.call("configure_orchestration", json!({ "enabled": false }))
        .await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "hi" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("orchestration is disabled"),
        "{}",
        r.text
    );
    let r = h.call("spawn_claude", json!({ "model": "haiku" })).await;
    assert!(r.is_error && r.text.contains("enabled=true"), "{}", r.text);
    let audit = troupe::db::audit::of_kind(h.pool(), "settings.changed")
        .await
        .unwrap();
    assert!(audit.len() >= 3, "{audit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_session_budget_refuses_new_work_and_says_by_how_much() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester", "model": "haiku" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "one" }),
        )
        .await;
    h.wait_for_transcript(&id, r.structured["message_id"].as_str().unwrap())
        .await;
    h.call(
        "configure_orchestration",
        json!({ "max_session_cost": 0.0001 }),
    )
    .await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "two" }),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("max_session_cost $0.00"), "{}", r.text);
    assert!(r.text.contains("over"), "{}", r.text);
    let r = h.call("spawn_claude", json!({ "model": "haiku" })).await;
    assert!(
        r.is_error && r.text.contains("max_session_cost"),
        "{}",
        r.text
    );

    // The hourly budget, alone.
    h.call(
        "configure_orchestration",
        json!({ "reset": ["max_session_cost"], "max_cost_per_hour": 0.0001 }),
    )
    .await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "three" }),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("the last hour has cost"), "{}", r.text);
    assert!(r.text.contains("max_cost_per_hour"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_model_per_role_comes_from_the_settings() {
    let h = Harness::start_with(|c| {
        c.file_controls.default_models =
            Some([("tester".to_string(), "sonnet".to_string())].into());
        c.env_controls.preferred_models = Some(vec!["haiku".into()]);
    })
    .await;
    let tester = h.spawn(json!({ "role": "tester" })).await;
    let architect = h.spawn(json!({ "role": "architect" })).await;
    let model = |id: &str| {
        let pool = h.pool().clone();
        let id = id.to_string();
        async move {
            troupe::db::instances::Instance::find(&pool, &id)
                .await
                .unwrap()
                .unwrap()
                .model
        }
    };
    assert_eq!(
        model(&tester).await,
        "sonnet",
        "the config file's per-role default"
    );
    assert_eq!(
        model(&architect).await,
        "haiku",
        "opus is not preferred: the first preferred"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_file_sets_controls_and_its_price_entry_is_accepted() {
    use support::process::{ServeProcess, ServeSpec};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "[orchestration]\nmax_instances = 2\nallowed_models = [\"haiku\", \"gpt-5\"]\n\
         auto_terminate_after = 3600\nnotify_on = [\"spawn\", \"error\"]\n\n\
         [[prices]]\nmodel = \"claude-haiku-4\"\nvalid_from = \"2020-01-01\"\ninput = 100.0\n\
         output = 100.0\ncache_write = 100.0\ncache_read = 100.0\n",
    )
    .unwrap();
    let socket = support::unique_socket("cf");
    let _tmux = support::TmuxServer(socket.clone());
    let mut spec = ServeSpec::new(
        dir.path(),
        &socket,
        vec![("MAX_INSTANCES".into(), "3".into())],
    )
    .await;
    spec.extra_args
        .extend(["--config".into(), file.display().to_string()]);
    let server = ServeProcess::start(&spec).await;
    let mcp = server.mcp().await;
    let r = mcp.call_tool("get_orchestration_settings", json!({})).await;
    assert!(!r.is_error, "{}", r.text);
    let s = &r.structured["settings"];
    assert_eq!(
        s["max_instances"]["value"], 3,
        "the environment wins over the file"
    );
    assert_eq!(s["max_instances"]["source"], "environment");
    assert_eq!(s["allowed_models"]["source"], "config_file");
    assert_eq!(s["auto_terminate_after"]["value"], 3600);
    assert_eq!(s["notify_on"]["value"], json!(["spawn", "error"]));
    let r = mcp
        .call_tool("spawn_claude", json!({ "model": "opus" }))
        .await;
    assert!(r.is_error && r.text.contains("config file"), "{}", r.text);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn session_metrics_add_up_and_count_the_time_parallel_work_saved() {
    let h = Harness::start().await;
    let a = h.spawn(json!({ "role": "tester", "name": "a" })).await;
    let b = h
        .spawn(json!({ "role": "tester", "name": "b", "parent_instance_id": a }))
        .await;
    // Two 3-second turns at once: 6 numbers, one every 0.5 s, each.
    let mut ids = Vec::new();
    for id in [&a, &b] {
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": "please count slowly to 6", "wait_for_response": false }),
            )
            .await;
        ids.push(r.structured["message_id"].as_str().unwrap().to_string());
    }
    for (id, m) in [&a, &b].into_iter().zip(&ids) {
        let r = h
            .call(
                "get_message",
                json!({ "message_id": m, "wait_seconds": 30 }),
            )
            .await;
        assert_eq!(r.structured["status"], "answered", "{}", r.text);
        h.wait_for_transcript(id, m).await;
    }
    let r = h.call("get_session_metrics", json!({})).await;
    assert!(!r.is_error, "{}", r.text);
    let m = &r.structured;
    assert_eq!(m["instances_spawned"], 2);
    assert_eq!(m["instances_active"], 2);
    assert_eq!(m["instances_by_host"][h.config().host.as_str()], 2, "{m}");
    assert_eq!(m["messages_answered"], 2);
    assert_eq!(m["unpriced_calls"], 0);
    let saved = m["time_saved_seconds"].as_f64().unwrap();
    let busy = m["busy_seconds"].as_f64().unwrap();
    // About 3 s: the two turns start a moment apart, so a busy machine overlaps them a little less.
    assert!((1.5..4.5).contains(&saved), "about 3 s saved: {m}");
    assert!(busy > 5.0, "{m}");
    let total: i64 = m["cost_by_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cost_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(m["cost_micros"].as_i64().unwrap(), total);
    assert!(total > 0);
    let tokens: i64 = [
        "input_tokens",
        "output_tokens",
        "cache_creation_tokens",
        "cache_read_tokens",
    ]
    .iter()
    .map(|k| m[k].as_i64().unwrap())
    .sum();
    assert_eq!(m["total_tokens"].as_i64().unwrap(), tokens);
    assert!(
        r.text.starts_with("scope: every instance") || r.text.contains("cost: $"),
        "{}",
        r.text
    );

    // One subtree, and the same over REST.
    let sub = h
        .call("get_session_metrics", json!({ "instance_id": b }))
        .await;
    assert_eq!(sub.structured["instances_spawned"], 1, "{}", sub.text);
    let rest: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/metrics", h.server().url()))
        .bearer_auth(h.server().token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["cost_micros"], m["cost_micros"]);
    let bad = h
        .call("get_session_metrics", json!({ "team": "nope" }))
        .await;
    assert!(
        bad.is_error && bad.text.contains("no team named"),
        "{}",
        bad.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_crossed_during_a_slow_reply_interrupts_it_and_says_so_once() {
    let h = Harness::start().await;
    let mut notices = h.mcp.listen().await;
    h.call(
        "configure_orchestration",
        json!({ "notify_on": ["cost_threshold", "spawn"] }),
    )
    .await;
    let slow = h.spawn(json!({ "role": "tester", "name": "slow" })).await;
    let quick = h.spawn(json!({ "role": "tester", "name": "quick" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": slow, "message": "please count slowly to 40", "wait_for_response": false }),
        )
        .await;
    let counting = r.structured["message_id"].as_str().unwrap().to_string();
    h.model
        .wait_for_request(
            |r| support::fake_model::last_user_text(r).ends_with("count slowly to 40"),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    // The budget runs out as the turn begins (an interrupt that early needs its key again).
    // Nothing spent yet; a millionth of a dollar is spent by the next call.
    h.call(
        "configure_orchestration",
        json!({ "max_session_cost": 0.000001 }),
    )
    .await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": quick, "message": "hello" }),
        )
        .await;
    assert_eq!(r.structured["status"], "answered", "{}", r.text);

    let m = h
        .call(
            "get_message",
            json!({ "message_id": counting, "wait_seconds": 30 }),
        )
        .await;
    assert_eq!(m.structured["status"], "interrupted", "{}", m.text);
    let crossed = support::eventually(
        "the crossing in the audit log",
        std::time::Duration::from_secs(10),
        || async {
            let rows = troupe::db::audit::of_kind(h.pool(), "budget.crossed")
                .await
                .unwrap();
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await;
    assert_eq!(crossed.len(), 1);
    assert!(
        crossed[0].detail.contains("max_session_cost"),
        "{}",
        crossed[0].detail
    );
    assert!(crossed[0].detail.contains(&slow), "{}", crossed[0].detail);

    // The person's session heard: a spawn notice, then the crossing, once.
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !kinds.contains(&"cost_threshold".to_string()) {
        let note = tokio::time::timeout_at(deadline, notices.recv())
            .await
            .expect("the crossing was told")
            .unwrap();
        if note["method"] == "notifications/message" {
            kinds.push(note["params"]["data"]["kind"].as_str().unwrap().to_string());
        }
    }
    assert!(kinds.contains(&"spawn".to_string()), "{kinds:?}");
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": quick, "message": "more" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("max_session_cost"),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_instance_is_suspended_and_the_next_message_brings_it_back() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "remember kiwi" }),
        )
        .await;
    h.wait_for_transcript(&id, r.structured["message_id"].as_str().unwrap())
        .await;
    h.call(
        "configure_orchestration",
        json!({ "auto_terminate_after": 1 }),
    )
    .await;
    support::eventually(
        "the idle instance suspended",
        std::time::Duration::from_secs(15),
        || async {
            let i = troupe::db::instances::Instance::find(h.pool(), &id)
                .await
                .unwrap()
                .unwrap();
            (i.state == "suspended").then_some(())
        },
    )
    .await;
    // The state is written first, then the audit row that says why.
    let audit = support::eventually(
        "the suspension audited",
        std::time::Duration::from_secs(10),
        || async {
            let rows = troupe::db::audit::of_kind(h.pool(), "instance.auto_suspended")
                .await
                .unwrap();
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await;
    assert_eq!(audit.len(), 1);
    h.call(
        "configure_orchestration",
        json!({ "reset": ["auto_terminate_after"] }),
    )
    .await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "what did I say" }),
        )
        .await;
    assert_eq!(
        r.structured["response"], "ECHO: what did I say",
        "{}",
        r.text
    );
    let request = h
        .model
        .wait_for_request(
            |r| support::fake_model::last_user_text(r).ends_with("what did I say"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(
        support::fake_model::conversation_text(&request).contains("remember kiwi"),
        "the conversation came back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn require_approval_asks_a_client_that_can_ask_and_refuses_with_a_code_otherwise() {
    let h = Harness::start().await;
    h.call(
        "configure_orchestration",
        json!({ "require_approval": ["spawn_claude"] }),
    )
    .await;
    // A client that can ask its user.
    let asking = support::McpClient::declaring(h.server(), json!({ "elicitation": {} })).await;
    let (r, asked) = asking
        .call_tool_answering(
            "spawn_claude",
            json!({ "role": "tester", "name": "yes" }),
            json!({ "action": "accept", "content": { "approve": true } }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["method"], "elicitation/create");
    assert!(
        asked[0]["params"]["message"]
            .as_str()
            .unwrap()
            .contains("spawn_claude"),
        "{}",
        asked[0]
    );
    let (r, _) = asking
        .call_tool_answering(
            "spawn_claude",
            json!({ "role": "tester", "name": "no" }),
            json!({ "action": "decline" }),
        )
        .await;
    assert!(r.is_error && r.text.contains("declined"), "{}", r.text);

    // A client that cannot: refused, with a code to call again with once the user agrees.
    let r = h
        .call("spawn_claude", json!({ "role": "tester", "name": "later" }))
        .await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("Ask the user"), "{}", r.text);
    let code = r
        .text
        .split("\"approval\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a code in the refusal")
        .to_string();
    let r = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "later", "approval": code }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let again = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "twice", "approval": code }),
        )
        .await;
    assert!(
        again.is_error && again.text.contains("not valid"),
        "{}",
        again.text
    );
    // Tools not named are not asked about.
    assert!(!h.call("list_instances", json!({})).await.is_error);

    let names: Vec<String> = troupe::db::instances::Instance::list(h.pool(), false)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for kind in ["approval.asked", "approval.granted", "approval.refused"] {
        let rows = troupe::db::audit::of_kind(h.pool(), kind).await.unwrap();
        assert!(!rows.is_empty(), "{kind}");
    }
}
