//! The default workspaces' folder trusted once, by the CLI itself.
//!
//! Claude Code asks whether to trust each folder it has not seen, and an instance in a new
//! default workspace (`<data dir>/workspaces/<id>`) meets that dialog at every spawn: about a
//! second of its start, spent answering it. A folder under `$HOME` inherits a trusted
//! parent's trust, so once the workspaces folder itself is trusted, every workspace made in it
//! starts without the dialog. troupe does not write the CLI's state file (`.claude.json`,
//! which every running CLI rewrites): at start, when the folder is under `$HOME` and not yet
//! trusted, it starts the CLI there with no hooks and no MCP servers, answers the dialog as it
//! answers it for each instance, and ends that CLI as soon as the trust is recorded. The answer
//! is audited as `workspaces.trust_accepted`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use super::Shared;
use super::instance::startup::{CursorKeys, STARTUP_SCREEN_CHECK, dialog_step};
use crate::agents::{AgentKind, FolderTrust, ScreenKind};
use crate::tmux::SessionSpec;

/// The tmux session of the CLI that answers the dialog.
pub const SESSION: &str = "troupe-trust";
/// How long the CLI may take to show its dialog and record the answer.
const TRUST_DEADLINE: Duration = Duration::from_secs(30);

/// What to do after a look at the trust CLI's screen.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    /// Press these keys, then look again at the time given.
    Press(Vec<&'static str>, Instant),
    /// Look again at the time given.
    Look(Instant),
    /// The trust is recorded: end the CLI.
    Done,
    /// The CLI cannot record it (said why).
    Failed(String),
}

/// One look's decision. `recorded`: the state file says the folder is trusted. `exited`: the
/// CLI is gone, with the screen's last words.
pub(super) fn step(
    screen: &ScreenKind,
    recorded: bool,
    exited: Option<&str>,
    cursor: &mut Option<CursorKeys>,
    now: Instant,
    deadline: Instant,
) -> Step {
    if recorded {
        return Step::Done;
    }
    if let Some(tail) = exited {
        return Step::Failed(format!("the CLI exited before recording the trust: {tail}"));
    }
    if now >= deadline {
        return Step::Failed(format!(
            "no trust recorded within {}s",
            TRUST_DEADLINE.as_secs()
        ));
    }
    match screen {
        ScreenKind::Dialog {
            name,
            keys,
            answers,
        } => {
            let (press, next) = dialog_step(cursor, name, *answers, now);
            if press {
                Step::Press(keys.clone(), next)
            } else {
                Step::Look(next)
            }
        }
        ScreenKind::Refused(reason) => Step::Failed(reason.clone()),
        // Any other screen: the dialog not drawn yet, or the CLI past it and writing its state.
        _ => Step::Look(now + STARTUP_SCREEN_CHECK),
    }
}

/// Where the trust would be recorded and read, when troupe's workspaces would inherit it.
struct Plan {
    root: PathBuf,
    state_file: PathBuf,
    trust: FolderTrust,
}

/// Starts the work in the background, when the workspaces folder would inherit trust and does
/// not have it yet.
pub(super) fn spawn(shared: Arc<Shared>) {
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        let Some(plan) = plan(&shared).await else {
            return;
        };
        let started = std::time::Instant::now();
        let result = tokio::select! {
            r = answer(&shared, &plan) => r,
            () = shared.shutdown.cancelled() => Err("troupe stopped first".into()),
        };
        let _ = shared.tmux.kill_session(SESSION).await;
        match result {
            Ok(()) => {
                tracing::info!(
                    dir = %plan.root.display(),
                    ms = started.elapsed().as_millis() as u64,
                    "Claude Code now trusts troupe's workspaces folder: instances started there \
                     skip its trust dialog"
                );
                crate::db::audit::record(
                    &shared.pool,
                    Some("troupe"),
                    None,
                    "workspaces.trust_accepted",
                    serde_json::json!({ "dir": plan.root.display().to_string() }),
                )
                .await;
            }
            Err(why) => tracing::warn!(
                dir = %plan.root.display(),
                "could not have Claude Code trust troupe's workspaces folder ({why}); each \
                 instance there answers the trust dialog instead"
            ),
        }
    });
}

async fn plan(shared: &Shared) -> Option<Plan> {
    let config = &shared.config;
    let env = |k: &str| {
        config
            .instance_env
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    };
    let root = config.data_dir.join("workspaces");
    if let Err(e) = std::fs::create_dir_all(&root) {
        tracing::debug!(error = %e, "no workspaces folder to trust");
        return None;
    }
    let root = root.canonicalize().ok()?;
    let agent = shared.agent_as_installed(AgentKind::Claude).await;
    let trust = agent.folder_trust()?;
    if !(trust.inherited)(&root, &env) {
        tracing::debug!(dir = %root.display(), "the workspaces folder is outside $HOME: each instance answers the trust dialog");
        return None;
    }
    let state_file = (trust.state_file)(&env)?;
    if recorded(&trust, &state_file, &root) {
        return None;
    }
    Some(Plan {
        root,
        state_file,
        trust,
    })
}

fn recorded(trust: &FolderTrust, state_file: &Path, root: &Path) -> bool {
    std::fs::read_to_string(state_file).is_ok_and(|s| (trust.recorded)(&s, root))
}

/// Starts the CLI in the folder and answers its dialog until the trust is recorded.
async fn answer(shared: &Shared, plan: &Plan) -> Result<(), String> {
    let tmux = &shared.tmux;
    // A session left by a troupe that stopped halfway.
    let _ = tmux.kill_session(SESSION).await;
    let agent = shared.agent_as_installed(AgentKind::Claude).await;
    let workdir = plan.root.to_str().ok_or("the folder's name is not UTF-8")?;
    tmux.new_session(&SessionSpec {
        name: SESSION,
        workdir,
        env: &shared.config.instance_env,
        argv: &plan.trust.argv,
        width: 200,
        height: 50,
    })
    .await
    .map_err(|e| e.to_string())?;
    let now = Instant::now();
    let deadline = now + TRUST_DEADLINE;
    let mut cursor = None;
    let mut next = now + STARTUP_SCREEN_CHECK;
    loop {
        tokio::time::sleep_until(next).await;
        let screen = tmux.capture(SESSION).await.map_err(|e| e.to_string())?;
        let exited = match tmux.pane_dead(SESSION).await {
            Ok(false) => None,
            Ok(true) | Err(_) => Some(last_line(&screen)),
        };
        let now = Instant::now();
        match step(
            &agent.read_screen(&screen).kind,
            recorded(&plan.trust, &plan.state_file, &plan.root),
            exited.as_deref(),
            &mut cursor,
            now,
            deadline,
        ) {
            Step::Done => return Ok(()),
            Step::Failed(why) => return Err(why),
            Step::Look(at) => next = at,
            Step::Press(keys, at) => {
                tmux.send_keys(SESSION, &keys)
                    .await
                    .map_err(|e| e.to_string())?;
                next = at;
            }
        }
    }
}

fn last_line(screen: &str) -> String {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::instance::startup::DIALOG_REDRAW;

    fn dialog(answers: bool) -> ScreenKind {
        ScreenKind::Dialog {
            name: "trust",
            keys: vec![if answers { "Enter" } else { "Down" }],
            answers,
        }
    }

    #[test]
    fn the_dialog_is_answered_as_an_instance_answers_it_then_the_cli_is_ended() {
        let t0 = Instant::now();
        let end = t0 + TRUST_DEADLINE;
        let mut cursor = None;
        // Not drawn yet.
        assert_eq!(
            step(&ScreenKind::Unknown, false, None, &mut cursor, t0, end),
            Step::Look(t0 + STARTUP_SCREEN_CHECK)
        );
        // "No, exit" under the cursor: Down.
        let t1 = t0 + STARTUP_SCREEN_CHECK;
        let Step::Press(keys, _) = step(&dialog(false), false, None, &mut cursor, t1, end) else {
            panic!("a cursor key");
        };
        assert_eq!(keys, ["Down"]);
        // On the choice: Enter waits a redraw after the Down.
        let t2 = t1 + Duration::from_millis(60);
        assert_eq!(
            step(&dialog(true), false, None, &mut cursor, t2, end),
            Step::Look(t1 + DIALOG_REDRAW)
        );
        let t3 = t1 + DIALOG_REDRAW;
        assert!(matches!(
            step(&dialog(true), false, None, &mut cursor, t3, end),
            Step::Press(k, _) if k == ["Enter"]
        ));
        // The CLI goes on starting; once its state says trusted, it is ended.
        let t4 = t3 + Duration::from_millis(100);
        assert!(matches!(
            step(&ScreenKind::Unknown, false, None, &mut cursor, t4, end),
            Step::Look(_)
        ));
        assert_eq!(
            step(&ScreenKind::Ready, true, None, &mut cursor, t4, end),
            Step::Done
        );
    }

    #[test]
    fn an_exit_a_refusal_or_the_deadline_ends_the_attempt_unless_trust_is_recorded() {
        let t0 = Instant::now();
        let end = t0 + TRUST_DEADLINE;
        let mut cursor = None;
        let Step::Failed(why) = step(
            &ScreenKind::Unknown,
            false,
            Some("Claude Code didn't start"),
            &mut cursor,
            t0,
            end,
        ) else {
            panic!("an exit fails");
        };
        assert!(why.contains("didn't start"), "{why}");
        assert!(matches!(
            step(
                &ScreenKind::Refused("bypass".into()),
                false,
                None,
                &mut cursor,
                t0,
                end
            ),
            Step::Failed(_)
        ));
        assert!(matches!(
            step(&ScreenKind::Unknown, false, None, &mut cursor, end, end),
            Step::Failed(w) if w.contains("30s")
        ));
        // Recorded wins: the CLI may exit or stall after writing it.
        assert_eq!(
            step(
                &ScreenKind::Unknown,
                true,
                Some("bye"),
                &mut cursor,
                end,
                end
            ),
            Step::Done
        );
    }
}
