//! What SQLite's own locking does to troupe: a write lock held by another process delays
//! troupe's writes but loses none. (On PostgreSQL, rows lock one by one; these are about the
//! SQLite file.)

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Harness, fake_model::last_user_text};
use troupe::db::instances::Instance;

async fn state(h: &Harness, id: &str) -> Instance {
    Instance::find(h.pool(), id).await.unwrap().unwrap()
}

/// Another process holds the database's write lock longer than SQLite's old 5 s wait, during
/// a turn: the answer comes once the lock is gone, and every row of the turn is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_lock_held_elsewhere_delays_but_loses_nothing() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let db = h.config().db_path;
    let other = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let mut conn = other.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let held = Duration::from_secs(7);
    let release = tokio::spawn(async move {
        tokio::time::sleep(held).await;
        sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
    });
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "written under a lock", "timeout_seconds": 60 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["response"], "ECHO: written under a lock");
    release.await.unwrap();
    let message_id = r.structured["message_id"].as_str().unwrap();
    h.wait_for_transcript(&id, message_id).await;
    let chunks = troupe::db::output::OutputChunk::count_for_message(h.pool(), message_id)
        .await
        .unwrap();
    assert!(chunks >= 2, "prompt and reply recorded: {chunks}");
}

/// A lock held longer than the busy timeout makes writes fail; they are kept and written, in
/// order, once the lock is gone: the answer, its output and its usage are all recorded.
#[tokio::test(flavor = "multi_thread")]
async fn writes_that_fail_during_a_turn_are_kept_and_written_later() {
    let h = Harness::start_with(|c| c.db_busy_timeout = Duration::from_millis(500)).await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "please count slowly to 6", "wait_for_response": false }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    h.model
        .wait_for_request(
            |r| last_user_text(r).ends_with("please count slowly to 6"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let db = h.config().db_path;
    let other = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let mut conn = other.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .unwrap();
    // The turn ends while the lock is held: its rows cannot be written now.
    let pool = h.pool().clone();
    let mid = message_id.clone();
    let during = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        troupe::db::messages::Message::find(&pool, &mid)
            .await
            .unwrap()
            .unwrap()
    });
    let seen_during = during.await.unwrap();
    sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
    drop(conn);
    assert_ne!(
        seen_during.state, "answered",
        "nothing could be written while the lock was held"
    );
    let r = h
        .call(
            "get_message",
            json!({ "message_id": message_id, "wait_seconds": 30 }),
        )
        .await;
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    assert!(
        r.structured["response"].as_str().unwrap().contains('6'),
        "{}",
        r.structured
    );
    h.wait_for_transcript(&id, &message_id).await;
    let chunks = troupe::db::output::OutputChunk::count_for_message(h.pool(), &message_id)
        .await
        .unwrap();
    assert!(chunks >= 2, "prompt and reply recorded: {chunks}");
    let inst = state(&h, &id).await;
    assert_eq!(inst.state, "idle", "{}", inst.state_reason);
}
