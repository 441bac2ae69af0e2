//! The out-of-process harness by itself: `troupe serve` as a child, killed with SIGKILL and
//! started again on the same port, database and tmux socket, then stopped with SIGTERM.
//! No Claude Code CLI is started.

mod support;

use std::path::Path;

use serde_json::json;
use support::process::{ServeProcess, ServeSpec};

async fn open_db(path: &Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false);
    sqlx::SqlitePool::connect_with(options)
        .await
        .expect("open the server's database")
}

async fn assert_no_instances(server: &ServeProcess, spec: &ServeSpec) {
    let health = server.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["service"], "troupe", "{health}");
    let mcp = server.mcp().await;
    let list = mcp.call_tool("list_instances", json!({})).await;
    assert!(
        !list.is_error,
        "list_instances failed: {}\n{}",
        list.text,
        ServeProcess::log_tail(spec, 40)
    );
    assert_eq!(list.structured["count"], 0, "{}", list.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_restarts_on_the_same_port_and_database_after_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::seed_home(&home);
    let socket = support::unique_socket("proc");
    let _tmux = support::TmuxServer(socket.clone());
    // No model is called: nothing is spawned. The address only has to be well formed.
    let mut spec = ServeSpec::new(
        dir.path(),
        &socket,
        support::instance_env(&home, "http://127.0.0.1:9"),
    )
    .await;
    // The self-test reads the file directly.
    spec.db = spec.data_dir.join("troupe.db").display().to_string();
    let file = spec.data_dir.join("troupe.db");

    let server = ServeProcess::start(&spec).await;
    assert_eq!(server.port, spec.port);
    assert_eq!(server.url, format!("http://127.0.0.1:{}", spec.port));
    assert_no_instances(&server, &spec).await;
    let first_pid = server.pid();
    server.kill9();

    // The schema survived the SIGKILL; leave a mark to find after the restart.
    assert!(file.exists(), "{} missing", file.display());
    let pool = open_db(&file).await;
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(migrations > 0, "no migrations recorded after kill -9");
    sqlx::query("CREATE TABLE selftest_mark (pid INTEGER NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO selftest_mark (pid) VALUES (?)")
        .bind(i64::from(first_pid))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let server = ServeProcess::start(&spec).await;
    assert_eq!(server.port, spec.port, "restarted on the same port");
    assert_ne!(server.pid(), first_pid);
    assert_no_instances(&server, &spec).await;

    let status = server.terminate();
    assert!(
        status.success(),
        "troupe serve did not exit cleanly on SIGTERM: {status}\n{}",
        ServeProcess::log_tail(&spec, 40)
    );

    // The restarted server used the same database file.
    let pool = open_db(&file).await;
    let mark: i64 = sqlx::query_scalar("SELECT pid FROM selftest_mark")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mark, i64::from(first_pid));
    pool.close().await;
}

/// A SIGTERM the moment the server answers stops it cleanly: the signal is taken over before
/// anything is served, not after the start-up's last step.
#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_as_soon_as_it_answers_is_a_clean_stop() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        support::seed_home(&home);
        let socket = support::unique_socket("term");
        let _tmux = support::TmuxServer(socket.clone());
        let spec = ServeSpec::new(
            dir.path(),
            &socket,
            support::instance_env(&home, "http://127.0.0.1:9"),
        )
        .await;
        let server = ServeProcess::start(&spec).await;
        let status = server.terminate();
        assert!(
            status.success(),
            "round {round}: {status}\n{}",
            ServeProcess::log_tail(&spec, 20)
        );
    }
}
