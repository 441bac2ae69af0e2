//! troupe drives the scripted Claude Code (`examples/scripted_cli.rs`) as it drives the real
//! 2.1.328, end to end: the real server, real tmux on a socket of its own, SQLite in a temp
//! dir. What a benchmark of many instances relies on is checked here: instances start and
//! become ready, answers come back with the scripted usage in the ledger, interrupts stop a
//! turn and the conversation goes on, an idle instance costs no CPU, terminate ends it.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::{Harness, eventually, scripted};
use troupe::db::instances::Instance;
use troupe::db::interrupts::Interrupt;
use troupe::db::messages::Message;
use troupe::db::output::OutputChunk;
use troupe::db::usage::UsageRecord;

/// The usage every scripted answer reports: (input, output, cache creation, cache read).
const USAGE: (i64, i64, i64, i64) = (1234, 56, 78, 910);

/// Sends a message and waits for its answer, failing the test on an error.
async fn ask(h: &Harness, id: &str, text: &str) -> serde_json::Value {
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": text }),
        )
        .await;
    assert!(!r.is_error, "send_to_instance failed: {}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.text);
    r.structured
}

/// Sends a message without waiting, and returns its id once the CLI has taken it (its
/// prompt is in the transcript): an interrupt then finds a turn to stop.
async fn start(h: &Harness, id: &str, text: &str) -> String {
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": text, "wait_for_response": false }),
        )
        .await;
    assert!(!r.is_error, "send_to_instance failed: {}", r.text);
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    eventually(
        "the CLI to take the message",
        Duration::from_secs(10),
        || async {
            let m = Message::find(h.pool(), &message_id).await.unwrap().unwrap();
            (m.state == "started").then_some(())
        },
    )
    .await;
    message_id
}

#[tokio::test(flavor = "multi_thread")]
async fn troupe_drives_scripted_instances_like_claude_code() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("scripted.log");
    let (input, output, cache_creation, cache_read) = USAGE;
    let h = scripted::harness(&[
        ("SCRIPTED_CLI_DELAY_MS", "100"),
        ("SCRIPTED_CLI_INPUT_TOKENS", &input.to_string()),
        ("SCRIPTED_CLI_OUTPUT_TOKENS", &output.to_string()),
        (
            "SCRIPTED_CLI_CACHE_CREATION_TOKENS",
            &cache_creation.to_string(),
        ),
        ("SCRIPTED_CLI_CACHE_READ_TOKENS", &cache_read.to_string()),
        // Hook and MCP failures would be written here.
        ("SCRIPTED_CLI_LOG", log.to_str().unwrap()),
    ])
    .await;

    // troupe takes it for the tested version.
    let printed = std::process::Command::new(scripted::bin())
        .arg("--version")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    let assessed = troupe::agents::claude::TESTED.assess(&printed);
    assert!(assessed.is_tested(), "{assessed}");

    // Three instances, started side by side; each is ready when its spawn returns.
    let (one, two, three) = tokio::join!(
        h.spawn(json!({ "role": "developer", "name": "one" })),
        h.spawn(json!({ "role": "developer", "name": "two" })),
        h.spawn(json!({ "role": "developer", "name": "three" })),
    );
    let ids = [one, two, three];
    let mut sessions = Vec::new();
    for id in &ids {
        let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
        assert_eq!(inst.state, "idle", "{id}: {}", inst.state_reason);
        // Its SessionStart hook named the transcript where troupe's own rule puts it.
        let expected = troupe::agents::claude::transcript_path(
            &h.home,
            Path::new(&inst.workdir),
            &inst.agent_session_id,
        );
        assert_eq!(
            inst.transcript_path.as_deref(),
            Some(expected.to_str().unwrap())
        );
        sessions.push(inst.tmux_session);
    }
    // A list says who each one is and what it is doing, one line each; the details are
    // get_instance_status's. The person spawned these three, so none names a parent.
    let list = h.call("list_instances", json!({})).await;
    assert_eq!(list.structured["count"], 3, "{}", list.text);
    for entry in list.structured["instances"].as_array().unwrap() {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "agent",
                "host",
                "instance_id",
                "model",
                "name",
                "role",
                "state"
            ],
            "{entry}"
        );
    }
    for id in &ids {
        let line = list.text.lines().find(|l| l.contains(id.as_str()));
        assert!(
            line.is_some_and(|l| l.contains(": idle") && l.contains("developer")),
            "{id} not listed as an idle developer:\n{}",
            list.text
        );
    }
    let status = h
        .call("get_instance_status", json!({ "instance_id": &ids[0] }))
        .await;
    assert!(
        status.structured["instances"][0]["workdir"].is_string(),
        "{}",
        status.text
    );
    // Each one's MCP client listed troupe's tools, speaking as 2.1.328 does.
    let clients = h.server().supervisor.mcp_clients().list();
    for id in &ids {
        assert!(
            clients
                .iter()
                .any(|c| c.instance_id.as_deref() == Some(id.as_str())
                    && c.client == "claude-code 2.1.328"
                    && c.era == troupe::mcp::clients::Era::Stateless),
            "{id} not among {clients:?}"
        );
    }

    // Answers, side by side, each with the scripted usage in the ledger at its price.
    let texts: Vec<String> = ids.iter().map(|id| format!("hello {id}")).collect();
    let answers =
        futures::future::join_all(ids.iter().zip(&texts).map(|(id, text)| ask(&h, id, text))).await;
    for (id, answer) in ids.iter().zip(answers) {
        assert_eq!(answer["response"], format!("ECHO: hello {id}"));
        let message_id = answer["message_id"].as_str().unwrap();
        let m = Message::find(h.pool(), message_id).await.unwrap().unwrap();
        assert!(m.prompt_id.is_some(), "the transcript's prompt id ties it");
        h.wait_for_transcript(id, message_id).await;
        let rows = UsageRecord::for_instance(h.pool(), id).await.unwrap();
        let row = rows
            .iter()
            .find(|u| u.message_id.as_deref() == Some(message_id))
            .unwrap();
        assert_eq!(
            (
                row.input_tokens,
                row.output_tokens,
                row.cache_creation_tokens,
                row.cache_read_tokens
            ),
            USAGE
        );
        assert_eq!(row.model, "claude-sonnet-5-5");
        assert!(row.cost_micros.is_some_and(|c| c > 0), "{row:?}");
        let chunks = OutputChunk::count_for_message(h.pool(), message_id)
            .await
            .unwrap();
        assert!(chunks >= 2, "the prompt and the reply are output: {chunks}");
    }

    // A long turn is interrupted: the transcript's interrupted record confirms it, and the
    // conversation goes on.
    let long = start(&h, &ids[0], "SCRIPTED_DELAY_MS=60000 count slowly").await;

    // Status of all of them (read in a few grouped queries) and of each one agree: the open
    // message where it is, each one's usage from its one answer so far.
    let all = h.call("get_instance_status", json!({})).await;
    assert!(!all.is_error, "{}", all.text);
    for id in &ids {
        let listed = all.structured["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is not in {}", all.text))
            .clone();
        let open: Vec<&str> = if *id == ids[0] { vec![&long] } else { vec![] };
        assert_eq!(listed["open_messages"], json!(open), "{id}");
        assert_eq!(listed["pending_messages"], open.len(), "{id}");
        assert_eq!(listed["usage"]["input_tokens"], USAGE.0, "{id}");
        let one = h
            .call("get_instance_status", json!({ "instance_id": id }))
            .await;
        // Only the state's time may have moved between the two calls.
        let steady = |mut v: serde_json::Value| {
            v.as_object_mut().unwrap().remove("state_since");
            v
        };
        assert_eq!(
            steady(one.structured["instances"][0].clone()),
            steady(listed),
            "{id}"
        );
    }
    let r = h
        .call("interrupt_instance", json!({ "instance_id": ids[0] }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["outcome"], "confirmed", "{}", r.text);
    assert_eq!(r.structured["message_id"], long.as_str());
    let m = Message::find(h.pool(), &long).await.unwrap().unwrap();
    assert_eq!(m.state, "interrupted");
    let interrupts = Interrupt::for_instance(h.pool(), &ids[0]).await.unwrap();
    assert_eq!(interrupts.len(), 1);
    assert!(interrupts[0].confirmed_at.is_some());
    let inst = Instance::find(h.pool(), &ids[0]).await.unwrap().unwrap();
    assert_eq!(inst.state, "idle");
    let answer = ask(&h, &ids[0], "after the interrupt").await;
    assert_eq!(answer["response"], "ECHO: after the interrupt");

    // Before the first token, Escape gives the prompt back to the input box (as 2.1.328
    // does); troupe sees it on the screen, empties the box, and the next message arrives
    // alone.
    let early = start(
        &h,
        &ids[1],
        "SCRIPTED_FIRST_TOKEN_MS=60000 SCRIPTED_DELAY_MS=60000 not yet",
    )
    .await;
    let r = h
        .call("interrupt_instance", json!({ "instance_id": ids[1] }))
        .await;
    assert_eq!(r.structured["outcome"], "confirmed", "{}", r.text);
    let m = Message::find(h.pool(), &early).await.unwrap().unwrap();
    assert_eq!(m.state, "interrupted");
    let answer = ask(&h, &ids[1], "a fresh start").await;
    assert_eq!(answer["response"], "ECHO: a fresh start");

    // Idle, the CLI uses no CPU, and little memory.
    let pid = scripted::pane_pid(&h, &sessions[2]);
    let before = scripted::cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = scripted::cpu_ticks(pid) - before;
    let rss = scripted::rss_kib(pid);
    eprintln!("idle scripted CLI: {used} clock ticks in 2 s, {rss} KiB resident");
    assert!(used <= 1, "{used} ticks of CPU in 2 s of idling");
    assert!(rss < 32 * 1024, "{rss} KiB resident");

    // Every hook and MCP request so far got through.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.is_empty(), "the scripted CLIs logged:\n{logged}");

    // Terminate ends each one: its row, its tmux session, its process.
    for (id, session) in ids.iter().zip(&sessions) {
        let pid = scripted::pane_pid(&h, session);
        let r = h
            .call("terminate_instance", json!({ "instance_id": id }))
            .await;
        assert!(!r.is_error, "{}", r.text);
        assert_eq!(r.structured["success"], true);
        let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
        assert_eq!(inst.state, "terminated");
        assert!(!h.tmux_has_session(session));
        eventually(
            "the CLI's process to end",
            Duration::from_secs(5),
            || async { (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()) },
        )
        .await;
    }
}
