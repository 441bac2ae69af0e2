//! `troupe doctor`: what troupe needs, checked one line at a time, each line ok or the fix.
//! Gathering the facts does the I/O ([`gather`]); judging them ([`judge`]) does none, so every
//! verdict and its wording is unit-tested.

use crate::agents::AgentKind;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::agents::versions::{Standing, Tested};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works, with something to know or to do.
    Warn,
    /// troupe cannot do its work until this is fixed.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// The answer first.
    pub detail: String,
    /// What to do, when there is something to do.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Where troupe looks, as the command line and environment set it.
#[derive(Debug, Clone)]
pub struct Setup {
    pub claude_bin: String,
    pub codex_bin: String,
    pub data_dir: PathBuf,
    pub url: String,
    /// The token as given (flag or environment); else the data dir's token file is read.
    pub token: Option<String>,
    /// `--db` as given: a PostgreSQL URL is checked there; else the data dir's troupe.db.
    pub db: Option<String>,
}

/// What was found, before any judgement.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub tmux: Option<Result<String, String>>,
    pub claude: Option<Result<String, String>>,
    pub codex: Option<Result<String, String>>,
    pub data_dir: PathBuf,
    pub data_dir_writable: Option<Result<(), String>>,
    /// The database file's size, if it exists.
    pub database: Option<u64>,
    /// A PostgreSQL registry: its URL as shown (no password), and its version or why it did
    /// not answer.
    pub registry: Option<(String, Result<String, String>)>,
    /// The server's /health said `degraded`, for this reason.
    pub degraded: Option<String>,
    /// Where the token came from, or why it could not be read.
    pub token: Option<Result<&'static str, String>>,
    pub url: String,
    /// The server's answer to /health, or why there was none.
    pub server: Option<Result<(), String>>,
    /// `/api/mcp-clients`, when the server answered it.
    pub clients: Option<Result<Value, String>>,
    /// The newest failures from the audit log, newest first.
    pub failures: Vec<Value>,
}

/// Runs every check's I/O.
pub async fn gather(setup: &Setup) -> Facts {
    let mut facts = Facts {
        tmux: Some(crate::tmux::version().map_err(|e| e.to_string())),
        claude: Some(crate::process::version(&setup.claude_bin, &["--version"])),
        codex: Some(crate::process::version(&setup.codex_bin, &["--version"])),
        data_dir: setup.data_dir.clone(),
        url: setup.url.clone(),
        ..Facts::default()
    };
    facts.data_dir_writable = Some(match setup.data_dir.exists() {
        true => crate::preflight::writable(&setup.data_dir).map_err(|e| e.to_string()),
        false => Err("it does not exist yet".into()),
    });
    facts.database = std::fs::metadata(setup.data_dir.join("troupe.db"))
        .ok()
        .map(|m| m.len());
    if let Some(url) = setup
        .db
        .as_deref()
        .filter(|d| crate::db::is_postgres_url(d))
    {
        facts.registry = Some((
            crate::db::redacted(url),
            crate::db::server_version(url).await,
        ));
    }
    let token = match &setup.token {
        Some(t) => Ok(("the --token flag or TROUPE_TOKEN", t.clone())),
        None => read_token(&setup.data_dir),
    };
    facts.token = Some(token.as_ref().map(|(from, _)| *from).map_err(Clone::clone));
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let base = setup.url.trim_end_matches('/');
    facts.server = Some(match http.get(format!("{base}/health")).send().await {
        Ok(r) if r.status().is_success() => {
            let body: Value = r.json().await.unwrap_or_default();
            if body["status"] == "degraded" {
                facts.degraded = Some(body["reason"].as_str().unwrap_or("no reason given").into());
            }
            Ok(())
        }
        Ok(r) => Err(format!("it answered {}", r.status())),
        Err(e) => Err(crate::cli::reach_error(&e)),
    });
    if let (Some(Ok(())), Ok((_, token))) = (&facts.server, &token) {
        let get = |path: String| {
            let http = http.clone();
            let token = token.clone();
            async move {
                let r = http
                    .get(path)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("it answered {}", r.status()));
                }
                r.json::<Value>().await.map_err(|e| e.to_string())
            }
        };
        facts.clients = Some(get(format!("{base}/api/mcp-clients")).await);
        for kind in FAILURES {
            if let Ok(page) = get(format!("{base}/api/audit?kind={kind}&limit=3")).await
                && let Some(events) = page["events"].as_array()
            {
                facts.failures.extend(events.iter().cloned());
            }
        }
        facts
            .failures
            .sort_by(|a, b| b["at"].as_str().cmp(&a["at"].as_str()));
        facts.failures.truncate(5);
    }
    facts
}

/// The audit kinds that say something went wrong.
const FAILURES: [&str; 5] = [
    "access.refused",
    "instance.failed",
    "auth.refused",
    "approval.refused",
    "permission.expired",
];

fn read_token(data_dir: &Path) -> Result<(&'static str, String), String> {
    let file = data_dir.join("token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(("the data directory's token file", t.trim().into())),
        Ok(_) => Err(format!("{} is empty", file.display())),
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// Every check, in the order a person fixes things.
pub fn judge(f: &Facts, claude: &Tested, codex: &Tested) -> Vec<Check> {
    let mut out = this_machine(f, claude, codex);
    out.extend(the_server(f));
    out
}

/// What this machine has: tmux, the CLIs, the data directory, the database and the token.
fn this_machine(f: &Facts, claude: &Tested, codex: &Tested) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match &f.tmux {
        Some(Ok(v)) => Check::ok("tmux", v.clone()),
        Some(Err(e)) => Check::fail(
            "tmux",
            format!("cannot run tmux ({e})"),
            "install it: apt install tmux, or brew install tmux",
        ),
        None => Check::fail("tmux", "not checked", "run troupe doctor again"),
    });
    for (kind, found, required) in [
        (AgentKind::Claude, &f.claude, true),
        (AgentKind::Codex, &f.codex, false),
    ] {
        let install = format!("npm install -g {}", kind.npm_package());
        let tested = match kind {
            AgentKind::Claude => claude,
            AgentKind::Codex => codex,
        };
        out.push(cli(
            kind.as_str(),
            found,
            tested,
            &install,
            kind.bin_flag(),
            required,
        ));
    }
    let dir = f.data_dir.display();
    out.push(match &f.data_dir_writable {
        Some(Ok(())) => Check::ok("data dir", format!("{dir} (writable)")),
        Some(Err(e)) if !f.data_dir.exists() => Check::warn(
            "data dir",
            format!("{dir}: {e}"),
            "troupe serve makes it at first start",
        ),
        Some(Err(e)) => Check::fail(
            "data dir",
            format!("{dir} is not writable ({e})"),
            "choose another with --data-dir (TROUPE_DATA_DIR)",
        ),
        None => Check::fail("data dir", "not checked", "run troupe doctor again"),
    });
    out.push(match (&f.registry, f.database) {
        (Some((shown, Ok(version))), _) => Check::ok("database", format!("PostgreSQL {version} at {shown}")),
        (Some((shown, Err(e))), _) => Check::fail(
            "database",
            format!("cannot reach {shown} ({e})"),
            "check the URL in --db (TROUPE_DB) and that the database server runs and takes connections from here",
        ),
        (None, database) => match database {
        Some(bytes) => Check::ok(
            "database",
            format!(
                "{} ({} KB)",
                f.data_dir.join("troupe.db").display(),
                bytes / 1024
            ),
        ),
        None => Check::warn(
            "database",
            format!("no troupe.db in {dir} yet"),
            "troupe serve makes it at first start (or pass the --data-dir the server uses)",
        ),
        },
    });
    out.push(match &f.token {
        Some(Ok(from)) => Check::ok("token", format!("from {from}")),
        Some(Err(e)) => Check::warn(
            "token",
            e.clone(),
            "troupe serve writes it at first start; or pass --token (TROUPE_TOKEN)",
        ),
        None => Check::warn("token", "not checked", "run troupe doctor again"),
    });
    out
}

/// What the running server says: that it answers, its MCP clients, the failures it logged.
fn the_server(f: &Facts) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match &f.server {
        Some(Ok(())) => match &f.degraded {
            None => Check::ok("server", format!("troupe answers at {}", f.url)),
            Some(why) => Check::fail(
                "server",
                format!("troupe answers at {}, but {why}", f.url),
                "check that the database server runs and is reachable from the server's machine",
            ),
        },
        Some(Err(e)) => Check::warn(
            "server",
            format!("no troupe at {} ({e})", f.url),
            "start it with `troupe serve` (or pass --url where it runs)",
        ),
        None => Check::warn("server", "not checked", "run troupe doctor again"),
    });
    match &f.clients {
        Some(Ok(v)) => out.extend(clients(v)),
        Some(Err(e)) => out.push(Check::warn(
            "mcp clients",
            format!("the server did not list them ({e})"),
            "check the token: troupe serve prints it at start",
        )),
        None => {}
    }
    if f.clients.is_some() {
        out.push(match f.failures.first() {
            None => Check::ok("failures", "none in the audit log"),
            Some(_) => Check::warn(
                "failures",
                f.failures
                    .iter()
                    .map(failure_line)
                    .collect::<Vec<_>>()
                    .join("; "),
                "`troupe report audit` shows each in full",
            ),
        });
    }
    out
}

fn cli(
    name: &'static str,
    found: &Option<Result<String, String>>,
    tested: &Tested,
    install: &str,
    flag: &str,
    needed: bool,
) -> Check {
    match found {
        Some(Ok(printed)) => {
            let a = tested.assess(printed);
            let pin = a
                .version
                .map(|_| {
                    format!(
                        "for a tested one: {install}@{}",
                        tested
                            .versions
                            .last()
                            .map(|v| v.to_string())
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            match a.standing {
                Standing::Tested => Check::ok(name, a.to_string()),
                Standing::Older => Check::fail(name, a.to_string(), pin),
                _ => Check::warn(name, a.to_string(), pin),
            }
        }
        Some(Err(e)) if needed => Check::fail(
            name,
            format!("cannot run it ({e})"),
            format!("install it with `{install}`, or point {flag} at it"),
        ),
        Some(Err(e)) => Check::warn(
            name,
            format!("cannot run it ({e}); spawn_codex is off"),
            format!("install it with `{install}`, or point {flag} at it"),
        ),
        None => Check::fail(name, "not checked", "run troupe doctor again"),
    }
}

fn clients(v: &Value) -> Vec<Check> {
    let list = v["clients"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return vec![Check::ok(
            "mcp clients",
            "none since the server started (add troupe to Claude Code: troupe mcp install)",
        )];
    }
    list.iter()
        .map(|c| {
            let who = match c["instance_id"].as_str() {
                Some(id) => format!("instance {id}"),
                None => "the person".into(),
            };
            let era = match c["era"].as_str() {
                Some("stateless") => "stateless",
                _ => "sessions",
            };
            let mut can = Vec::new();
            if c["roots"].as_bool() == Some(true) {
                can.push("roots");
            }
            if c["elicitation"].as_bool() == Some(true) {
                can.push("forms");
            }
            let can = match can.is_empty() {
                true => "no roots, no forms".to_string(),
                false => can.join(", "),
            };
            Check::ok(
                "mcp client",
                format!(
                    "{} ({who}): MCP {} ({era}), {can}; last seen {}",
                    c["client"].as_str().unwrap_or("unnamed"),
                    c["protocol_version"].as_str().unwrap_or("?"),
                    c["last_seen"].as_str().unwrap_or("?"),
                ),
            )
        })
        .collect()
}

fn failure_line(e: &Value) -> String {
    let detail = &e["detail"];
    let why = detail["reason"]
        .as_str()
        .or(detail["error"].as_str())
        .or(detail["why"].as_str())
        .or(detail["answer"].as_str())
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    format!(
        "{} {}{}{}",
        e["at"].as_str().unwrap_or("?"),
        e["kind"].as_str().unwrap_or("?"),
        e["instance_id"]
            .as_str()
            .map(|i| format!(" ({i})"))
            .unwrap_or_default(),
        why
    )
}

/// The report as people read it: a line per check, the fix under it.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{mark}  {:<12} {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:<12} → {fix}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn healthy() -> Facts {
        Facts {
            tmux: Some(Ok("tmux 3.4".into())),
            claude: Some(Ok("2.1.328 (Claude Code)".into())),
            codex: Some(Ok("codex-cli 0.169.0".into())),
            data_dir: PathBuf::from("/data"),
            data_dir_writable: Some(Ok(())),
            database: Some(40_960),
            token: Some(Ok("the data directory's token file")),
            url: "http://127.0.0.1:8001".into(),
            server: Some(Ok(())),
            clients: Some(Ok(json!({ "clients": [{
                "client": "claude-code 2.1.328", "protocol_version": "2026-07-28",
                "era": "stateless", "instance_id": null, "roots": true, "elicitation": true,
                "last_seen": "2026-12-06T06:00:00Z",
            }] }))),
            failures: vec![],
            registry: None,
            degraded: None,
        }
    }

    fn judged(f: &Facts) -> Vec<Check> {
        judge(
            f,
            &crate::agents::claude::TESTED,
            &crate::agents::codex::TESTED,
        )
    }

    #[test]
    fn a_healthy_setup_is_all_ok_and_names_the_era() {
        let checks = judged(&healthy());
        assert!(checks.iter().all(|c| c.status == Status::Ok), "{checks:#?}");
        let text = render(&checks);
        assert!(text.contains("Claude Code 2.1.328 (tested)"), "{text}");
        assert!(text.contains("Codex 0.169.0 (tested)"), "{text}");
        assert!(
            text.contains(
                "claude-code 2.1.328 (the person): MCP 2026-07-28 (stateless), roots, forms"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_postgresql_registry_is_named_without_its_password_and_an_outage_fails() {
        let by = |f: &Facts, n: &str| judged(f).into_iter().find(|c| c.name == n).unwrap();
        let mut f = healthy();
        f.registry = Some(("postgres://u:***@db/troupe".into(), Ok("15.18".into())));
        let c = by(&f, "database");
        assert_eq!(c.status, Status::Ok);
        assert_eq!(c.detail, "PostgreSQL 15.18 at postgres://u:***@db/troupe");
        f.registry = Some((
            "postgres://u:***@db/troupe".into(),
            Err("Connection refused (os error 111)".into()),
        ));
        let c = by(&f, "database");
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("TROUPE_DB"));
        f.degraded = Some("the database has not answered since 12:00:00 UTC".into());
        let c = by(&f, "server");
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("but the database has not answered"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn an_untested_claude_code_warns_and_names_a_tested_one() {
        let mut f = healthy();
        f.claude = Some(Ok("2.1.401 (Claude Code)".into()));
        let c = &judged(&f)[1];
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.contains("newer than the tested 2.1.197–2.1.328"),
            "{}",
            c.detail
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("for a tested one: npm install -g @anthropic-ai/claude-code@2.1.328")
        );
        f.claude = Some(Ok("2.0.1 (Claude Code)".into()));
        assert_eq!(judged(&f)[1].status, Status::Fail);
    }

    #[test]
    fn missing_parts_fail_or_warn_with_their_fix() {
        let mut f = healthy();
        f.tmux = Some(Err("No such file or directory".into()));
        f.claude = Some(Err("No such file or directory".into()));
        f.codex = Some(Err("No such file or directory".into()));
        f.server = Some(Err("connection refused".into()));
        f.clients = None;
        let checks = judged(&f);
        let by = |n: &str| checks.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(by("tmux").status, Status::Fail);
        assert!(by("tmux").fix.unwrap().contains("apt install tmux"));
        let (claude, codex) = (AgentKind::Claude.as_str(), AgentKind::Codex.as_str());
        assert_eq!(by(claude).status, Status::Fail);
        assert!(by(claude).fix.unwrap().contains("TROUPE_CLAUDE_BIN"));
        assert_eq!(by(codex).status, Status::Warn, "codex is optional");
        assert_eq!(by("server").status, Status::Warn);
        assert!(by("server").fix.unwrap().contains("troupe serve"));
        assert!(
            !checks.iter().any(|c| c.name == "failures"),
            "no server, no log"
        );
    }

    #[test]
    fn failures_are_listed_newest_first_in_a_line() {
        let mut f = healthy();
        f.failures = vec![
            json!({ "at": "2026-12-06T06:01:00Z", "kind": "instance.failed",
                    "instance_id": "inst-1", "detail": { "reason": "the CLI exited while starting" } }),
            json!({ "at": "2026-12-06T05:00:00Z", "kind": "auth.refused", "detail": {} }),
        ];
        let c = judged(&f)
            .into_iter()
            .find(|c| c.name == "failures")
            .unwrap();
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.detail,
            "2026-12-06T06:01:00Z instance.failed (inst-1): the CLI exited while starting; \
             2026-12-06T05:00:00Z auth.refused"
        );
    }
}
