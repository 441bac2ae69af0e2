//! What only a PostgreSQL registry does: a row another process writes wakes this server at
//! once, through NOTIFY. These run with TROUPE_TEST_PG set (`.ci/run` does):
//! `TROUPE_TEST_PG=postgres://… cargo test --test postgres -- --ignored`.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use support::Harness;

/// Another process's pool on the harness's own database.
async fn other_process(h: &Harness) -> sqlx::PgPool {
    let url = h
        .db_url
        .clone()
        .expect("TROUPE_TEST_PG names a PostgreSQL server");
    sqlx::PgPool::connect(&url).await.unwrap()
}

/// An instance the server knows only through the database, as another host would write it.
async fn instance_row(other: &sqlx::PgPool, id: &str, state: &str) {
    sqlx::query(
        "INSERT INTO instances (id, name, agent, model, role, system_prompt, workdir,
                                permission_mode, tmux_session, agent_session_id, state,
                                state_since, created_at)
         VALUES ($1, $1, 'claude', 'haiku', 'tester', '', '/tmp', 'skip', '', '', $2,
                 '2026-12-06T12:00:00.000Z', '2026-12-06T12:00:00.000Z')",
    )
    .bind(id)
    .bind(state)
    .execute(other)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn a_row_written_by_another_process_wakes_a_wait_and_a_stream_at_once() {
    let h = Harness::start().await;
    let other = other_process(&h).await;
    // An instance and a message the server knows only through the database, as another host
    // of a fleet would write them.
    let now = "2026-12-06T12:00:00.000Z";
    instance_row(&other, "elsewhere-1", "busy").await;
    sqlx::query(
        "INSERT INTO messages (id, instance_id, content, state, created_at, submitted_at)
         VALUES ('msg-elsewhere', 'elsewhere-1', 'count to 3', 'started', $1, $1)",
    )
    .bind(now)
    .execute(&other)
    .await
    .unwrap();

    // A person's wait on that message, and an open event stream.
    let waiting = {
        let mcp = support::mcp::McpClient::user(h.server()).await;
        tokio::spawn(async move {
            let r = mcp
                .call_tool(
                    "get_message",
                    json!({ "message_id": "msg-elsewhere", "wait_seconds": 30 }),
                )
                .await;
            (Instant::now(), r)
        })
    };
    let stream = reqwest::Client::new()
        .get(format!("{}/api/events", h.server().url()))
        .bearer_auth(h.server().token())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    let seen = tokio::spawn(async move {
        let mut text = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("from another process") {
                return Instant::now();
            }
        }
        panic!("the stream ended: {text}");
    });
    // Both are waiting before the write.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the wait ended before the answer");

    let written = Instant::now();
    sqlx::query(
        "UPDATE messages SET state = 'answered', response = 'from another process',
                finished_at = $1 WHERE id = 'msg-elsewhere'",
    )
    .bind(now)
    .execute(&other)
    .await
    .unwrap();

    let (answered_at, r) = waiting.await.unwrap();
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(
        r.structured["response"], "from another process",
        "{}",
        r.text
    );
    let wait_took = answered_at - written;
    let stream_took = tokio::time::timeout(Duration::from_secs(5), seen)
        .await
        .expect("the stream saw the change")
        .unwrap()
        - written;
    eprintln!("wait answered {wait_took:?} after the commit; the stream {stream_took:?}");
    assert!(wait_took < Duration::from_millis(100), "{wait_took:?}");
    assert!(stream_took < Duration::from_millis(100), "{stream_took:?}");
}

/// `troupe report`'s queries (the two whose text is built at run time) on a PostgreSQL
/// registry: the sums, an unpriced model, a filter, the audit log.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn reports_read_a_postgresql_registry() {
    use troupe::report::{By, audit, cost};
    let h = Harness::start().await;
    let other = other_process(&h).await;
    let now = "2026-12-06T12:00:00.000Z";
    instance_row(&other, "tester-1", "idle").await;
    // The unpriced call comes last: groups are in the order of their first call.
    for (source, model, cost_micros, at) in [
        ("r1", "claude-haiku-4-5", Some(1_500_i64), now),
        ("r2", "claude-haiku-4-5", Some(500), now),
        ("r3", "claude-unpriced-1", None, "2026-12-06T12:00:01.000Z"),
    ] {
        sqlx::query(
            "INSERT INTO usage_records (instance_id, source_id, model, input_tokens,
                 output_tokens, cache_creation_tokens, cache_read_tokens, cost_micros, created_at)
             VALUES ('tester-1', $1, $2, 100, 10, 1, 2, $3, $4)",
        )
        .bind(source)
        .bind(model)
        .bind(cost_micros)
        .bind(at)
        .execute(&other)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO audit_events (at, instance_id, kind, detail)
         VALUES ($1, 'tester-1', 'instance.spawn', '{}')",
    )
    .bind(now)
    .execute(&other)
    .await
    .unwrap();

    let report = cost(h.pool(), By::Model, None, None).await.unwrap();
    assert_eq!(report.rows.len(), 2, "{report:?}");
    let haiku = &report.rows[0];
    assert_eq!(haiku[0], "claude-haiku-4-5");
    assert_eq!(haiku[1], 2, "calls");
    assert_eq!(haiku[2], 200, "input tokens");
    assert_eq!(haiku[6], 0.002, "cost in dollars");
    let unpriced = &report.rows[1];
    assert_eq!(unpriced[6], serde_json::Value::Null, "{unpriced:?}");
    assert_eq!(unpriced[7], 1, "unpriced calls");
    for by in [By::Instance, By::Team, By::Day, By::Message] {
        let r = cost(h.pool(), by, Some("2026-12-01"), None).await.unwrap();
        let calls: i64 = r
            .rows
            .iter()
            .map(|row| row[row.len() - 7].as_i64().unwrap())
            .sum();
        assert_eq!(calls, 3, "{by:?}: {r:?}");
    }
    let none = cost(h.pool(), By::Model, None, Some("nobody"))
        .await
        .unwrap();
    assert!(none.rows.is_empty());
    let log = audit(h.pool(), Some("2026-12-01"), Some("tester-1"))
        .await
        .unwrap();
    assert!(log.rows.iter().any(|r| r[3] == "instance.spawn"), "{log:?}");
}

/// A `send_to_instance` waiting on a live instance's answer is ended by another process's
/// commit of that answer (as another host of a fleet would write it), not by this server's
/// own signals.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn an_answer_written_by_another_process_ends_a_waiting_send_at_once() {
    let h = Harness::start().await;
    let other = other_process(&h).await;
    let id = h.spawn(json!({ "role": "tester", "name": "slow" })).await;
    // The model waits seconds before its first token: the CLI's own answer comes much later.
    let waiting = {
        let mcp = support::mcp::McpClient::user(h.server()).await;
        let id = id.clone();
        tokio::spawn(async move {
            let r = mcp
                .call_tool(
                    "send_to_instance",
                    json!({ "instance_id": id, "message": "please stall", "timeout_seconds": 60 }),
                )
                .await;
            (Instant::now(), r)
        })
    };
    h.model
        .wait_for_request(
            |r| support::fake_model::last_user_text(r).ends_with("please stall"),
            Duration::from_secs(30),
        )
        .await
        .expect("the model received the message");
    let message_id: String = sqlx::query_scalar("SELECT id FROM messages WHERE instance_id = $1")
        .bind(&id)
        .fetch_one(&other)
        .await
        .unwrap();
    assert!(!waiting.is_finished(), "the send ended before the answer");

    let written = Instant::now();
    sqlx::query(
        "UPDATE messages SET state = 'answered', response = 'answered elsewhere',
                finished_at = $1 WHERE id = $2",
    )
    .bind("2026-12-06T12:00:00.000Z")
    .bind(&message_id)
    .execute(&other)
    .await
    .unwrap();
    let (answered_at, r) = waiting.await.unwrap();
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["response"], "answered elsewhere", "{}", r.text);
    let took = answered_at - written;
    eprintln!("send_to_instance answered {took:?} after the commit");
    assert!(took < Duration::from_millis(100), "{took:?}");
}

/// An instance's call waiting for the person's approval ends when the approval is decided by
/// another process (the person answering on another host of the fleet).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn an_approval_decided_by_another_process_ends_the_wait_at_once() {
    let h = Harness::start().await;
    let other = other_process(&h).await;
    instance_row(&other, "far-1", "idle").await;
    let sup = h.server().supervisor.clone();
    let asked = sup
        .ask_approval("far-1", "spawn_claude", &json!({ "role": "tester" }))
        .await
        .unwrap();
    let waiting = {
        let (sup, id) = (sup.clone(), asked.id.clone());
        tokio::spawn(async move {
            let a = sup.await_approval(&id, Duration::from_secs(30)).await;
            (Instant::now(), a)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the wait ended before the decision");
    let written = Instant::now();
    sqlx::query(
        "UPDATE approvals SET state = 'approved', decided_by = 'rest', decided_at = $1
         WHERE id = $2",
    )
    .bind("2026-12-06T12:00:00.000Z")
    .bind(&asked.id)
    .execute(&other)
    .await
    .unwrap();
    let (decided_at, a) = waiting.await.unwrap();
    let a = a.unwrap();
    assert_eq!(a.state.to_string(), "approved", "{a:?}");
    let took = decided_at - written;
    eprintln!("the approval's wait ended {took:?} after the commit");
    assert!(took < Duration::from_millis(100), "{took:?}");
}

/// Text with a NUL character (a tool that printed a binary file) is written on PostgreSQL,
/// whose text type has none: it would otherwise stall the instance's write queue.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn text_with_a_nul_character_is_written() {
    use troupe::db::messages::Message;
    use troupe::db::output::OutputChunk;
    let h = Harness::start().await;
    let other = other_process(&h).await;
    let now = "2026-12-06T12:00:00.000Z";
    instance_row(&other, "bin-1", "busy").await;
    sqlx::query(
        "INSERT INTO messages (id, instance_id, content, state, created_at)
         VALUES ('msg-bin', 'bin-1', 'cat it', 'started', $1)",
    )
    .bind(now)
    .execute(&other)
    .await
    .unwrap();
    OutputChunk::insert(
        h.pool(),
        "bin-1",
        Some("msg-bin"),
        "assistant",
        "r1",
        "a\0b",
    )
    .await
    .unwrap();
    Message::finish(
        h.pool(),
        "msg-bin",
        troupe::states::MessageState::Answered,
        Some("x\0y"),
        "",
    )
    .await
    .unwrap();
    let (content,): (String,) =
        sqlx::query_as("SELECT content FROM output_chunks WHERE source_id = 'r1'")
            .fetch_one(&other)
            .await
            .unwrap();
    assert_eq!(content, "a\u{FFFD}b");
    let m = Message::find(h.pool(), "msg-bin").await.unwrap().unwrap();
    assert_eq!(m.response.as_deref(), Some("x\u{FFFD}y"));
}

/// `troupe doctor --db postgres://…` reaches the registry and names its version.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn doctor_checks_a_postgresql_registry() {
    let h = Harness::start().await;
    let url = h.db_url.clone().expect("TROUPE_TEST_PG names a server");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["doctor", "--json", "--url", &h.server().url(), "--db", &url])
        .output()
        .unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let database = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "database")
        .expect("a database line");
    assert_eq!(database["status"], "ok", "{database}");
    assert!(
        database["detail"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL "),
        "{database}"
    );
}
