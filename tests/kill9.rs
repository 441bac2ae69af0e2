//! `troupe serve` as a real process, killed with SIGKILL mid-answer and started again: nothing
//! the user did is lost, and a clean SIGTERM leaves instances running unless told otherwise.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_model::last_user_text;
use support::process::{ServeProcess, ServeSpec};
use support::{FakeModel, instance_env, seed_home, unique_socket};

fn has_session(socket: &str, name: &str) -> bool {
    std::process::Command::new("tmux")
        .args(["-L", socket, "has-session", "-t", &format!("={name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_answer_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    seed_home(&home);
    let model = FakeModel::start().await;
    let socket = unique_socket("k9");
    let _tmux = support::TmuxServer(socket.clone());
    let spec = ServeSpec::new(dir.path(), &socket, instance_env(&home, &model.base_url())).await;

    let server = ServeProcess::start(&spec).await;
    let mcp = server.mcp().await;
    let spawn = |name: &'static str| {
        let mcp = &mcp;
        async move {
            let r = mcp
                .call_tool("spawn_claude", json!({ "role": "tester", "name": name }))
                .await;
            assert!(!r.is_error, "{}", r.text);
            r.structured["instance_id"].as_str().unwrap().to_string()
        }
    };
    let idle = spawn("idle").await;
    let busy = spawn("busy").await;
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": busy, "message": "please count slowly to 8", "wait_for_response": false }),
        )
        .await;
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    model
        .wait_for_request(
            |r| last_user_text(r).ends_with("count slowly to 8"),
            Duration::from_secs(30),
        )
        .await
        .expect("the model got the question");

    server.kill9();
    let server = ServeProcess::start(&spec).await;
    let mcp = server.mcp().await;

    let list = mcp.call_tool("get_instance_status", json!({})).await;
    assert!(!list.is_error, "{}", list.text);
    let instances = list.structured["instances"].as_array().unwrap();
    let state_of = |id: &str| {
        instances
            .iter()
            .find(|i| i["instance_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed after the restart"))["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state_of(&idle), "idle");
    let busy_state = state_of(&busy);
    let m = mcp
        .call_tool("get_message", json!({ "message_id": message_id }))
        .await;
    if m.structured["status"] != "answered" {
        assert_eq!(
            busy_state,
            "busy",
            "a turn still running is reported busy\n{}",
            ServeProcess::log_tail(&spec, 60)
        );
    }

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

    // SIGTERM: a clean stop leaves the instances running...
    let status = server.terminate();
    assert!(status.success());
    assert!(has_session(&socket, &format!("troupe-{idle}")));

    // ...unless asked to end them.
    let mut ending = spec.clone();
    ending.extra_args.push("--terminate-on-exit".into());
    let server = ServeProcess::start(&ending).await;
    let mcp = server.mcp().await;
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": idle, "message": "still here?" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: still here?", "{}", r.text);
    assert!(server.terminate().success());
    assert!(!has_session(&socket, &format!("troupe-{idle}")));
    assert!(!has_session(&socket, &format!("troupe-{busy}")));
}
