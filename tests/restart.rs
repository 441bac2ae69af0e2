//! Restart safety: instances outlive troupe, and troupe finds them again — reattached when
//! their CLI still runs, resumed with the CLI's own --resume when it does not.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Harness, eventually, fake_model::conversation_text, fake_model::last_user_text};
use troupe::db::audit;
use troupe::db::instances::Instance;

async fn state(h: &Harness, id: &str) -> Instance {
    Instance::find(h.pool(), id).await.unwrap().unwrap()
}

async fn ask(h: &Harness, id: &str, text: &str) -> serde_json::Value {
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": text }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    // The Stop hook answers before the CLI has written the turn to its transcript; these
    // tests kill the CLI next, and a conversation cut before its reply is not this test's
    // subject.
    let message_id = r.structured["message_id"].as_str().unwrap();
    h.wait_for_transcript(id, message_id).await;
    r.structured
}

#[tokio::test(flavor = "multi_thread")]
async fn after_tmux_is_killed_a_restart_resumes_the_conversation() {
    let mut h = Harness::start().await;
    let id = h.spawn(json!({ "role": "developer" })).await;
    let first = ask(&h, &id, "remember the word pineapple").await;
    assert_eq!(
        first["response"], "ECHO: remember the word pineapple",
        "{first}"
    );

    h.stop_server().await;
    h.kill_tmux();
    h.start_server().await;

    // Idle again once its CLI is back and troupe has read what it wrote: waited for, not
    // looked at once (under load a look right after the restart found it busy).
    let inst = eventually(
        "the resumed instance idle",
        Duration::from_secs(10),
        || async {
            let inst = state(&h, &id).await;
            (inst.state == "idle").then_some(inst)
        },
    )
    .await;
    assert!(h.tmux_has_session(&inst.tmux_session));
    let events = audit::for_instance(h.pool(), &id).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "instance.resumed"),
        "{events:?}"
    );

    let answer = ask(&h, &id, "which word did I ask you to remember").await;
    assert_eq!(
        answer["response"],
        "ECHO: which word did I ask you to remember"
    );
    let request = h
        .model
        .wait_for_request(
            |r| last_user_text(r).ends_with("which word did I ask you to remember"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(
        conversation_text(&request).contains("remember the word pineapple"),
        "the resumed CLI sent the earlier conversation"
    );
}

/// A CLI killed after its reply but before it wrote the turn's end leaves that turn open in
/// its transcript. The resumed instance reads it as finished (its message was answered) and
/// is idle, whichever comes first at its start: its session's hook or its MCP client's lists.
#[tokio::test(flavor = "multi_thread")]
async fn a_turn_cut_off_before_its_end_line_leaves_the_resumed_instance_idle() {
    let mut h = Harness::start().await;
    let id = h.spawn(json!({ "role": "developer" })).await;
    ask(&h, &id, "remember the word mango").await;
    let path = state(&h, &id).await.transcript_path.unwrap();

    h.stop_server().await;
    h.kill_tmux();
    // What the killed process would have left: nothing after the reply (on a busy machine
    // the kill may have cut it there already).
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let reply = lines
        .iter()
        .rposition(|l| l.contains("\"ECHO: remember the word mango\""))
        .expect("the reply in the transcript");
    std::fs::write(&path, lines[..=reply].join("\n") + "\n").unwrap();
    h.start_server().await;

    eventually(
        "the resumed instance idle",
        Duration::from_secs(10),
        || async { (state(&h, &id).await.state == "idle").then_some(()) },
    )
    .await;
    let answer = ask(&h, &id, "which fruit").await;
    assert_eq!(answer["response"], "ECHO: which fruit");
    assert_eq!(state(&h, &id).await.state, "idle");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_instance_is_reattached_and_a_turn_that_ended_meanwhile_is_recorded() {
    let mut h = Harness::start().await;
    let idle = h.spawn(json!({ "role": "tester", "name": "idle" })).await;
    let busy = h.spawn(json!({ "role": "tester", "name": "busy" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": busy, "message": "please count slowly to 6", "wait_for_response": false }),
        )
        .await;
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    h.model
        .wait_for_request(
            |r| last_user_text(r).ends_with("count slowly to 6"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();

    // troupe goes away mid-answer; the CLI keeps counting and finishes without it.
    h.stop_server().await;
    h.start_server().await;

    assert_eq!(state(&h, &idle).await.state, "idle");
    let r = h
        .call(
            "get_message",
            json!({ "message_id": message_id, "wait_seconds": 30 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    assert_eq!(
        r.structured["response"].as_str().unwrap().trim(),
        "1 2 3 4 5 6"
    );
    for id in [&idle, &busy] {
        let events = audit::for_instance(h.pool(), id).await.unwrap();
        assert!(
            events.iter().any(|e| e.kind == "instance.reattached"),
            "{id}: {events:?}"
        );
    }
    let _ = eventually(
        "busy instance idle again",
        Duration::from_secs(10),
        || async { (state(&h, &busy).await.state == "idle").then_some(()) },
    )
    .await;
    // Both still take work.
    assert_eq!(
        ask(&h, &idle, "still there").await["response"],
        "ECHO: still there"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_cannot_be_resumed_says_why() {
    let mut h = Harness::start().await;
    let id = h.spawn(json!({})).await;
    ask(&h, &id, "hello").await;
    let transcript = state(&h, &id).await.transcript_path.unwrap();

    h.stop_server().await;
    h.kill_tmux();
    std::fs::remove_file(&transcript).unwrap();
    h.start_server().await;

    let inst = state(&h, &id).await;
    assert_eq!(inst.state, "failed");
    // Either troupe sees the transcript is gone, or the CLI refuses to resume: both say so.
    assert!(
        inst.state_reason.contains("transcript")
            || inst.state_reason.contains("exited while starting"),
        "{}",
        inst.state_reason
    );
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "hi" }),
        )
        .await;
    assert!(r.is_error);
    assert!(r.text.contains("failed"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_instance_resumes_on_the_next_message() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "documenter" })).await;
    ask(&h, &id, "the code word is marmalade").await;

    let r = h
        .call("suspend_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let inst = state(&h, &id).await;
    assert_eq!(inst.state, "suspended");
    assert!(
        !h.tmux_has_session(&inst.tmux_session),
        "a suspended instance holds no process"
    );

    assert_eq!(
        ask(&h, &id, "what was the code word").await["response"],
        "ECHO: what was the code word"
    );
    let request = h
        .model
        .wait_for_request(
            |r| last_user_text(r).ends_with("what was the code word"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(conversation_text(&request).contains("the code word is marmalade"));
    assert_eq!(state(&h, &id).await.state, "idle");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_survives_a_full_stop_and_resumes_with_its_context() {
    let mut h = Harness::start().await;
    let r = h
        .call(
            "create_team",
            json!({
                "name": "dev-team",
                "description": "builds the login page",
                "members": [
                    { "role": "architect", "model": "opus" },
                    { "role": "developer", "model": "sonnet" },
                    { "role": "tester", "model": "haiku" }
                ]
            }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h.call("start_team", json!({ "name": "dev-team" })).await;
    assert!(!r.is_error, "{}", r.text);
    let members = r.structured["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 3);
    let ids: Vec<String> = members
        .iter()
        .map(|m| m["instance_id"].as_str().unwrap().to_string())
        .collect();
    for (m, id) in members.iter().zip(&ids) {
        assert_eq!(m["state"], "idle");
        ask(
            &h,
            id,
            &format!(
                "task for {}: design the login page",
                m["name"].as_str().unwrap()
            ),
        )
        .await;
    }

    // Everything stops: the server and every tmux session.
    h.stop_server().await;
    h.kill_tmux();
    h.start_server().await;

    let r = h.call("resume_team", json!({ "name": "dev-team" })).await;
    assert!(!r.is_error, "{}", r.text);
    for m in r.structured["members"].as_array().unwrap() {
        assert_eq!(m["state"], "idle", "{m}");
    }
    for (m, id) in members.iter().zip(&ids) {
        let question = format!("{} what was your task", m["name"].as_str().unwrap());
        ask(&h, id, &question).await;
        let q = question.clone();
        let request = h
            .model
            .wait_for_request(
                move |r| last_user_text(r).ends_with(&q),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert!(
            conversation_text(&request).contains(&format!(
                "task for {}: design the login page",
                m["name"].as_str().unwrap()
            )),
            "{} remembers its task",
            m["name"]
        );
    }

    let r = h.call("dissolve_team", json!({ "name": "dev-team" })).await;
    assert!(!r.is_error, "{}", r.text);
    for id in &ids {
        assert_eq!(state(&h, id).await.state, "terminated");
    }
}

/// A server that comes back on another port takes its instances along: a CLI that still runs
/// is configured for the old address, so troupe starts it again with --resume (its
/// conversation kept), and its hooks and troupe's tools reach the new address.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_on_another_port_moves_the_instances_along() {
    let mut h = Harness::start().await;
    let id = h.spawn(json!({ "role": "developer" })).await;
    ask(&h, &id, "remember the word kiwi").await;
    // One that has had no turn yet: there is no conversation for `--resume` to find.
    let unused = h.spawn(json!({ "role": "tester" })).await;
    let old = h.addr.unwrap();

    h.stop_server().await;
    h.addr = None;
    h.start_server().await;
    let new_url = h.server().url();
    assert_ne!(h.addr.unwrap().port(), old.port());

    eventually(
        "the instance started again for the new address",
        Duration::from_secs(60),
        || async {
            let creds = troupe::db::credentials::Credentials::find(h.pool(), &id)
                .await
                .unwrap()?;
            let inst = state(&h, &id).await;
            // The new credentials are written a moment before the CLI's files, while the
            // state still reads idle from before.
            let config = h.data_dir.join("instances").join(&id).join("mcp.json");
            let written = std::fs::read_to_string(config).is_ok_and(|t| t.contains(&new_url));
            (creds.server_url == new_url && inst.state == "idle" && written).then_some(())
        },
    )
    .await;
    let events = audit::for_instance(h.pool(), &id).await.unwrap();
    let relaunch = events
        .iter()
        .find(|e| e.kind == "instance.relaunch")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(relaunch.detail.contains(&new_url), "{}", relaunch.detail);
    let config_dir = h.data_dir.join("instances").join(&id);
    for file in ["mcp.json", "settings.json"] {
        let text = std::fs::read_to_string(config_dir.join(file)).unwrap();
        assert!(text.contains(&new_url), "{file}: {text}");
    }

    // The unused one starts afresh under its own id, for the new address, and works.
    eventually(
        "the unused instance started again for the new address",
        Duration::from_secs(60),
        || async {
            let creds = troupe::db::credentials::Credentials::find(h.pool(), &unused)
                .await
                .unwrap()?;
            let inst = state(&h, &unused).await;
            assert_ne!(inst.state, "failed", "{}", inst.state_reason);
            (creds.server_url == new_url && inst.state == "idle").then_some(())
        },
    )
    .await;
    let answer = ask(&h, &unused, "first words").await;
    assert_eq!(answer["response"], "ECHO: first words");

    // Its own tools reach troupe at the new address, in the same conversation.
    let answer = ask(&h, &id, "CALL_TOOL mcp__troupe__get_instance_status {}").await;
    let text = answer["response"].as_str().unwrap();
    assert!(
        text.contains(&format!("\"instance_id\":\"{id}\"")),
        "{text}"
    );
    let request = h
        .model
        .wait_for_request(
            |r| last_user_text(r).contains("get_instance_status"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(
        conversation_text(&request).contains("remember the word kiwi"),
        "the restarted CLI kept the conversation"
    );
}

/// `troupe team create --project-dir rel --start`: the relative path is the caller's, the team
/// keeps it, and its members work there, also when resumed after a full stop.
#[tokio::test(flavor = "multi_thread")]
async fn a_team_created_with_a_relative_directory_works_there() {
    let mut h = Harness::start().await;
    let project = h.dir.path().join("app");
    std::fs::create_dir_all(&project).unwrap();
    let project = project.canonicalize().unwrap().display().to_string();
    let troupe = |args: &[&str], url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(args)
            .current_dir(h.dir.path())
            .env("TROUPE_URL", url)
            .env("TROUPE_DATA_DIR", &h.data_dir)
            .env_remove("TROUPE_TOKEN")
            .output()
            .unwrap()
    };
    // A create that fails leaves nothing behind: the same name works right after.
    let r = h
        .call(
            "create_team",
            json!({ "name": "web", "members": [{ "role": "tester" }], "project_dir": "app" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("must be an absolute path"),
        "{}",
        r.text
    );
    let out = troupe(
        &[
            "team",
            "create",
            "web",
            "--members",
            "tester",
            "--project-dir",
            "nowhere",
        ],
        h.server().url(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
    let out = troupe(
        &[
            "team",
            "create",
            "web",
            "--members",
            "tester",
            "--project-dir",
            "app",
            "--start",
        ],
        h.server().url(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains(&format!("works in {project}")), "{shown}");
    let team = h.call("get_team", json!({ "name": "web" })).await;
    let id = team.structured["members"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(state(&h, &id).await.workdir, project);

    h.stop_server().await;
    h.kill_tmux();
    h.start_server().await;
    let r = h.call("resume_team", json!({ "name": "web" })).await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(state(&h, &id).await.workdir, project);
}
