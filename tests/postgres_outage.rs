//! PostgreSQL stopped in the middle of a turn and started again. It runs alone in its test
//! binary, since it stops the server every other test would use, and needs TROUPE_TEST_PG to
//! name a cluster that `.ci/postgres` started (`.ci/run` does):
//! `TROUPE_TEST_PG=postgres://… cargo test --test postgres_outage -- --ignored`.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use support::fake_model::last_user_text;
use support::{Harness, eventually};

/// The cluster behind TROUPE_TEST_PG, stopped and started with `.ci/postgres`.
struct Cluster {
    dir: PathBuf,
    port: String,
}

impl Cluster {
    async fn of(h: &Harness) -> Cluster {
        let url = h.db_url.clone().expect("TROUPE_TEST_PG names a server");
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let (data,): (String,) = sqlx::query_as("SHOW data_directory")
            .fetch_one(&pool)
            .await
            .unwrap();
        let (port,): (String,) = sqlx::query_as("SHOW port").fetch_one(&pool).await.unwrap();
        pool.close().await;
        let dir = PathBuf::from(data)
            .parent()
            .expect("the cluster's data is DIR/data")
            .to_path_buf();
        Cluster { dir, port }
    }

    fn run(&self, cmd: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/postgres");
        let out = std::process::Command::new("bash")
            .args([script, cmd])
            .arg(&self.dir)
            .arg(&self.port)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            ".ci/postgres {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts the cluster again when dropped, should the test fail while it is stopped.
struct Stopped<'a>(&'a Cluster);

impl Stopped<'_> {
    /// Starts it again now (dropping the guard does).
    fn start(self) {}
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.run("start");
    }
}

async fn health(h: &Harness) -> Value {
    reqwest::get(format!("{}/health", h.server().url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "stops a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn a_turn_finishes_across_a_database_restart_and_is_recorded_once() {
    let h = Harness::start().await;
    let cluster = Cluster::of(&h).await;
    let id = h.spawn(json!({ "role": "tester", "name": "steady" })).await;
    let tmux_session = troupe::db::instances::Instance::find(h.pool(), &id)
        .await
        .unwrap()
        .unwrap()
        .tmux_session;
    let token = troupe::db::credentials::Credentials::find(h.pool(), &id)
        .await
        .unwrap()
        .expect("the instance has a token")
        .token;
    assert_eq!(health(&h).await["status"], "ok");

    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": "please count slowly to 8", "wait_for_response": false }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    h.model
        .wait_for_request(
            |r| last_user_text(r).ends_with("please count slowly to 8"),
            Duration::from_secs(30),
        )
        .await
        .expect("the model received the message");

    // The database goes while the answer streams: everything the turn writes from here
    // (output, usage, the answer, the instance going idle) meets a stopped server.
    cluster.run("stop");
    let stopped = Stopped(&cluster);
    let down = eventually("/health says degraded", Duration::from_secs(10), || async {
        let v = health(&h).await;
        (v["status"] == "degraded").then_some(v)
    })
    .await;
    let reason = down["reason"].as_str().unwrap();
    assert!(reason.contains("has not answered since"), "{reason}");
    assert!(!reason.contains("postgres://"), "{reason}");

    // A hook is taken on the instance's token as last read: what it carries is not lost.
    let hook = reqwest::Client::new()
        .post(format!("{}/hooks/{id}", h.server().url()))
        .bearer_auth(&token)
        .json(&json!({ "hook_event_name": "Notification", "message": "probe" }))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 200, "{}", hook.text().await.unwrap());

    // The turn ends while the database is down: the last number is on the screen, and the
    // CLI's Stop hook (taken on the instance's remembered token) follows it.
    assert!(
        h.model.wait_for_idle(Duration::from_secs(30)).await,
        "the model finished streaming"
    );
    eventually(
        "the whole count on screen",
        Duration::from_secs(15),
        || async { h.capture(&tmux_session).contains("6 7 8").then_some(()) },
    )
    .await;
    // No signal reaches the test while the database is down; the hook follows in well under
    // this.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(health(&h).await["status"], "degraded", "still down");

    stopped.start();
    let r = h
        .call(
            "get_message",
            json!({ "message_id": message_id, "wait_seconds": 60 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    let response = r.structured["response"].as_str().unwrap();
    assert!(response.contains("6 7 8"), "{response}");
    eventually("/health says ok", Duration::from_secs(10), || async {
        (health(&h).await["status"] == "ok").then_some(())
    })
    .await;

    // Each model response's usage and each transcript record's output once, none lost.
    let pool = sqlx::PgPool::connect(h.db_url.as_ref().unwrap())
        .await
        .unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT source_id FROM usage_records WHERE message_id = $1")
            .bind(&message_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the turn's one response, recorded once: {rows:?}"
    );
    assert!(
        h.model.reported().iter().any(|r| r.id == rows[0].0),
        "{} is a response the model gave",
        rows[0].0
    );
    let (answered,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM output_chunks WHERE message_id = $1 AND content LIKE '%6 7 8%'",
    )
    .bind(&message_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(answered, 1, "the answer's output row once");
    let (state,): (String,) = sqlx::query_as("SELECT state FROM instances WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "idle");
}
