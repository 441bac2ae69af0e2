//! Instances in git worktrees of their own, end to end: real Claude Code instances (answered
//! by the fake model, which emits Write and Bash tool calls) on one repository, each on its
//! own branch; terminate and dissolve keep branches and worktrees; removing one is refused
//! while anything would be lost, and keeps the branch when it is done.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Harness, eventually};
use troupe::db::audit;
use troupe::db::instances::Instance;

/// Runs git in `dir` and returns its stdout, failing the test with git's stderr.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn branch_exists(repo: &Path, branch: &str) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .status()
        .unwrap()
        .success()
}

/// A repository on `main` with one commit (README.md), and a committer configured in it.
fn new_repo(h: &Harness) -> PathBuf {
    let repo = h.dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Troupe Test"]);
    git(&repo, &["config", "user.email", "test@troupe.invalid"]);
    std::fs::write(repo.join("README.md"), "# the project\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    repo.canonicalize().unwrap()
}

/// The files a branch holds.
fn files_on(repo: &Path, branch: &str) -> Vec<String> {
    git(repo, &["ls-tree", "-r", "--name-only", branch])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Sends a message and waits for its answer, failing the test if the turn does not end with
/// one.
async fn ask(h: &Harness, id: &str, message: String) -> String {
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": id, "message": message, "timeout_seconds": 120 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["status"], "answered", "{}", r.structured);
    r.structured["response"].as_str().unwrap_or("").to_string()
}

/// Has the instance write `file` in its worktree (the Write tool), then commit everything
/// (the Bash tool).
async fn write_and_commit(h: &Harness, id: &str, worktree: &str, file: &str, subject: &str) {
    let write = json!({ "file_path": format!("{worktree}/{file}"), "content": format!("{file} from {id}\n") });
    let answer = ask(h, id, format!("CALL_TOOL Write {write}")).await;
    assert!(
        Path::new(worktree).join(file).is_file(),
        "the Write call made {file}: {answer}"
    );
    let status = worktree_status(h, id).await;
    assert_eq!(status["clean"], false, "{status}");
    assert_eq!(status["changed_files"][0]["path"], file, "{status}");
    assert_eq!(status["changed_files"][0]["kind"], "untracked", "{status}");
    assert_eq!(status["commits_ahead"], 0, "{status}");

    let commit = json!({ "command": format!("git add -A && git commit -q -m '{subject}'") });
    let answer = ask(h, id, format!("CALL_TOOL Bash {commit}")).await;
    let dir = PathBuf::from(worktree);
    eventually("the instance's commit", Duration::from_secs(10), || async {
        git(&dir, &["log", "-1", "--format=%s"])
            .trim()
            .eq(subject)
            .then_some(())
    })
    .await;
    let _ = answer;
}

async fn worktree_status(h: &Harness, id: &str) -> Value {
    let r = h
        .call("get_worktree_status", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    r.structured
}

async fn remove(h: &Harness, id: &str) -> support::ToolResult {
    h.call("remove_worktree", json!({ "instance_id": id }))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_work_on_their_own_branches_and_removal_loses_nothing() {
    let h = Harness::start().await;
    let repo = new_repo(&h);
    let base = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    let dir = repo.display().to_string();
    let spawn = |name: &'static str| {
        h.spawn(
            json!({ "name": name, "role": "developer", "project_dir": dir, "use_worktree": true }),
        )
    };
    let (alpha, beta) = tokio::join!(spawn("alpha"), spawn("beta"));

    let root = h.data_dir.join("worktrees").canonicalize().unwrap();
    let mut paths = Vec::new();
    for (id, branch) in [(&alpha, "troupe/alpha"), (&beta, "troupe/beta")] {
        let s = worktree_status(&h, id).await;
        assert_eq!(s["branch"], branch, "{s}");
        assert_eq!(s["base_commit"], base.as_str(), "{s}");
        assert_eq!(s["repo"], dir.as_str(), "{s}");
        assert_eq!(s["exists"], true, "{s}");
        assert_eq!(s["clean"], true, "{s}");
        let path = s["path"].as_str().unwrap().to_string();
        assert_eq!(
            Path::new(&path),
            root.join(id.as_str()),
            "under the data dir"
        );
        let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
        assert_eq!(inst.workdir, path, "the instance works in its worktree");
        assert!(branch_exists(&repo, branch));
        paths.push(path);
    }
    let events = audit::of_kind(h.pool(), "worktree.create").await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");

    // Each writes and commits its own file, at the same time.
    tokio::join!(
        write_and_commit(&h, &alpha, &paths[0], "alpha.txt", "alpha adds alpha.txt"),
        write_and_commit(&h, &beta, &paths[1], "beta.txt", "beta adds beta.txt"),
    );
    assert_eq!(files_on(&repo, "troupe/alpha"), ["README.md", "alpha.txt"]);
    assert_eq!(files_on(&repo, "troupe/beta"), ["README.md", "beta.txt"]);
    assert_eq!(files_on(&repo, "main"), ["README.md"], "main is untouched");
    assert!(!repo.join("alpha.txt").exists() && !repo.join("beta.txt").exists());
    assert_eq!(
        git(
            &repo,
            &["show", "--format=%s", "--name-only", "troupe/alpha"]
        )
        .trim(),
        "alpha adds alpha.txt\n\nalpha.txt"
    );

    for (id, file, subject) in [
        (&alpha, "alpha.txt", "alpha adds alpha.txt"),
        (&beta, "beta.txt", "beta adds beta.txt"),
    ] {
        let s = worktree_status(&h, id).await;
        assert_eq!(s["commits_ahead"], 1, "{s}");
        let line = s["commits"][0].as_str().unwrap();
        assert!(line.ends_with(subject), "{s}");
        assert_eq!(s["clean"], true, "{s}");
        assert_eq!(s["diff_stat"]["files_changed"], 1, "{s}");
        assert_eq!(s["diff_stat"]["insertions"], 1, "{s}");
        assert_eq!(s["diff_stat"]["files"][0]["path"], file, "{s}");
    }

    // Not while it runs.
    let r = remove(&h, &alpha).await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("terminate_instance"), "{}", r.text);
    assert!(Path::new(&paths[0]).is_dir());

    for id in [&alpha, &beta] {
        let r = h
            .call("terminate_instance", json!({ "instance_id": id }))
            .await;
        assert!(!r.is_error, "{}", r.text);
    }
    for (i, branch) in ["troupe/alpha", "troupe/beta"].iter().enumerate() {
        assert!(branch_exists(&repo, branch), "terminate keeps {branch}");
        assert!(
            Path::new(&paths[i]).is_dir(),
            "terminate keeps the worktree"
        );
    }
    let listed = git(&repo, &["worktree", "list", "--porcelain"]);
    assert!(
        listed.contains(&paths[0]) && listed.contains(&paths[1]),
        "{listed}"
    );

    // An uncommitted change: refused, naming the file.
    std::fs::write(Path::new(&paths[0]).join("scratch.txt"), "not committed\n").unwrap();
    let r = remove(&h, &alpha).await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("scratch.txt (untracked)"), "{}", r.text);
    assert!(Path::new(&paths[0]).join("scratch.txt").is_file());

    // Clean, but its commit is only on its branch: refused, naming the commit. The REST
    // route says the same with a 409.
    let r = remove(&h, &beta).await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("beta adds beta.txt"), "{}", r.text);
    let short = &git(&repo, &["rev-parse", "troupe/beta"])[..12];
    assert!(r.text.contains(short), "{}", r.text);
    let http = reqwest::Client::new();
    let url = format!("{}/api/instances/{beta}/worktree", h.server().url());
    let rest = http
        .post(format!("{url}/remove"))
        .bearer_auth(h.server().token())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 409);
    let body: Value = rest.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("beta adds beta.txt"),
        "{body}"
    );
    assert!(Path::new(&paths[1]).is_dir());

    // Once main holds the commit, only an ignored file is in the way: refused, naming it,
    // until the caller lets it go; then the worktree goes and the branch stays.
    git(&repo, &["merge", "-q", "--ff-only", "troupe/beta"]);
    std::fs::write(repo.join(".git/info/exclude"), "*.env\n").unwrap();
    std::fs::write(Path::new(&paths[1]).join("local.env"), "KEY=1\n").unwrap();
    let r = remove(&h, &beta).await;
    assert!(
        r.is_error
            && r.text
                .contains("ignored files git would delete with it: local.env"),
        "{}",
        r.text
    );
    assert!(Path::new(&paths[1]).join("local.env").is_file());
    let r = h
        .call(
            "remove_worktree",
            json!({ "instance_id": beta, "force_ignored": true }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["branch"], "troupe/beta");
    assert!(!Path::new(&paths[1]).exists(), "the worktree is gone");
    assert!(branch_exists(&repo, "troupe/beta"), "its branch is kept");
    assert!(!git(&repo, &["worktree", "list", "--porcelain"]).contains(&paths[1]));
    let rest = http
        .get(&url)
        .bearer_auth(h.server().token())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 200);
    let s: Value = rest.json().await.unwrap();
    assert_eq!(s["exists"], false, "{s}");
    assert!(s["removed_at"].is_string(), "{s}");
    assert_eq!(s["commits_ahead"], 1, "{s}");
    let r = remove(&h, &beta).await;
    assert!(
        r.is_error && r.text.contains("was removed at"),
        "{}",
        r.text
    );

    // alpha is still refused, and still there, with everything in it.
    let r = remove(&h, &alpha).await;
    assert!(r.is_error, "{}", r.text);
    assert!(Path::new(&paths[0]).join("alpha.txt").is_file());
    assert_eq!(
        audit::of_kind(h.pool(), "worktree.remove")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        audit::of_kind(h.pool(), "worktree.remove_refused")
            .await
            .unwrap()
            .len()
            >= 3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_member_gets_its_worktree_and_dissolve_keeps_it() {
    let h = Harness::start().await;
    let repo = new_repo(&h);
    let r = h
        .call(
            "create_team",
            json!({
                "name": "wt-team",
                "project_dir": repo.display().to_string(),
                "members": [{ "role": "developer", "name": "dev", "use_worktree": true }],
            }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["members"][0]["use_worktree"], true);
    let r = h.call("start_team", json!({ "name": "wt-team" })).await;
    assert!(!r.is_error, "{}", r.text);
    let id = r.structured["members"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = worktree_status(&h, &id).await;
    assert_eq!(s["branch"], "troupe/dev", "{s}");
    let path = PathBuf::from(s["path"].as_str().unwrap());

    let r = h.call("dissolve_team", json!({ "name": "wt-team" })).await;
    assert!(!r.is_error, "{}", r.text);
    assert!(branch_exists(&repo, "troupe/dev"));
    assert!(
        path.join("README.md").is_file(),
        "dissolve keeps the worktree"
    );

    // The command line asks for worktrees for every member.
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args([
                "team",
                "create",
                "cli-team",
                "--members",
                "a=developer,b=tester",
            ])
            .arg("--project-dir")
            .arg(&repo)
            .arg("--worktrees")
            .env("TROUPE_URL", h.server().url())
            .env("TROUPE_TOKEN", h.server().token())
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{out:?}");
    let r = h.call("get_team", json!({ "name": "cli-team" })).await;
    assert!(!r.is_error, "{}", r.text);
    for m in r.structured["members"].as_array().unwrap() {
        assert_eq!(m["use_worktree"], true, "{m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn use_worktree_without_a_repository_is_refused_and_leaves_nothing() {
    let h = Harness::start().await;
    let plain = h.dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let r = h
        .call(
            "spawn_claude",
            json!({ "name": "lost", "project_dir": plain.display().to_string(), "use_worktree": true }),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("not in a git repository"), "{}", r.text);
    assert!(r.text.contains("git init"), "it names the fix: {}", r.text);

    // A repository without a commit yet.
    let empty = h.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    git(&empty, &["init", "-q"]);
    let r = h
        .call(
            "spawn_claude",
            json!({ "project_dir": empty.display().to_string(), "use_worktree": true }),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("no commit yet"), "{}", r.text);

    // No directory at all (this client tells troupe no roots).
    let r = h
        .call("spawn_claude", json!({ "use_worktree": true }))
        .await;
    assert!(r.is_error, "{}", r.text);
    assert!(
        r.text.contains("use_worktree needs a project_dir"),
        "{}",
        r.text
    );

    // The REST route refuses the same way.
    let rest = reqwest::Client::new()
        .post(format!("{}/api/instances", h.server().url()))
        .bearer_auth(h.server().token())
        .json(&json!({ "project_dir": plain.display().to_string(), "use_worktree": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 400);

    // Nothing was left behind: no instance, no worktree, no tmux session, no branch.
    assert!(Instance::list(h.pool(), true).await.unwrap().is_empty());
    let root = h.data_dir.join("worktrees");
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(!plain.join(".git").exists());
    assert!(git(&empty, &["branch", "--list"]).trim().is_empty());
    let r = h
        .call("get_worktree_status", json!({ "instance_id": "lost-0000" }))
        .await;
    assert!(r.is_error, "{}", r.text);
}
