//! Git worktrees for instances spawned with `use_worktree`: each works on a branch of its own
//! in a directory troupe chooses under its data directory, so parallel instances on one
//! repository never overwrite each other's files.
//!
//! The pure parts (branch names, `git status` and `git diff --numstat` parsing, the decision
//! whether a worktree may be removed) are plain functions; the git I/O is a few thin async
//! functions, each one `git -C <dir> <args>` with explicit arguments (no shell), whose
//! errors carry git's own stderr. Nothing here deletes a branch, and nothing removes a
//! worktree with `--force`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{Error, Result};

/// The prefix of every branch troupe makes.
pub const BRANCH_PREFIX: &str = "troupe/";

/// The longest branch name troupe makes (without the prefix).
const MAX_BRANCH_NAME: usize = 60;

/// `troupe/<name>`, with the name made into a valid git ref component (`git check-ref-format`):
/// characters git refuses become '-', no `..`, no leading or trailing '.' or '-', no
/// `.lock` ending, never empty.
pub fn branch_name(instance_name: &str) -> String {
    let mut s = String::with_capacity(instance_name.len());
    for c in instance_name.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            c
        } else {
            '-'
        };
        // One '-' for a run of replaced characters, one '.' for a run of dots.
        if (c == '-' || c == '.') && s.ends_with(c) {
            continue;
        }
        s.push(c);
    }
    let mut s = s.as_str();
    loop {
        let before = s.len();
        s = s.trim_matches(|c| c == '.' || c == '-');
        if let Some(stem) = s.strip_suffix(".lock") {
            s = stem;
        }
        if s.len() == before {
            break;
        }
    }
    let mut name: String = s.chars().take(MAX_BRANCH_NAME).collect();
    while name.ends_with(['.', '-']) {
        name.pop();
    }
    if name.is_empty() {
        name = "instance".into();
    }
    format!("{BRANCH_PREFIX}{name}")
}

/// The branch to use when `branch` exists already: the instance id's suffix added
/// (`troupe/dev` for `dev-7a3f` becomes `troupe/dev-7a3f`).
pub fn branch_with_suffix(branch: &str, instance_id: &str) -> String {
    let suffix = instance_id.rsplit('-').next().unwrap_or(instance_id);
    branch_name(&format!(
        "{}-{suffix}",
        branch.strip_prefix(BRANCH_PREFIX).unwrap_or(branch)
    ))
}

/// One line of `git status --porcelain=v1 -z`: a file that differs from the worktree's
/// commit, or that git does not track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct FileChange {
    /// The file, relative to the worktree.
    pub path: String,
    /// Where a rename or copy came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// git's two-letter code: index then working tree (`??` untracked, ` M` modified, `A `
    /// added to the index, ...).
    pub code: String,
    /// modified, added, deleted, renamed, copied, type_changed, untracked, unmerged or ignored.
    pub kind: String,
}

impl FileChange {
    /// `a.txt (untracked)`.
    pub fn describe(&self) -> String {
        match &self.from {
            Some(from) => format!("{} ({}, from {from})", self.path, self.kind),
            None => format!("{} ({})", self.path, self.kind),
        }
    }
}

fn change_kind(x: char, y: char) -> &'static str {
    match (x, y) {
        ('?', '?') => "untracked",
        ('!', '!') => "ignored",
        ('U', _) | (_, 'U') | ('D', 'D') | ('A', 'A') => "unmerged",
        _ => match if x != ' ' { x } else { y } {
            'M' => "modified",
            'A' => "added",
            'D' => "deleted",
            'R' => "renamed",
            'C' => "copied",
            'T' => "type_changed",
            _ => "changed",
        },
    }
}

/// Reads `git status --porcelain=v1 -z` output. In that form each entry is `XY <path>` and a
/// NUL; a rename or copy is followed by its source path and another NUL.
pub fn parse_status(out: &str) -> Result<Vec<FileChange>, String> {
    let mut changes = Vec::new();
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    while let Some(entry) = fields.next() {
        let mut chars = entry.chars();
        let (Some(x), Some(y), Some(' ')) = (chars.next(), chars.next(), chars.next()) else {
            return Err(format!("unexpected git status entry {entry:?}"));
        };
        let path = chars.as_str().to_string();
        if path.is_empty() {
            return Err(format!("git status entry without a path: {entry:?}"));
        }
        let from = if matches!(x, 'R' | 'C') || matches!(y, 'R' | 'C') {
            Some(
                fields
                    .next()
                    .ok_or_else(|| format!("git status rename without its source: {entry:?}"))?
                    .to_string(),
            )
        } else {
            None
        };
        changes.push(FileChange {
            path,
            from,
            code: format!("{x}{y}"),
            kind: change_kind(x, y).into(),
        });
    }
    Ok(changes)
}

/// Lines added and removed in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct FileStat {
    pub path: String,
    /// None for a binary file.
    pub insertions: Option<u64>,
    pub deletions: Option<u64>,
}

/// What changed in tracked files, as `git diff --numstat` counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct DiffStat {
    pub files_changed: usize,
    pub insertions: u64,
    pub deletions: u64,
    pub files: Vec<FileStat>,
}

/// Reads `git diff --numstat -z --no-renames`: `<added>\t<deleted>\t<path>` and a NUL per
/// file, `-` for the counts of a binary file.
pub fn parse_numstat(out: &str) -> Result<DiffStat, String> {
    let mut stat = DiffStat::default();
    for entry in out.split('\0').filter(|e| !e.trim().is_empty()) {
        let entry = entry.trim_start_matches('\n');
        let mut parts = entry.splitn(3, '\t');
        let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("unexpected git diff --numstat entry {entry:?}"));
        };
        let count = |n: &str| -> Result<Option<u64>, String> {
            match n {
                "-" => Ok(None),
                n => n
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("unexpected count {n:?} in git diff --numstat")),
            }
        };
        let (insertions, deletions) = (count(added)?, count(deleted)?);
        stat.insertions += insertions.unwrap_or(0);
        stat.deletions += deletions.unwrap_or(0);
        stat.files.push(FileStat {
            path: path.to_string(),
            insertions,
            deletions,
        });
    }
    stat.files_changed = stat.files.len();
    Ok(stat)
}

/// A commit, as one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct Commit {
    pub commit: String,
    pub subject: String,
}

impl Commit {
    /// `1a2b3c4d5e6f subject`.
    pub fn line(&self) -> String {
        let short: String = self.commit.chars().take(12).collect();
        format!("{short} {}", self.subject)
    }
}

/// The git log format [`parse_log`] reads: the full hash, a space, the subject.
pub const LOG_FORMAT: &str = "--format=%H %s";

pub fn parse_log(out: &str) -> Vec<Commit> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((commit, subject)) => Commit {
                commit: commit.to_string(),
                subject: subject.to_string(),
            },
            None => Commit {
                commit: l.to_string(),
                subject: String::new(),
            },
        })
        .collect()
}

/// Why a worktree may not be removed: what would be lost, or would be only on its branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Changes not committed (untracked files included).
    pub uncommitted: Vec<FileChange>,
    /// Commits on the worktree's branch (or its HEAD) that no other branch holds.
    pub unique_commits: Vec<Commit>,
    /// Ignored files git would delete with the worktree.
    pub ignored: Vec<FileChange>,
}

impl Refusal {
    /// The reason, with the way out, for the worktree at `path` on `branch`.
    pub fn explain(&self, path: &str, branch: &str) -> String {
        let mut why = Vec::new();
        if !self.uncommitted.is_empty() {
            let files: Vec<String> = self.uncommitted.iter().map(FileChange::describe).collect();
            why.push(format!(
                "it has uncommitted changes: {}. Commit them on {branch} (or discard them) first",
                files.join(", ")
            ));
        }
        if !self.ignored.is_empty() {
            let files: Vec<String> = self.ignored.iter().map(|c| c.path.clone()).collect();
            why.push(format!(
                "it holds ignored files git would delete with it: {}. Move them out, or remove \
                 it again with force_ignored: true to let them go",
                files.join(", ")
            ));
        }
        if !self.unique_commits.is_empty() {
            let commits: Vec<String> = self.unique_commits.iter().map(Commit::line).collect();
            why.push(format!(
                "{branch} has {} commit(s) no other branch holds: {}. Merge {branch} into \
                 another branch (or create a branch at it) first",
                commits.len(),
                commits.join("; ")
            ));
        }
        format!(
            "the worktree {path} was not removed: {}",
            why.join("; and ")
        )
    }
}

/// Whether a worktree may be removed: only when nothing in it is uncommitted, every commit of
/// its branch is on another branch as well, and no ignored file would go with it unless the
/// caller said to let them (`force_ignored`).
pub fn removal_decision(
    status: &[FileChange],
    unique_commits: &[Commit],
    force_ignored: bool,
) -> Result<(), Refusal> {
    let (ignored, uncommitted): (Vec<FileChange>, Vec<FileChange>) =
        status.iter().cloned().partition(|c| c.kind == "ignored");
    let ignored = if force_ignored { Vec::new() } else { ignored };
    if uncommitted.is_empty() && unique_commits.is_empty() && ignored.is_empty() {
        Ok(())
    } else {
        Err(Refusal {
            uncommitted,
            unique_commits: unique_commits.to_vec(),
            ignored,
        })
    }
}

/// The directory for an instance's worktree, `<root>/<instance_id>`, checked to stay inside
/// the root once resolved: the id must be one plain path component, and the root is
/// canonicalised first. Nothing a caller wrote becomes part of this path but the id troupe
/// made.
pub fn worktree_path(root: &Path, instance_id: &str) -> Result<PathBuf> {
    let plain = !instance_id.is_empty()
        && instance_id != "."
        && instance_id != ".."
        && instance_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !plain {
        return Err(Error::InvalidInput(format!(
            "instance id {instance_id:?} cannot name a worktree directory"
        )));
    }
    let root = root.canonicalize().map_err(|e| {
        Error::Agent(format!(
            "the worktrees directory {} is not usable: {e}",
            root.display()
        ))
    })?;
    let path = root.join(instance_id);
    if path.parent() != Some(root.as_path()) {
        return Err(Error::InvalidInput(format!(
            "worktree path {} is not inside {}",
            path.display(),
            root.display()
        )));
    }
    // Anything there, a dangling symlink included.
    if path.symlink_metadata().is_ok() {
        return Err(Error::Agent(format!(
            "the worktree directory {} exists already",
            path.display()
        )));
    }
    Ok(path)
}

/// Checks that a directory git made is where troupe asked for it: inside `root` once every
/// symlink is resolved.
pub fn check_inside(root: &Path, path: &Path) -> Result<PathBuf> {
    let root = root.canonicalize()?;
    let real = path.canonicalize()?;
    if real.starts_with(&root) && real != root {
        Ok(real)
    } else {
        Err(Error::Agent(format!(
            "the worktree {} resolves to {}, outside {}",
            path.display(),
            real.display(),
            root.display()
        )))
    }
}

// ---------------------------------------------------------------------------------------
// git I/O: one call each, `git -C <dir> ...`, explicit arguments.

/// What one git command printed.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `git -C <dir> <args>`; `Err` only when git could not be run at all.
async fn run(dir: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = tokio::process::Command::new("git");
    // The repository is not trusted: its hooks (post-checkout runs on `worktree add`) and its
    // fsmonitor command would run as troupe's user.
    cmd.args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "core.fsmonitor=false",
    ])
    .arg("-C")
    .arg(dir)
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    // Never prompt, never read a repository other than the one named.
    .env("GIT_TERMINAL_PROMPT", "0")
    .env("LC_ALL", "C");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Agent(
                "git is not installed (no `git` on troupe's PATH): install git to use \
                 use_worktree, or spawn without it"
                    .into(),
            )
        } else {
            Error::Agent(format!("cannot run git: {e}"))
        }
    })?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Runs git and returns its stdout, or an error naming the command and git's stderr.
async fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = run(dir, args).await?;
    if out.ok {
        Ok(out.stdout)
    } else {
        Err(failed(dir, args, &out.stderr))
    }
}

fn failed(dir: &Path, args: &[&str], stderr: &str) -> Error {
    Error::Agent(format!(
        "`git -C {} {}` failed: {}",
        dir.display(),
        args.join(" "),
        if stderr.is_empty() {
            "(no message)"
        } else {
            stderr
        }
    ))
}

/// The repository a directory is in: its top level, and the current commit there.
#[derive(Debug, Clone)]
pub struct Repo {
    pub toplevel: PathBuf,
    pub head: String,
    /// The directory asked about, relative to the top level ("" at the top).
    pub prefix: String,
}

/// Finds the repository `dir` is in and its HEAD commit, or says what to do.
pub async fn repo_of(dir: &Path) -> Result<Repo> {
    let args = ["rev-parse", "--show-toplevel", "--show-prefix"];
    let out = run(dir, &args).await?;
    if !out.ok {
        if out.stderr.contains("not a git repository") {
            return Err(Error::InvalidInput(format!(
                "use_worktree: project_dir {} is not in a git repository; make it one (git \
                 init, and a first commit) or spawn without use_worktree",
                dir.display()
            )));
        }
        return Err(failed(dir, &args, &out.stderr));
    }
    let mut lines = out.stdout.lines();
    let toplevel = lines.next().unwrap_or("").trim().to_string();
    if toplevel.is_empty() {
        return Err(Error::InvalidInput(format!(
            "use_worktree: project_dir {} has no working tree (a bare repository?); name a \
             directory of a checked-out repository",
            dir.display()
        )));
    }
    let prefix = lines.next().unwrap_or("").trim().to_string();
    let args = ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"];
    let out = run(dir, &args).await?;
    let head = out.stdout.trim().to_string();
    if !out.ok || head.is_empty() {
        return Err(Error::InvalidInput(format!(
            "use_worktree: the repository {toplevel} has no commit yet, and a worktree starts \
             from one; commit something first (git commit)"
        )));
    }
    Ok(Repo {
        toplevel: PathBuf::from(toplevel),
        head,
        prefix,
    })
}

/// Whether `refs/heads/<branch>` exists in the repository.
pub async fn branch_exists(repo: &Path, branch: &str) -> Result<bool> {
    let reference = format!("refs/heads/{branch}");
    let args = ["show-ref", "--verify", "--quiet", reference.as_str()];
    let out = run(repo, &args).await?;
    match (out.ok, out.stderr.is_empty()) {
        (true, _) => Ok(true),
        (false, true) => Ok(false),
        (false, false) => Err(failed(repo, &args, &out.stderr)),
    }
}

/// Whether `sub` (relative to the top level) is a directory in `commit`.
pub async fn is_directory_at(repo: &Path, commit: &str, sub: &str) -> Result<bool> {
    let object = format!("{commit}:{sub}");
    let out = run(repo, &["cat-file", "-t", object.as_str()]).await?;
    Ok(out.ok && out.stdout.trim() == "tree")
}

/// Whether git accepts `branch` as a branch name.
pub async fn valid_branch(repo: &Path, branch: &str) -> Result<bool> {
    Ok(run(repo, &["check-ref-format", "--branch", branch])
        .await?
        .ok)
}

/// `git worktree add -b <branch> <path> <commit>`: a new branch at `commit`, checked out
/// in a new directory.
pub async fn add(repo: &Path, path: &Path, branch: &str, commit: &str) -> Result<()> {
    let path = path.to_string_lossy();
    git(
        repo,
        &["worktree", "add", "-b", branch, path.as_ref(), commit],
    )
    .await
    .map(|_| ())
}

/// `git worktree remove <path>`, never forced: git itself refuses a worktree with changes.
pub async fn remove(repo: &Path, path: &Path) -> Result<()> {
    let path = path.to_string_lossy();
    git(repo, &["worktree", "remove", path.as_ref()])
        .await
        .map(|_| ())
}

/// Every uncommitted change in the worktree, untracked and ignored files included: what
/// removing it would lose.
pub async fn status_with_ignored(worktree: &Path) -> Result<Vec<FileChange>> {
    status_of(worktree, true).await
}

/// Every uncommitted change in the worktree, untracked files included.
pub async fn status(worktree: &Path) -> Result<Vec<FileChange>> {
    status_of(worktree, false).await
}

async fn status_of(worktree: &Path, ignored: bool) -> Result<Vec<FileChange>> {
    let mut args = vec![
        "--no-optional-locks",
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
    ];
    if ignored {
        args.push("--ignored=matching");
    }
    let out = git(worktree, &args).await?;
    parse_status(&out).map_err(Error::Agent)
}

/// The tracked changes from `base` to the worktree's files (committed or not), or, with
/// `to`, from `base` to that commit.
pub async fn diff_stat(dir: &Path, base: &str, to: Option<&str>) -> Result<DiffStat> {
    let mut args = vec![
        "--no-optional-locks",
        "diff",
        "--numstat",
        "-z",
        "--no-renames",
        "--no-color",
        base,
    ];
    args.extend(to);
    let out = git(dir, &args).await?;
    parse_numstat(&out).map_err(Error::Agent)
}

/// The commits on `branch` since `base`, newest first.
pub async fn commits_since(dir: &Path, base: &str, branch: &str) -> Result<Vec<Commit>> {
    let range = format!("{base}..refs/heads/{branch}");
    let out = git(dir, &["log", LOG_FORMAT, range.as_str(), "--"]).await?;
    Ok(parse_log(&out))
}

/// The commits of `branch`, and of the worktree's HEAD when it has moved off the branch,
/// that no other local or remote-tracking branch holds: what only this worktree's branch
/// keeps.
pub async fn unique_commits(worktree: &Path, branch: &str) -> Result<Vec<Commit>> {
    let tip = format!("refs/heads/{branch}");
    // `--exclude` patterns for `--branches` are written without `refs/heads/`.
    let exclude = format!("--exclude={branch}");
    let out = git(
        worktree,
        &[
            "log",
            LOG_FORMAT,
            "HEAD",
            tip.as_str(),
            "--not",
            exclude.as_str(),
            "--branches",
            "--remotes",
            "--",
        ],
    )
    .await?;
    Ok(parse_log(&out))
}

/// The commit a worktree's HEAD is at.
pub async fn head(worktree: &Path) -> Result<String> {
    Ok(git(worktree, &["rev-parse", "--verify", "HEAD^{commit}"])
        .await?
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests;
