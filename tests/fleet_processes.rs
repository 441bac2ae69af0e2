//! Three `troupe serve` processes, hosts a, b and c, on one PostgreSQL registry (their own
//! ports, data directories and tmux sockets): work placed on b through a, answered through c,
//! interrupted through a; b killed with SIGKILL mid-turn is lost to the others, and once
//! restarted takes its instance up again with the turn's answer recorded once. Needs
//! TROUPE_TEST_PG (`.ci/run` sets it):
//! `TROUPE_TEST_PG=postgres://… cargo test --test fleet_processes -- --ignored`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_model::last_user_text;
use support::process::{ServeProcess, ServeSpec, troupe_cli};
use support::{FakeModel, TmuxServer, eventually, instance_env, seed_home, unique_socket};

/// Host `name`'s spec: its own directory, port and tmux socket, on `db`.
async fn host_spec(
    root: &std::path::Path,
    name: &str,
    db: Option<&str>,
    env: &[(String, String)],
    extra: &[&str],
) -> (ServeSpec, TmuxServer) {
    let socket = unique_socket(name);
    let mut spec = ServeSpec::new(&root.join(name), &socket, env.to_vec()).await;
    if let Some(db) = db {
        spec.db = db.to_string();
    }
    spec.extra_args = ["--host", name, "--heartbeat", "1"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    (spec, TmuxServer(socket))
}

/// Sends `text` through `mcp` without waiting, and returns its message id once the model has
/// the question (its turn runs).
async fn ask(mcp: &support::McpClient, model: &FakeModel, id: &str, text: &str) -> String {
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": id, "message": text, "wait_for_response": false }),
        )
        .await;
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    let text = text.to_string();
    model
        .wait_for_request(
            move |r| last_user_text(r).ends_with(&text),
            Duration::from_secs(30),
        )
        .await
        .expect("the model got the question");
    message_id
}

/// A send to `id` through `mcp`, refused because host b is silent.
async fn refused_as_lost(mcp: &support::McpClient, id: &str, text: &str) {
    let r = mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": id, "message": text }),
        )
        .await;
    assert!(
        r.is_error
            && r.text
                .contains("runs on host b, which has been silent since"),
        "{}",
        r.text
    );
}

async fn instance(mcp: &support::McpClient, id: &str) -> Value {
    let r = mcp
        .call_tool("get_instance_status", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    r.structured["instances"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn three_hosts_share_the_work_and_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    seed_home(&home);
    let model = FakeModel::start().await;
    let env = instance_env(&home, &model.base_url());

    let (a_spec, _a_tmux) = host_spec(dir.path(), "a", None, &env, &[]).await;
    assert!(
        a_spec.db.starts_with("postgres"),
        "TROUPE_TEST_PG names a server"
    );
    let a = ServeProcess::start(&a_spec).await;
    // The others join with the fleet's token, as a person starts them.
    let mut env = env.clone();
    env.push(("TROUPE_TOKEN".into(), a.token()));
    let (b_spec, _b_tmux) = host_spec(
        dir.path(),
        "b",
        Some(&a_spec.db),
        &env,
        &["--max-instances", "1"],
    )
    .await;
    let (c_spec, _c_tmux) =
        host_spec(dir.path(), "c", Some(&a_spec.db), &env, &["--label", "gpu"]).await;
    let b = ServeProcess::start(&b_spec).await;
    let c = ServeProcess::start(&c_spec).await;
    // One token for the fleet: the one a saved.
    let a_mcp = a.mcp().await;
    let c_mcp = support::McpClient::with_token(&c.url, &a.token()).await;

    // Spawned through a onto b; answered through c.
    let r = a_mcp
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "name": "worker", "host": "b" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["instance"]["host"], "b", "{}", r.structured);
    let worker = r.structured["instance_id"].as_str().unwrap().to_string();
    let r = c_mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": worker, "message": "hello from c" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: hello from c", "{}", r.text);

    // b runs its one instance: full. The label puts the next one on c.
    let r = a_mcp
        .call_tool("spawn_claude", json!({ "role": "tester", "host": "b" }))
        .await;
    assert!(
        r.is_error
            && r.text
                .starts_with("host b is full: 1 of its 1 instances run"),
        "{}",
        r.text
    );
    assert!(r.text.contains("hosts with room: a ("), "{}", r.text);
    let r = a_mcp
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "name": "gpu-side", "host": "label:gpu" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["instance"]["host"], "c", "{}", r.structured);

    // An interrupt through a, confirmed by b.
    let stopped = ask(&a_mcp, &model, &worker, "please count slowly to 40").await;
    let r = a_mcp
        .call_tool("interrupt_instance", json!({ "instance_id": worker }))
        .await;
    assert_eq!(r.structured["outcome"], "confirmed", "{}", r.text);
    assert_eq!(r.structured["message_id"], stopped.as_str());

    // b killed mid-turn: within its heartbeat limit (3 s) a and c call its instance host_lost.
    let counting = ask(&a_mcp, &model, &worker, "please count slowly to 8").await;
    b.kill9();
    // Sent at once, while b's last heartbeat is still fresh: the act waits in the registry
    // until b is seen lost, then is withdrawn and the caller told, not held for the whole wait.
    let t = std::time::Instant::now();
    refused_as_lost(&c_mcp, &worker, "are you there?").await;
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    for mcp in [&a_mcp, &c_mcp] {
        eventually(
            "b's instance is host_lost",
            Duration::from_secs(10),
            || async { (instance(mcp, &worker).await["state"] == "host_lost").then_some(()) },
        )
        .await;
    }
    refused_as_lost(&c_mcp, &worker, "anyone there?").await;

    // b restarted: it takes its instance up again, and the turn's answer is recorded once.
    let b = ServeProcess::start(&b_spec).await;
    let m = a_mcp
        .call_tool(
            "get_message",
            json!({ "message_id": counting, "wait_seconds": 30 }),
        )
        .await;
    assert_eq!(
        m.structured["status"],
        "answered",
        "{}\n{}",
        m.structured,
        ServeProcess::log_tail(&b_spec, 40)
    );
    assert_eq!(
        m.structured["response"].as_str().unwrap().trim(),
        "1 2 3 4 5 6 7 8"
    );
    let (ok, hosts) = troupe_cli(&a.url, &a.token(), &["hosts"]);
    assert!(ok, "{hosts}");
    let b_line = hosts.lines().find(|l| l.starts_with("b ")).unwrap_or("");
    assert!(b_line.contains("up"), "{hosts}");
    eventually(
        "b's instance is idle again",
        Duration::from_secs(30),
        || async { (instance(&a_mcp, &worker).await["state"] == "idle").then_some(()) },
    )
    .await;
    let r = c_mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": worker, "message": "welcome back" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: welcome back", "{}", r.text);

    // b reattached its instance once; cost by host adds up to every call recorded (usage is
    // written as the transcript is read, so the two are read until they agree).
    let pg = sqlx::PgPool::connect(&a_spec.db).await.unwrap();
    let reattached: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE kind = 'instance.reattached' AND instance_id = $1",
    )
    .bind(&worker)
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(reattached, 1, "b reattached its instance once");
    let report = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["report", "cost", "--by", "host", "--format", "json", "--db"])
            .arg(&a_spec.db)
            .output()
            .unwrap();
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        rows
    };
    let rows = eventually(
        "cost by host equals the calls recorded",
        Duration::from_secs(10),
        || async {
            let rows = report();
            let by_host: i64 = rows.iter().map(|r| r["calls"].as_i64().unwrap()).sum();
            let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
                .fetch_one(&pg)
                .await
                .unwrap();
            (by_host == recorded && recorded > 0).then_some(rows)
        },
    )
    .await;
    assert!(rows.iter().any(|r| r["host"] == "b"), "{rows:?}");
    drop((b, c, a));
}
