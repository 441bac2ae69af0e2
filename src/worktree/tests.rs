use super::*;

#[test]
fn branch_names_are_valid_refs() {
    assert_eq!(branch_name("dev"), "troupe/dev");
    assert_eq!(branch_name("developer-7a3f"), "troupe/developer-7a3f");
    assert_eq!(
        branch_name("a b:c~d^e?f*g[h\\i"),
        "troupe/a-b-c-d-e-f-g-h-i"
    );
    assert_eq!(branch_name("..x..y.."), "troupe/x.y");
    assert_eq!(branch_name("-x-"), "troupe/x");
    assert_eq!(branch_name("x.lock"), "troupe/x");
    assert_eq!(branch_name("x.lock.lock"), "troupe/x");
    assert_eq!(branch_name("a/b"), "troupe/a-b");
    assert_eq!(branch_name("@{x}"), "troupe/x");
    assert_eq!(branch_name(""), "troupe/instance");
    assert_eq!(branch_name("..."), "troupe/instance");
    assert_eq!(branch_name("é"), "troupe/instance");
    let long = branch_name(&"a".repeat(200));
    assert_eq!(long.len(), BRANCH_PREFIX.len() + MAX_BRANCH_NAME);
    // Cut at the limit, a trailing separator goes too.
    let cut = branch_name(&format!("{}-b", "a".repeat(MAX_BRANCH_NAME - 1)));
    assert!(!cut.ends_with('-'), "{cut}");
    for name in ["dev", "a b", "x.lock", "..", "", "ü-ber", "@{x}", "a//b"] {
        let b = branch_name(name);
        let tail = b.strip_prefix(BRANCH_PREFIX).unwrap();
        assert!(!tail.is_empty() && !tail.contains(".."), "{b}");
        assert!(
            !tail.starts_with(['.', '-']) && !tail.ends_with(['.', '-']),
            "{b}"
        );
        assert!(!tail.ends_with(".lock") && !tail.contains('/'), "{b}");
    }
}

#[test]
fn a_taken_branch_gets_the_id_suffix() {
    assert_eq!(
        branch_with_suffix("troupe/dev", "dev-7a3f"),
        "troupe/dev-7a3f"
    );
    assert_eq!(branch_with_suffix("troupe/x", "plain"), "troupe/x-plain");
}

#[test]
fn status_entries_are_read_with_renames_and_untracked_files() {
    let out =
        " M src/a.rs\0?? new file.txt\0R  b.rs\0old b.rs\0A  c.rs\0D  gone.rs\0UU conflict.rs\0";
    let changes = parse_status(out).unwrap();
    let summary: Vec<(&str, &str, Option<&str>)> = changes
        .iter()
        .map(|c| (c.path.as_str(), c.kind.as_str(), c.from.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("src/a.rs", "modified", None),
            ("new file.txt", "untracked", None),
            ("b.rs", "renamed", Some("old b.rs")),
            ("c.rs", "added", None),
            ("gone.rs", "deleted", None),
            ("conflict.rs", "unmerged", None),
        ]
    );
    assert_eq!(changes[0].code, " M");
    assert_eq!(changes[1].describe(), "new file.txt (untracked)");
    assert_eq!(changes[2].describe(), "b.rs (renamed, from old b.rs)");
    assert_eq!(parse_status("").unwrap(), vec![]);
    assert!(parse_status("XYZ").is_err());
    assert!(parse_status("R  only-new\0").is_err());
}

#[test]
fn numstat_is_summed_and_binary_files_have_no_counts() {
    let stat = parse_numstat(concat!(
        "3\t1\tsrc/a.rs\0",
        "-\t-\timg.png\0",
        "10\t0\tnew dir/b.txt\0"
    ))
    .unwrap();
    assert_eq!(stat.files_changed, 3);
    assert_eq!((stat.insertions, stat.deletions), (13, 1));
    assert_eq!(stat.files[1].insertions, None);
    assert_eq!(stat.files[2].path, "new dir/b.txt");
    assert_eq!(parse_numstat("").unwrap(), DiffStat::default());
    assert!(parse_numstat("x\ty\tz\0").is_err());
    assert!(parse_numstat("1\t2\0").is_err());
}

#[test]
fn log_lines_are_commits() {
    let commits = parse_log("0123456789abcdef0123 add a file\nfedcba none\n\n");
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[0].subject, "add a file");
    assert_eq!(commits[0].line(), "0123456789ab add a file");
}

#[test]
fn removal_needs_a_clean_tree_and_no_commit_only_on_the_branch() {
    let change = |path: &str, kind: &str| FileChange {
        path: path.into(),
        from: None,
        code: "??".into(),
        kind: kind.into(),
    };
    let commit = Commit {
        commit: "a".repeat(40),
        subject: "work".into(),
    };
    assert_eq!(removal_decision(&[], &[], false), Ok(()));
    // An ignored file goes only when the caller lets it.
    let refusal = removal_decision(&[change("out/.env", "ignored")], &[], false).unwrap_err();
    let text = refusal.explain("/wt/dev-1", "troupe/dev");
    assert!(
        text.contains("ignored files git would delete with it: out/.env"),
        "{text}"
    );
    assert!(text.contains("force_ignored: true"), "{text}");
    assert_eq!(
        removal_decision(&[change("out/.env", "ignored")], &[], true),
        Ok(())
    );

    let refusal = removal_decision(&[change("notes.txt", "untracked")], &[], true).unwrap_err();
    let text = refusal.explain("/wt/dev-1", "troupe/dev");
    assert!(
        text.contains("uncommitted changes: notes.txt (untracked)"),
        "{text}"
    );
    assert!(!text.contains("no other branch"), "{text}");

    let refusal = removal_decision(&[], std::slice::from_ref(&commit), false).unwrap_err();
    let text = refusal.explain("/wt/dev-1", "troupe/dev");
    assert!(text.contains("aaaaaaaaaaaa work"), "{text}");
    assert!(text.contains("Merge troupe/dev"), "{text}");

    let both = removal_decision(&[change("x", "modified")], &[commit], false).unwrap_err();
    assert_eq!(both.uncommitted.len(), 1);
    assert_eq!(both.unique_commits.len(), 1);
}

#[test]
fn worktree_paths_stay_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("worktrees");
    std::fs::create_dir(&root).unwrap();
    let real_root = root.canonicalize().unwrap();
    assert_eq!(
        worktree_path(&root, "dev-7a3f").unwrap(),
        real_root.join("dev-7a3f")
    );
    for bad in ["", ".", "..", "../x", "a/b", "/etc", "x y"] {
        assert!(worktree_path(&root, bad).is_err(), "{bad:?}");
    }
    std::fs::create_dir(root.join("taken")).unwrap();
    assert!(worktree_path(&root, "taken").is_err());

    // A directory that resolves elsewhere (a symlink out) is caught after the fact.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    assert!(check_inside(&root, &root.join("link")).is_err());
    assert!(check_inside(&root, &root).is_err());
    assert!(check_inside(&root, &root.join("taken")).is_ok());
}

/// A repository whose hooks and fsmonitor would leave a mark if git ran them.
#[tokio::test]
async fn the_repository_runs_nothing_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    sh_git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    let marks = dir.path().join("marks");
    let script = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho {name} >> {}\n", marks.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let hook = script("post-checkout");
    std::fs::copy(&hook, repo.join(".git/hooks/post-checkout")).unwrap();
    let monitor = script("fsmonitor");
    sh_git(
        &repo,
        &["config", "core.fsmonitor", monitor.to_str().unwrap()],
    );
    // git itself runs them when asked plainly.
    sh_git(&repo, &["status", "--short"]);
    assert!(marks.exists(), "the fsmonitor ran for a plain git");
    std::fs::remove_file(&marks).unwrap();

    let r = repo_of(&repo).await.unwrap();
    let wt = dir.path().join("wt");
    add(&repo, &wt, "troupe/x", &r.head).await.unwrap();
    status(&wt).await.unwrap();
    remove(&repo, &wt).await.unwrap();
    assert!(
        !marks.exists(),
        "{}",
        std::fs::read_to_string(&marks).unwrap_or_default()
    );
}

/// An empty repository, `dir/repo`, on `main`, with no commit.
fn new_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).unwrap();
    sh_git(&repo, &["init", "-q", "-b", "main"]);
    sh_git(&repo, &["config", "user.name", "t"]);
    sh_git(&repo, &["config", "user.email", "t@example.com"]);
    repo
}

fn sh_git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[tokio::test]
async fn only_commits_no_other_branch_holds_count_as_unique() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    // Not a repository, then one with no commit.
    assert!(
        repo_of(dir.path())
            .await
            .unwrap_err()
            .to_string()
            .contains("not in a git repository")
    );
    assert!(
        repo_of(&repo)
            .await
            .unwrap_err()
            .to_string()
            .contains("no commit yet")
    );
    sh_git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    let r = repo_of(&repo).await.unwrap();
    assert_eq!(r.toplevel, repo.canonicalize().unwrap());
    assert_eq!(r.head.len(), 40);

    let wt = dir.path().join("wt");
    assert!(!branch_exists(&repo, "troupe/x").await.unwrap());
    add(&repo, &wt, "troupe/x", &r.head).await.unwrap();
    assert!(branch_exists(&repo, "troupe/x").await.unwrap());
    assert!(unique_commits(&wt, "troupe/x").await.unwrap().is_empty());

    sh_git(&wt, &["commit", "-q", "--allow-empty", "-m", "only here"]);
    let unique = unique_commits(&wt, "troupe/x").await.unwrap();
    assert_eq!(unique.len(), 1, "{unique:?}");
    assert_eq!(unique[0].subject, "only here");
    assert_eq!(
        commits_since(&repo, &r.head, "troupe/x").await.unwrap(),
        unique
    );

    // Another branch at it: nothing is only on troupe/x any more.
    sh_git(&repo, &["branch", "keep", "troupe/x"]);
    assert!(unique_commits(&wt, "troupe/x").await.unwrap().is_empty());

    // git's own refusal comes back with its words.
    std::fs::write(wt.join("f.txt"), "x").unwrap();
    assert_eq!(status(&wt).await.unwrap()[0].path, "f.txt");
    let e = remove(&repo, &wt).await.unwrap_err().to_string();
    assert!(e.contains("git -C") && e.contains("untracked"), "{e}");
    std::fs::remove_file(wt.join("f.txt")).unwrap();
    remove(&repo, &wt).await.unwrap();
    assert!(!wt.exists());
    assert!(branch_exists(&repo, "troupe/x").await.unwrap());
}
