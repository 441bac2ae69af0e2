//! Trees of instances and work spread over them, with real Claude Code instances: a main
//! session that spawns and coordinates children through troupe's own MCP server.

mod support;

use std::time::Duration;

use serde_json::json;
use support::Harness;
use troupe::db::instances::Instance;
use troupe::db::messages::Message;

async fn ask(h: &Harness, id: &str, text: &str) -> serde_json::Value {
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": text, "timeout_seconds": 120 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    r.structured
}

#[tokio::test(flavor = "multi_thread")]
async fn a_main_session_spawns_and_coordinates_its_children() {
    let h = Harness::start().await;
    // The main session is itself a Claude Code instance with troupe in its MCP config.
    let main = h
        .spawn(json!({ "role": "architect", "name": "main" }))
        .await;

    for name in ["alpha", "beta"] {
        let call = format!(
            r#"CALL_TOOL mcp__troupe__spawn_claude {{"role": "developer", "name": "{name}"}}"#
        );
        let answer = ask(&h, &main, &call).await;
        let text = answer["response"].as_str().unwrap();
        assert!(
            text.contains(&format!("\"instance_id\":\"{name}-")),
            "{text}"
        );
    }
    // Parent by identity: the spawns named no parent, the header did.
    let children = Instance::children(h.pool(), &main, false).await.unwrap();
    let main_dir = Instance::find(h.pool(), &main)
        .await
        .unwrap()
        .unwrap()
        .workdir;
    for c in &children {
        assert_eq!(c.workdir, main_dir, "a helper works where its parent works");
    }
    let ids: Vec<String> = children.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids[0].starts_with("alpha-") && ids[1].starts_with("beta-"),
        "{ids:?}"
    );

    let call = format!(
        "CALL_TOOL mcp__troupe__coordinate_instances {}",
        json!({
            "mode": "parallel",
            "tasks": [
                { "instance_id": ids[0], "message": "design the schema" },
                { "instance_id": ids[1], "message": "write the tests" }
            ]
        })
    );
    let answer = ask(&h, &main, &call).await;
    let text = answer["response"].as_str().unwrap();
    assert!(text.contains("ECHO: design the schema"), "{text}");
    assert!(text.contains("ECHO: write the tests"), "{text}");
    assert!(text.contains("\"answered\":2"), "{text}");

    let tree = h.call("get_instance_tree", json!({})).await;
    assert!(!tree.is_error, "{}", tree.text);
    let roots = tree.structured["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{}", tree.structured);
    assert_eq!(roots[0]["instance_id"], main.as_str());
    let kids: Vec<&str> = roots[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [ids[0].as_str(), ids[1].as_str()]);
    let text = tree.structured["text"].as_str().unwrap();
    assert!(text.contains(&format!("├── {}", ids[0])), "{text}");
    assert!(text.contains(&format!("└── {}", ids[1])), "{text}");

    // A child reports back to its caller; the parent's inbox has it, with the correlation id
    // of the message the child was answering.
    let r = h
        .call(
            "send_to_instance",
            json!({
                "instance_id": ids[0],
                "message": r#"CALL_TOOL mcp__troupe__reply_to_caller {"message": "schema ready"}"#
            }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let asked = r.structured["message_id"].as_str().unwrap().to_string();
    let replies = h
        .call("get_pending_replies", json!({ "instance_id": main }))
        .await;
    let list = replies.structured["replies"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", replies.structured);
    assert_eq!(list[0]["content"], "schema ready");
    assert_eq!(list[0]["from_instance"], ids[0].as_str());
    assert_eq!(list[0]["correlation_id"], asked.as_str());
    let again = h
        .call("get_pending_replies", json!({ "instance_id": main }))
        .await;
    assert!(
        again.structured["replies"].as_array().unwrap().is_empty(),
        "a reply is read once"
    );

    let r = h
        .call("terminate_instance", json!({ "instance_id": main }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let ended = r.structured["terminated"].as_array();
    assert_eq!(
        ended.map(Vec::len),
        Some(3),
        "{} / {}",
        r.text,
        r.structured
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn terminating_the_root_ends_three_levels_deepest_first() {
    let h = Harness::start().await;
    let root = h
        .spawn(json!({ "role": "architect", "name": "root" }))
        .await;
    let lead = h
        .spawn(json!({ "role": "developer", "name": "lead", "parent_instance_id": root }))
        .await;
    let helper = h
        .spawn(json!({ "role": "tester", "name": "helper", "parent_id": lead }))
        .await;
    assert_eq!(
        Instance::find(h.pool(), &helper)
            .await
            .unwrap()
            .unwrap()
            .parent_id
            .as_deref(),
        Some(lead.as_str())
    );

    let r = h
        .call("terminate_instance", json!({ "instance_id": root }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let order: Vec<&str> = r.structured["terminated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(order, [helper.as_str(), lead.as_str(), root.as_str()]);
    for id in [&root, &lead, &helper] {
        let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
        assert_eq!(inst.state, "terminated");
        assert!(
            !h.tmux_has_session(&inst.tmux_session),
            "{id} left a tmux session"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_to_a_busy_instance_queue_and_are_answered_in_order() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let send = |text: &'static str| {
        let h = &h;
        let id = id.clone();
        async move {
            let r = h
                .call(
                    "send_to_instance",
                    json!({ "instance_id": id, "message": text, "wait_for_response": false }),
                )
                .await;
            assert!(!r.is_error, "{}", r.text);
            r.structured["message_id"].as_str().unwrap().to_string()
        }
    };
    let counting = send("please count slowly to 3").await;
    let queued = [
        send("first").await,
        send("second").await,
        send("third").await,
    ];
    let m = Message::find(h.pool(), &queued[2]).await.unwrap().unwrap();
    assert_eq!(
        m.state, "queued",
        "waits in the database while the instance is busy"
    );

    let mut finished = Vec::new();
    for mid in std::iter::once(&counting).chain(queued.iter()) {
        let r = h
            .call(
                "get_message",
                json!({ "message_id": mid, "wait_seconds": 60 }),
            )
            .await;
        assert_eq!(r.structured["status"], "answered", "{}", r.structured);
        finished.push(r.structured["finished_at"].as_str().unwrap().to_string());
    }
    let mut sorted = finished.clone();
    sorted.sort();
    assert_eq!(finished, sorted, "answered in the order sent");
    let seen: Vec<String> = h
        .model
        .last_user_texts()
        .into_iter()
        .filter(|t| ["first", "second", "third"].iter().any(|w| t.ends_with(w)))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].ends_with("first") && seen[1].ends_with("second") && seen[2].ends_with("third"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_wait_reports_progress() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let messages = h
        .mcp
        .request_all(
            "tools/call",
            json!({
                "name": "send_to_instance",
                "arguments": { "instance_id": id, "message": "please count slowly to 12" },
                "_meta": { "progressToken": "count-1" }
            }),
        )
        .await;
    let progress: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(!progress.is_empty(), "{messages:?}");
    assert_eq!(progress[0]["params"]["progressToken"], "count-1");
    let said = progress[0]["params"]["message"].as_str().unwrap();
    assert!(
        said.contains("message msg-") && said.contains("get_message"),
        "{said}"
    );
    let answer = messages.iter().find(|m| m.get("result").is_some()).unwrap();
    assert_eq!(answer["result"]["structuredContent"]["status"], "answered");
}

#[tokio::test(flavor = "multi_thread")]
async fn tree_limits_refuse_a_spawn_with_the_reason() {
    let h = Harness::start_with(|c| {
        c.max_depth = 2;
        c.max_children = 1;
    })
    .await;
    let root = h
        .spawn(json!({ "role": "architect", "name": "root" }))
        .await;
    let child = h
        .spawn(json!({ "role": "developer", "name": "child", "parent_instance_id": root }))
        .await;

    let r = h
        .call(
            "spawn_claude",
            json!({ "name": "second", "parent_instance_id": root }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("max_children = 1"), "{}", r.text);
    let r = h
        .call(
            "spawn_claude",
            json!({ "name": "grandchild", "parent_instance_id": child }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("max_depth = 2"), "{}", r.text);
    assert_eq!(
        Instance::list(h.pool(), true).await.unwrap().len(),
        2,
        "nothing half-spawned"
    );
}

/// A terminal of the person's own, outside troupe, in tmux: for sessions troupe did not start.
struct Terminal {
    socket: String,
    _tmux: support::TmuxServer,
}

impl Terminal {
    /// Runs `argv` in `dir` with the fake model's environment (and `env`).
    fn open(
        h: &Harness,
        dir: &std::path::Path,
        env: &[(&str, String)],
        argv: &[String],
    ) -> Terminal {
        let socket = support::unique_socket("person");
        let tmux = support::TmuxServer(socket.clone());
        let mut cmd = std::process::Command::new("tmux");
        cmd.args([
            "-L",
            &socket,
            "new-session",
            "-d",
            "-s",
            "person",
            "-x",
            "200",
            "-y",
            "50",
        ])
        .arg("-c")
        .arg(dir);
        let base = support::instance_env(&h.home, &h.model.base_url());
        for (k, v) in base.iter().map(|(k, v)| (k.as_str(), v.clone())).chain(
            env.iter()
                .map(|(k, v)| (*k, v.clone()))
                .chain([("IS_SANDBOX", "1".to_string())]),
        ) {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.args(argv);
        assert!(cmd.status().unwrap().success());
        Terminal {
            socket,
            _tmux: tmux,
        }
    }

    fn screen(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "person"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, args: &[&str]) {
        std::process::Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "person"])
            .args(args)
            .status()
            .unwrap();
    }

    /// Claude Code shows troupe's questions as a form: the box ticked with Space, then
    /// Accept. Each key is pressed once the screen shows the one before it took.
    async fn accept_form(&self) {
        let step = |key: &'static str, shows: &'static str| async move {
            self.keys(&[key]);
            support::eventually(shows, Duration::from_secs(10), || async {
                self.screen().contains(shows).then_some(())
            })
            .await;
        };
        step("Space", "☒").await;
        step("Down", "❯ Accept").await;
        self.keys(&["Enter"]);
    }

    fn say(&self, text: &str) {
        self.keys(&["-l", text]);
        self.keys(&["Enter"]);
    }

    /// Waits until `found` gives something, typing `call` again when the session's MCP
    /// client was not connected yet, and pressing Enter again when the TUI dropped it.
    async fn until<T, F, Fut>(&self, what: &str, call: &str, mut found: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = std::time::Instant::now();
        let mut last_enter = std::time::Instant::now();
        let mut tried = 0;
        loop {
            if let Some(v) = found().await {
                return v;
            }
            let now = self.screen();
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no {what}; the person's screen:\n{now}"
            );
            // The TUI can drop an Enter that lands right after it starts: the text then
            // still sits in its input box.
            if last_enter.elapsed() > Duration::from_secs(1)
                && troupe::agents::claude::input_box(&now).is_some_and(|t| !t.is_empty())
            {
                self.keys(&["Enter"]);
                last_enter = std::time::Instant::now();
            }
            // Its MCP client connects after the TUI is up: a call made before finds no tool.
            let misses = now.matches("No such tool available").count();
            if misses > tried {
                tried = misses;
                self.say(call);
                last_enter = std::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The person's folder, trusted by their Claude Code as after its first start.
fn trusted_project(h: &Harness, name: &str) -> std::path::PathBuf {
    let project = h.dir.path().join(name);
    std::fs::create_dir_all(&project).unwrap();
    let project = project.canonicalize().unwrap();
    let state_file = h.home.join(".claude.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    state["projects"][project.display().to_string()] = json!({ "hasTrustDialogAccepted": true });
    std::fs::write(&state_file, state.to_string()).unwrap();
    project
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The person's own Claude Code, in `project`, with troupe added over HTTP as `troupe mcp
/// install` adds it.
fn person_claude(h: &Harness, project: &std::path::Path) -> Terminal {
    let mcp = h.dir.path().join("person-mcp.json");
    let config = json!({ "mcpServers": { "troupe": {
        "type": "http",
        "url": format!("{}/mcp", h.server().url()),
        "headers": { "Authorization": format!("Bearer {}", h.server().token()) }
    }}});
    std::fs::write(&mcp, config.to_string()).unwrap();
    let mut command = vec![support::clis::claude_bin()];
    command.extend(argv(&SKIP));
    command.extend(argv(&["--mcp-config", mcp.to_str().unwrap()]));
    Terminal::open(h, project, &[], &command)
}

const SKIP: [&str; 3] = [
    "--dangerously-skip-permissions",
    "--settings",
    r#"{"skipDangerousModePermissionPrompt": true}"#,
];

/// The person's own Claude Code session (not one troupe started) spawns without naming a
/// directory: troupe asks the client for its roots, and the helper works where the person does.
#[tokio::test(flavor = "multi_thread")]
async fn a_helper_of_the_person_works_in_the_person_own_directory() {
    let h = Harness::start().await;
    let project = trusted_project(&h, "my project");
    let term = person_claude(&h, &project);
    let call = r#"CALL_TOOL mcp__troupe__spawn_claude {"role": "tester", "name": "helper"}"#;
    term.say(call);
    let helper = term
        .until("helper", call, || async {
            Instance::list(h.pool(), false)
                .await
                .unwrap()
                .into_iter()
                .find(|i| i.name == "helper" && i.state == "idle")
        })
        .await;
    assert_eq!(helper.workdir, project.display().to_string());
    assert_eq!(helper.parent_id, None);
    let (era, client) = h.person_client();
    assert_eq!(era, support::clis::claude_era(), "{client}");
}

/// `troupe chat PROMPT`: the person's own claude, attached as a root instance. Its spawn is
/// its child, working in its directory; its tokens are in the ledger; it ends with the CLI.
#[tokio::test(flavor = "multi_thread")]
async fn troupe_chat_attaches_the_person_session_as_the_root() {
    let h = Harness::start().await;
    let project = trusted_project(&h, "repo");
    let r = h
        .call(
            "create_team",
            json!({ "name": "crew", "members": [{ "role": "reviewer", "name": "rita" }] }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let call = r#"CALL_TOOL mcp__troupe__spawn_claude {"role": "tester", "name": "kid"}"#;
    let mut command = argv(&[
        env!("CARGO_BIN_EXE_troupe"),
        "chat",
        "--team",
        "crew",
        "--context",
        "the login page",
        call,
        "--",
    ]);
    command.extend(argv(&SKIP));
    let env = [
        ("TROUPE_URL", h.server().url()),
        ("TROUPE_DATA_DIR", h.data_dir.display().to_string()),
        ("TROUPE_CLAUDE_BIN", support::clis::claude_bin()),
    ];
    let term = Terminal::open(&h, &project, &env, &command);
    let kid = term
        .until("spawned child", call, || async {
            Instance::list(h.pool(), false)
                .await
                .unwrap()
                .into_iter()
                .find(|i| i.name == "kid" && i.state == "idle")
        })
        .await;
    let root_id = kid
        .parent_id
        .clone()
        .expect("the chat's spawn has a parent");
    let root = Instance::find(h.pool(), &root_id).await.unwrap().unwrap();
    assert_eq!(root.state, "attached", "{}", root.state_reason);
    assert_eq!(root.role, "orchestrator");
    assert_eq!(kid.workdir, project.display().to_string());
    assert_eq!(root.workdir, project.display().to_string());
    let tree = h.call("get_instance_tree", json!({})).await;
    let text = tree.structured["text"].as_str().unwrap();
    assert!(text.contains(&root_id) && text.contains(&kid.id), "{text}");
    // The team was started first and is named, with the guidance and the context.
    let team = h.call("get_team", json!({ "name": "crew" })).await;
    let rita = team.structured["members"][0]["instance_id"]
        .as_str()
        .expect("the team was started")
        .to_string();
    let request = h
        .model
        .wait_for_request(
            |r| {
                r["system"]
                    .to_string()
                    .contains("You can run other Claude Code instances")
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let system = request["system"].to_string();
    assert!(
        system.contains("You can run other Claude Code instances"),
        "{system}"
    );
    assert!(system.contains("Context: the login page"), "{system}");
    assert!(
        system.contains(&format!("- rita (reviewer, sonnet): instance_id {rita}")),
        "{system}"
    );
    support::eventually(
        "the chat's usage in the ledger",
        Duration::from_secs(15),
        || async {
            let rows = troupe::db::usage::UsageRecord::for_instance(h.pool(), &root_id)
                .await
                .unwrap();
            (!rows.is_empty()).then_some(())
        },
    )
    .await;

    term.say("/exit");
    support::eventually("the chat to end", Duration::from_secs(30), || async {
        let root = Instance::find(h.pool(), &root_id).await.unwrap().unwrap();
        (root.state == "terminated").then_some(())
    })
    .await;
}

/// require_approval, with the real Claude Code as the person's client: it declares
/// elicitation, so troupe's question appears in the person's TUI, and their answer decides.
#[tokio::test(flavor = "multi_thread")]
async fn the_person_approves_a_spawn_in_their_own_claude_code() {
    let h = Harness::start().await;
    h.call(
        "configure_orchestration",
        json!({ "require_approval": ["spawn_claude"] }),
    )
    .await;
    let project = trusted_project(&h, "approvals");
    let term = person_claude(&h, &project);
    let call = r#"CALL_TOOL mcp__troupe__spawn_claude {"role": "tester", "name": "approved"}"#;
    term.say(call);
    let question = term
        .until("troupe's question on the person's screen", call, || async {
            let s = term.screen();
            s.contains("allow spawn_claude").then_some(s)
        })
        .await;
    assert!(question.contains("requests your input"), "{question}");
    term.accept_form().await;
    let helper = support::eventually("the approved helper", Duration::from_secs(60), || async {
        let found = Instance::list(h.pool(), false)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.name == "approved" && i.state == "idle");
        if found.is_none() && term.screen().contains("❯ Accept") {
            // The TUI dropped the Enter: the form is still there.
            term.keys(&["Enter"]);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        found
    })
    .await;
    assert_eq!(helper.parent_id, None);
    let granted = troupe::db::audit::of_kind(h.pool(), "approval.granted")
        .await
        .unwrap();
    assert!(granted[0].detail.contains("elicitation"), "{granted:?}");
    let (era, client) = h.person_client();
    assert_eq!(era, support::clis::claude_era(), "{client}");
}

/// A helper in the asking permission mode wants to run a command while the person's own
/// Claude Code waits for its answer: the question appears in the person's TUI (on the
/// session, or, in the stateless era, as the wait's `input_required`), their answer decides,
/// and the wait goes on to the helper's answer.
#[tokio::test(flavor = "multi_thread")]
async fn the_person_is_asked_about_a_helpers_permission_in_their_own_claude_code() {
    let h = Harness::start().await;
    let project = trusted_project(&h, "asks");
    let kid = h
        .spawn(json!({
            "role": "developer", "name": "careful", "model": "haiku",
            "permission_mode": "default", "project_dir": project.display().to_string(),
        }))
        .await;
    let term = person_claude(&h, &project);
    let made = project.join("asked.txt");
    let work = format!(
        "CALL_TOOL Bash {}",
        json!({ "command": format!("touch {}", made.display()), "description": "make a file" })
    );
    let call = format!(
        "CALL_TOOL mcp__troupe__send_to_instance {}",
        json!({ "instance_id": kid, "message": work })
    );
    term.say(&call);
    let question = term
        .until(
            "troupe's permission question on the person's screen",
            &call,
            || async {
                let s = term.screen();
                s.contains("asks to use Bash").then_some(s)
            },
        )
        .await;
    assert!(question.contains(&kid), "{question}");
    assert!(!made.exists(), "nothing runs before the person decides");
    term.accept_form().await;
    support::eventually("the allowed command", Duration::from_secs(60), || async {
        if !made.exists() && term.screen().contains("❯ Accept") {
            term.keys(&["Enter"]);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        made.exists().then_some(())
    })
    .await;
    let decided = troupe::db::audit::of_kind(h.pool(), "permission.decided")
        .await
        .unwrap();
    assert!(decided[0].detail.contains("allow"), "{decided:?}");
    // The person's wait went on to the helper's answer, which their model then read.
    let answered = r#"\"status\":\"answered\""#;
    h.model
        .wait_for_request(
            |r| r["messages"].to_string().contains(answered),
            Duration::from_secs(60),
        )
        .await
        .expect("the helper's answer reaches the person's model");
    let (era, client) = h.person_client();
    assert_eq!(era, support::clis::claude_era(), "{client}");
}

/// A helper's call needs the person's approval (require_approval) while the person's own
/// Claude Code waits for the helper's answer: the question appears in the person's TUI, their
/// answer lets the helper's call run, and the wait goes on to the helper's answer.
#[tokio::test(flavor = "multi_thread")]
async fn the_person_approves_a_helpers_call_in_their_own_claude_code() {
    let h = Harness::start().await;
    let project = trusted_project(&h, "approves");
    let kid = h
        .spawn(json!({ "role": "architect", "name": "planner", "model": "haiku" }))
        .await;
    h.call(
        "configure_orchestration",
        json!({ "require_approval": ["spawn_claude"] }),
    )
    .await;
    let term = person_claude(&h, &project);
    let work = format!(
        "CALL_TOOL mcp__troupe__spawn_claude {}",
        json!({ "role": "tester", "name": "grandkid", "model": "haiku" })
    );
    let call = format!(
        "CALL_TOOL mcp__troupe__send_to_instance {}",
        json!({ "instance_id": kid, "message": work })
    );
    term.say(&call);
    let question = term
        .until(
            "troupe's approval question on the person's screen",
            &call,
            || async {
                let s = term.screen();
                s.contains("asks to run spawn_claude").then_some(s)
            },
        )
        .await;
    assert!(question.contains(&kid), "{question}");
    let none = Instance::list(h.pool(), false).await.unwrap();
    assert!(
        !none.iter().any(|i| i.name == "grandkid"),
        "nothing runs before the person answers"
    );
    term.accept_form().await;
    let grandkid = support::eventually("the approved spawn", Duration::from_secs(60), || async {
        let found = Instance::list(h.pool(), false)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.name == "grandkid");
        if found.is_none() && term.screen().contains("❯ Accept") {
            term.keys(&["Enter"]);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        found
    })
    .await;
    assert_eq!(grandkid.parent_id.as_deref(), Some(kid.as_str()));
    let granted = troupe::db::audit::of_kind(h.pool(), "approval.granted")
        .await
        .unwrap();
    assert!(
        granted[0].detail.contains("\"how\":\"form\""),
        "{granted:?}"
    );
    // The person's wait went on to the helper's answer, which their model then read.
    let answered = r#"\"status\":\"answered\""#;
    h.model
        .wait_for_request(
            |r| r["messages"].to_string().contains(answered),
            Duration::from_secs(90),
        )
        .await
        .expect("the helper's answer reaches the person's model");
    let (era, client) = h.person_client();
    assert_eq!(era, support::clis::claude_era(), "{client}");
}

/// The person's own client may not bear a long wait (Claude Code 2.1.212 and later moves a
/// tool call past 2 minutes to the background): troupe answers before the client's limit,
/// here set to 3 s, with the message id and how to wait on, and the message goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_wait_longer_than_the_persons_client_bears_answers_with_the_next_step() {
    let h = Harness::start_with(|c| c.person_wait = Some(Duration::from_secs(3))).await;
    let project = trusted_project(&h, "long");
    let kid = h
        .spawn(json!({ "role": "tester", "name": "slow", "model": "haiku" }))
        .await;
    let term = person_claude(&h, &project);
    let call = format!(
        "CALL_TOOL mcp__troupe__send_to_instance {}",
        json!({ "instance_id": kid, "message": "count slowly to 20", "timeout_seconds": 60 })
    );
    term.say(&call);
    let request = term
        .until(
            "the capped wait's answer to the person's model",
            &call,
            || async {
                h.model
                    .wait_for_request(
                        |r| r["messages"].to_string().contains("still working after 3s"),
                        Duration::from_millis(100),
                    )
                    .await
            },
        )
        .await;
    let said = request["messages"].to_string();
    assert!(said.contains("get_message with message_id"), "{said}");
    assert!(
        said.contains("57s remain of the wait you asked for"),
        "{said}"
    );
    assert!(said.contains("\\\"status\\\":\\\"started\\\""), "{said}");
    // The message was not given up: the instance finishes it.
    support::eventually("the slow answer", Duration::from_secs(60), || async {
        let page = troupe::db::pages::messages(h.pool(), &kid, None, 100)
            .await
            .unwrap();
        page.rows
            .iter()
            .any(|m| {
                m.state == "answered" && m.response.as_deref().is_some_and(|r| r.contains("20"))
            })
            .then_some(())
    })
    .await;
}
