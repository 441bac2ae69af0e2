//! `troupe migrate`: a registry a real server wrote on SQLite, copied into PostgreSQL, reads
//! the same there and carries on. Needs TROUPE_TEST_PG (`.ci/run` sets it):
//! `TROUPE_TEST_PG=postgres://… cargo test --test migrate -- --ignored`.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::json;
use support::fake_model::{conversation_text, last_user_text};
use support::{Harness, McpClient};

async fn ask(h: &Harness, id: &str, text: &str) {
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": text }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    h.wait_for_transcript(id, r.structured["message_id"].as_str().unwrap())
        .await;
}

fn troupe(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn report(db: &str, args: &[&str]) -> String {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json", "--db", db]);
    let o = troupe(&all);
    assert!(o.status.success(), "troupe {all:?}: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn migrate(from: &Path, to: &str, replace: bool) -> Output {
    let from = from.to_str().unwrap();
    let mut args = vec!["migrate", "--from", from, "--to", to];
    if replace {
        args.push("--replace");
    }
    troupe(&args)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn a_team_moved_to_postgresql_reads_the_same_and_resumes_there() {
    // The registry starts on SQLite; the harness's PostgreSQL database is the empty target.
    let mut h = Harness::start_with(|c| c.db_url = None).await;
    let url = h.db_url.clone().expect("TROUPE_TEST_PG names a server");
    let file = h.data_dir.join("troupe.db");
    assert!(h.pool().as_sqlite().is_some());

    let r = h
        .call(
            "create_team",
            json!({
                "name": "movers",
                "members": [
                    { "role": "developer", "model": "sonnet" },
                    { "role": "tester", "model": "haiku" }
                ]
            }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h.call("start_team", json!({ "name": "movers" })).await;
    assert!(!r.is_error, "{}", r.text);
    let members: Vec<(String, String)> = r.structured["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["instance_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, id) in &members {
        ask(&h, id, &format!("{name}: the code word is quince")).await;
    }
    // Everything stops: the server and every tmux session.
    h.stop_server().await;
    h.kill_tmux();

    let o = migrate(&file, &url, false);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(said.contains("row counts agree"), "{said}");
    assert!(said.contains("instances"), "{said}");

    // The reports agree to the micro-dollar, whichever side they read.
    let sqlite = file.to_str().unwrap();
    for args in [
        &["cost", "--by", "instance"][..],
        &["cost", "--by", "model"],
        &["cost", "--by", "team"],
        &["cost", "--by", "message"],
        &["audit"],
    ] {
        let (a, b) = (report(sqlite, args), report(&url, args));
        assert_eq!(a, b, "troupe report {args:?}");
        assert!(a.len() > 10, "{a}");
    }
    let by_instance: serde_json::Value =
        serde_json::from_str(&report(&url, &["cost", "--by", "instance"])).unwrap();
    assert_eq!(by_instance.as_array().unwrap().len(), 2, "{by_instance}");

    // A target that holds a registry is refused, unless told.
    let o = migrate(&file, &url, false);
    assert!(!o.status.success());
    let said = text(&o);
    assert!(said.contains("already holds a registry"), "{said}");
    assert!(said.contains("--replace"), "{said}");
    let o = migrate(&file, &url, true);
    assert!(o.status.success(), "{}", text(&o));

    // The server on PostgreSQL, with the same data directory: the team comes back with its
    // conversations.
    let mut config = h.config();
    config.db_url = Some(url.clone());
    config.bind = h.addr.unwrap();
    let server = troupe::Server::start(config).await.expect("server starts");
    assert!(server.supervisor.pool().as_sqlite().is_none());
    h.mcp = McpClient::user(&server).await;
    h.server = Some(server);
    let r = h.call("resume_team", json!({ "name": "movers" })).await;
    assert!(!r.is_error, "{}", r.text);
    for m in r.structured["members"].as_array().unwrap() {
        assert_eq!(m["state"], "idle", "{m}");
    }
    for (name, id) in &members {
        let question = format!("{name}, what is the code word");
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
            conversation_text(&request).contains(&format!("{name}: the code word is quince")),
            "{name} remembers"
        );
    }
}
