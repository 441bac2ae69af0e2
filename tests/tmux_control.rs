//! troupe's typing through tmux's control mode, on a real tmux server of its own: text arrives
//! byte for byte (nothing in it read as tmux syntax), keys arrive as keys, errors are tmux's,
//! and the control client leaves no session behind.

mod support;

use std::time::Duration;

use support::{TmuxServer, eventually, unique_socket};
use troupe::tmux::{SessionSpec, Tmux};

fn tmux_out(socket: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A session named `name` running `argv` in `dir`, 80x24.
async fn session(tmux: &Tmux, name: &str, dir: &std::path::Path, argv: &[String]) {
    tmux.new_session(&SessionSpec {
        name,
        workdir: &dir.display().to_string(),
        env: &[],
        argv,
        width: 80,
        height: 24,
    })
    .await
    .unwrap();
}

/// A session whose program writes every byte it is given, raw, to `out`.
async fn typist(tmux: &Tmux, name: &str, dir: &std::path::Path, out: &std::path::Path) {
    let argv: Vec<String> = [
        "sh",
        "-c",
        &format!("stty raw -echo; exec cat > '{}'", out.display()),
    ]
    .map(String::from)
    .into();
    session(tmux, name, dir, &argv).await;
    // `stty` has run once the file exists.
    eventually("the typist's file", Duration::from_secs(10), || async {
        out.exists().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_into_two_sessions_at_once_keeps_each_in_order() {
    let socket = unique_socket("ctl2");
    let _server = TmuxServer(socket.clone());
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&socket);
    let outs: Vec<_> = ["one", "two"]
        .iter()
        .map(|n| (n.to_string(), dir.path().join(n)))
        .collect();
    for (name, out) in &outs {
        typist(&tmux, name, dir.path(), out).await;
    }
    let typing = outs.iter().map(|(name, _)| {
        let tmux = tmux.clone();
        let name = name.clone();
        async move {
            for i in 0..25 {
                tmux.paste(&name, &format!("{name} {i}")).await.unwrap();
                tmux.send_keys(&name, &["Enter"]).await.unwrap();
            }
        }
    });
    futures::future::join_all(typing).await;
    for (name, out) in &outs {
        let expected: String = (0..25).map(|i| format!("{name} {i}\r")).collect();
        let typed = eventually("every paste typed", Duration::from_secs(10), || async {
            let bytes = std::fs::read_to_string(out).unwrap_or_default();
            (bytes == expected).then_some(bytes)
        })
        .await;
        assert_eq!(typed, expected);
    }
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("troupe-pastes-{}-", std::process::id()))
        })
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap())
        .filter_map(|f| f.ok())
        .filter(|f| {
            let name = f.file_name().to_string_lossy().into_owned();
            name.starts_with("troupe-one-") || name.starts_with("troupe-two-")
        })
        .count();
    assert_eq!(left, 0, "every paste's file is gone once tmux read it");
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_goes_through_the_control_client_as_it_was_given() {
    let socket = unique_socket("ctl");
    let _server = TmuxServer(socket.clone());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("typed");
    let tmux = Tmux::new(&socket);
    typist(&tmux, "typist", dir.path(), &out).await;

    let before = tmux.processes_started();
    let hostile = "a; kill-server $HOME #{pane_pid} ~root \"q\" 'q' \\ %end 1 2 1\nline two";
    tmux.paste("typist", hostile).await.unwrap();
    tmux.send_keys("typist", &["Enter"]).await.unwrap();
    tmux.send_key("typist", "C-u").await.unwrap();
    // tmux turns the pasted newline into a carriage return, as a terminal's Enter.
    let expected = format!("{}\r\u{15}", hostile.replace('\n', "\r"));
    let typed = eventually("every byte typed", Duration::from_secs(10), || async {
        let bytes = std::fs::read_to_string(&out).unwrap_or_default();
        (bytes == expected).then_some(bytes)
    })
    .await;
    assert_eq!(typed, expected);
    assert_eq!(
        tmux.processes_started(),
        before,
        "no process at all: the control client started before the session was made"
    );

    // The control client has its own session, and the server still holds the typist's.
    let (ok, sessions) = tmux_out(&socket, &["list-sessions", "-F", "#{session_name}"]);
    assert!(ok, "{sessions}");
    assert!(
        sessions.lines().any(|s| s == "troupe_control"),
        "{sessions}"
    );
    assert!(tmux.has_session("typist").await.unwrap());
    assert!(!tmux.has_session("nobody").await.unwrap());

    // Many at once: each is answered, none is lost or given another's answer.
    let before = tmux.processes_started();
    let sends = (0..40).map(|i| {
        let tmux = tmux.clone();
        async move {
            match i % 2 {
                0 => tmux.send_keys("typist", &["x"]).await.map(|_| ()),
                _ => tmux.send_keys("nobody", &["x"]).await.map(|_| ()),
            }
        }
    });
    let results = futures::future::join_all(sends).await;
    for (i, r) in results.iter().enumerate() {
        match i % 2 {
            0 => assert!(r.is_ok(), "{i}: {r:?}"),
            _ => {
                let e = r.as_ref().unwrap_err().to_string();
                assert!(e.contains("can't find session"), "{i}: {e}");
            }
        }
    }
    assert_eq!(tmux.processes_started(), before, "still none per command");
    eventually("twenty x typed", Duration::from_secs(10), || async {
        let bytes = std::fs::read_to_string(&out).unwrap_or_default();
        (bytes.matches('x').count() == 20).then_some(())
    })
    .await;

    // Gone with its handle: the control session goes, and a server with nothing else ends.
    tmux.kill_session("typist").await.unwrap();
    drop(tmux);
    eventually("the tmux server gone", Duration::from_secs(10), || async {
        let (ok, _) = tmux_out(&socket, &["list-sessions"]);
        (!ok).then_some(())
    })
    .await;
}

/// A look (is the session there, has its program ended, what the screen shows) goes through
/// the control client too, and reads exactly what a `tmux` process reads.
#[tokio::test(flavor = "multi_thread")]
async fn looks_go_through_the_control_client_and_read_what_a_process_reads() {
    let socket = unique_socket("ctl3");
    let _server = TmuxServer(socket.clone());
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&socket);
    // A screen with a line that looks like the end of a control block, bytes that are not
    // UTF-8, and a format that must not be expanded.
    let argv: Vec<String> = [
        "sh",
        "-c",
        "printf 'first line\\n%%end 1 2 1\\nbad \\377 byte\\n#{pane_pid} stays\\nlast\\n'; exec cat",
    ]
    .map(String::from)
    .into();
    session(&tmux, "look", dir.path(), &argv).await;
    let screen = eventually("the screen", Duration::from_secs(10), || async {
        let s = tmux.capture("look").await.unwrap();
        s.contains("last").then_some(s)
    })
    .await;
    let (ok, by_process) = tmux_out(&socket, &["capture-pane", "-p", "-t", "=look:"]);
    assert!(ok, "{by_process}");
    assert_eq!(screen, by_process, "the same screen either way");
    assert!(screen.contains("%end 1 2 1\nbad "), "{screen}");
    assert!(screen.contains("#{pane_pid} stays"), "{screen}");

    let before = tmux.processes_started();
    assert!(tmux.has_session("look").await.unwrap());
    assert!(!tmux.has_session("nowhere").await.unwrap());
    assert!(!tmux.pane_dead("look").await.unwrap());
    let pid = tmux.pane_pid("look").await.unwrap().expect("running");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let again = tmux.capture("look").await.unwrap();
    assert_eq!(again, screen);
    assert!(tmux.capture("nowhere").await.is_err());
    assert_eq!(
        tmux.processes_started(),
        before,
        "no process for any of these looks"
    );

    // Once its program ends, the pane is kept and reads as dead.
    tmux.send_keys("look", &["C-d"]).await.unwrap();
    eventually("the pane to die", Duration::from_secs(10), || async {
        tmux.pane_dead("look").await.unwrap().then_some(())
    })
    .await;
    assert_eq!(tmux.pane_pid("look").await.unwrap(), None);
}

/// Callers that give up while tmux is not reading (their futures dropped mid-command, as an
/// HTTP client that hangs up drops its request's) leave every later command its own answer:
/// a waiter queued for a line never written would hand each later command the one before
/// it.
#[tokio::test(flavor = "multi_thread")]
async fn commands_abandoned_while_tmux_is_not_reading_leave_later_answers_in_place() {
    let socket = unique_socket("ctlgone");
    let _server = TmuxServer(socket.clone());
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(&socket);
    for (name, word) in [("left", "LEFT-SIDE"), ("right", "RIGHT-SIDE")] {
        let argv: Vec<String> = ["sh", "-c", &format!("echo {word}; exec cat")]
            .map(String::from)
            .into();
        session(&tmux, name, dir.path(), &argv).await;
    }
    for name in ["left", "right"] {
        eventually("the word on screen", Duration::from_secs(10), || async {
            tmux.capture(name)
                .await
                .unwrap()
                .contains("-SIDE")
                .then_some(())
        })
        .await;
    }
    // tmux stops reading: lines fill the pipe to it, and the last writers wait for room.
    // (The server reads a control client's input itself: the client hands it its stdin.)
    let (ok, pid) = tmux_out(&socket, &["display-message", "-p", "#{pid}"]);
    assert!(ok, "{pid}");
    let pid: i32 = pid.trim().parse().unwrap();
    /// Lets the server go on whatever happens, or dropping it would wait on it for good.
    struct Stopped(i32);
    impl Drop for Stopped {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0, libc::SIGCONT) };
        }
    }
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let stopped = Stopped(pid);
    let abandoned = futures::future::join_all((0..4000).map(|i| {
        let tmux = &tmux;
        async move {
            let name = if i % 2 == 0 { "left" } else { "right" };
            tokio::time::timeout(Duration::from_millis(300), tmux.capture(name))
                .await
                .is_err()
        }
    }))
    .await;
    assert!(abandoned.iter().all(|gave_up| *gave_up));
    drop(stopped);
    for round in 0..6 {
        for (name, word) in [("left", "LEFT-SIDE"), ("right", "RIGHT-SIDE")] {
            let screen = tokio::time::timeout(Duration::from_secs(5), tmux.capture(name))
                .await
                .unwrap_or_else(|_| panic!("round {round}: {name} got no answer"))
                .unwrap();
            assert!(
                screen.contains(word),
                "round {round}: {name}'s answer is another's: {screen:?}"
            );
        }
    }
}
