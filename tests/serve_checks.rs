//! `troupe serve` checks what it needs before it serves: a relative path is made absolute,
//! and a missing CLI or tmux is said at start, naming what fixes it.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::unique_socket;

/// Runs `troupe serve` until it exits or `limit` passes (then stops it); returns whether it
/// exited by itself, and what it printed.
fn serve(
    args: &[&str],
    cwd: &std::path::Path,
    env: &[(&str, &str)],
    limit: Duration,
) -> (bool, String) {
    let log = cwd.join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env("TROUPE_CLAUDE_BIN", support::clis::claude_bin())
        .env("XDG_CONFIG_HOME", cwd.join("no-config"))
        .envs(env.iter().copied())
        .env_remove("TROUPE_TOKEN")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let exited = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        // A blocking wait for another process: nothing in this one has to make progress.
        std::thread::sleep(Duration::from_millis(50));
    };
    (exited, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn a_relative_database_path_is_made_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let socket = unique_socket("rel");
    let _tmux = support::TmuxServer(socket.clone());
    let (exited, log) = serve(
        &[
            "--bind",
            "127.0.0.1:0",
            "--db",
            "rel/t.db",
            "--tmux-socket",
            &socket,
        ],
        dir.path(),
        &[],
        Duration::from_secs(3),
    );
    assert!(!exited, "serve should keep serving: {log}");
    let abs = dir.path().join("rel/t.db");
    assert!(log.contains(&format!("db={}", abs.display())), "{log}");
    assert!(abs.exists());
    assert!(
        dir.path().join("rel/token").exists(),
        "the data dir is the db's: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes when not on a terminal: {log}"
    );
}

#[test]
fn a_missing_cli_or_tmux_is_said_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (exited, log) = serve(
        &[
            "--bind",
            "127.0.0.1:0",
            "--db",
            "t.db",
            "--claude-bin",
            "/nonexistent/claude",
        ],
        dir.path(),
        &[],
        Duration::from_secs(10),
    );
    assert!(exited, "{log}");
    assert!(
        log.contains("cannot run the Claude Code CLI \"/nonexistent/claude\""),
        "{log}"
    );
    assert!(log.contains("--claude-bin (TROUPE_CLAUDE_BIN)"), "{log}");

    let (exited, log) = serve(
        &["--bind", "127.0.0.1:0", "--db", "t.db"],
        dir.path(),
        &[("PATH", "/nonexistent")],
        Duration::from_secs(10),
    );
    assert!(exited, "{log}");
    assert!(log.contains("cannot run tmux"), "{log}");
}

#[test]
fn a_config_file_that_does_not_parse_is_said_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("troupe.toml");
    for (text, said) in [
        (
            "[orchestration]\nmax_instances = \"many\"\n",
            "does not parse",
        ),
        (
            "[orchestration]\nmax_instancs = 3\n",
            "unknown field `max_instancs`",
        ),
        (
            "[orchestration]\nrequire_approval = [\"rm_rf\"]\n",
            "\"rm_rf\" is not one of troupe's tools",
        ),
        (
            "[[prices]]\nmodel = \"m\"\nvalid_from = \"2026-01-01\"\ninput = -1.0\n\
             output = 1.0\ncache_write = 1.0\ncache_read = 1.0\n",
            "0 or more",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (exited, log) = serve(
            &[
                "--bind",
                "127.0.0.1:0",
                "--db",
                "t.db",
                "--config",
                file.to_str().unwrap(),
            ],
            dir.path(),
            &[],
            Duration::from_secs(10),
        );
        assert!(exited, "{log}");
        assert!(
            log.contains(file.to_str().unwrap()),
            "names the file: {log}"
        );
        assert!(log.contains(said), "{said}: {log}");
    }
    let (exited, log) = serve(
        &["--bind", "127.0.0.1:0", "--db", "t.db"],
        dir.path(),
        &[("MAX_INSTANCES", "lots")],
        Duration::from_secs(10),
    );
    assert!(exited, "{log}");
    assert!(
        log.contains("MAX_INSTANCES=\"lots\" is not a number"),
        "{log}"
    );
}

#[test]
fn an_allow_dir_that_is_not_an_absolute_directory_is_said_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let missing = dir.path().join("missing");
    for (arg, said) in [
        ("relative/dir".to_string(), "give an absolute path"),
        (file.display().to_string(), "not a directory"),
        (missing.display().to_string(), "No such file"),
    ] {
        let (exited, log) = serve(
            &["--bind", "127.0.0.1:0", "--db", "t.db", "--allow-dir", &arg],
            dir.path(),
            &[],
            Duration::from_secs(10),
        );
        assert!(exited, "serve ran with --allow-dir {arg}:\n{log}");
        assert!(log.contains(&format!("--allow-dir {arg}")), "{log}");
        assert!(log.contains(said), "{log}");
    }
}

/// A PostgreSQL registry that cannot be reached stops the start at once with the driver's
/// reason, and the URL's password is never printed.
#[test]
fn an_unreachable_postgresql_registry_is_said_at_start_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let socket = unique_socket("pgdown");
    let _tmux = support::TmuxServer(socket.clone());
    let started = Instant::now();
    let (exited, log) = serve(
        &[
            "--bind",
            "127.0.0.1:0",
            "--db",
            "postgres://troupe:hunter2@127.0.0.1:1/registry",
            "--data-dir",
            "data",
            "--tmux-socket",
            &socket,
        ],
        dir.path(),
        &[],
        Duration::from_secs(30),
    );
    assert!(exited, "serve kept running: {log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        log.contains("cannot reach the database postgres://troupe:***@127.0.0.1:1/registry"),
        "{log}"
    );
    assert!(log.contains("Connection refused"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}
