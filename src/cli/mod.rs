//! The command line: its shape (`args`), what each subcommand does (`commands`, with `serve`
//! and the person's answers in `asks`), and the client that talks to a running server's REST
//! API and event stream.

pub mod args;
mod asks;
pub mod commands;
pub mod logs;
mod notify;
mod serve;
pub mod sse;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::supervisor::teams::NewMember;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        // The server takes changes only as JSON, an empty object when there is nothing to say.
        match body {
            Some(b) => req = req.json(&b),
            None if method != reqwest::Method::GET => req = req.json(&json!({})),
            None => {}
        }
        let resp = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = value["error"].as_str().unwrap_or("request failed");
            anyhow::bail!("{} ({status})", for_the_command_line(msg));
        }
        Ok(value)
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn instance(&self, id: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, &format!("/api/instances/{id}"), None)
            .await
    }

    /// The last `limit` output chunks of an instance, oldest first.
    pub async fn output(&self, id: &str, limit: u32) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/instances/{id}/output?limit={limit}"),
            None,
        )
        .await
    }

    pub async fn notify(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/notify", None).await
    }

    pub async fn notify_test(&self, name: Option<&str>) -> anyhow::Result<Value> {
        let body = match name {
            Some(n) => json!({ "name": n }),
            None => json!({}),
        };
        self.call(reqwest::Method::POST, "/api/notify/test", Some(body))
            .await
    }

    pub async fn login_link(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/api/login-link", None)
            .await
    }

    /// Opens `/api/events` (with `query`, e.g. `instance_id=…&kinds=output`): once this
    /// returns, every later change reaches the stream.
    pub async fn events(&self, query: &str) -> anyhow::Result<sse::Events> {
        let url = format!("{}/api/events?{query}", self.base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let value: Value = resp.json().await.unwrap_or(Value::Null);
            let msg = value["error"].as_str().unwrap_or("request failed");
            anyhow::bail!("{msg} ({status})");
        }
        Ok(sse::Events::new(resp.bytes_stream().boxed()))
    }

    pub async fn instances(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/instances", None)
            .await
    }

    /// The registry's hosts.
    pub async fn hosts(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/hosts", None).await
    }

    /// Drains host `name` (or, with `drain` false, takes it back).
    pub async fn drain_host(
        &self,
        name: &str,
        drain: bool,
        suspend: bool,
    ) -> anyhow::Result<Value> {
        let name = crate::hosts::checked_name(name).map_err(anyhow::Error::msg)?;
        let path = format!("/api/hosts/{name}/drain");
        self.call(
            reqwest::Method::POST,
            &path,
            Some(serde_json::json!({ "drain": drain, "suspend": suspend })),
        )
        .await
    }

    /// Forgets host `name`.
    pub async fn forget_host(&self, name: &str) -> anyhow::Result<Value> {
        let name = crate::hosts::checked_name(name).map_err(anyhow::Error::msg)?;
        let path = format!("/api/hosts/{name}/forget");
        self.call(reqwest::Method::POST, &path, Some(serde_json::json!({})))
            .await
    }

    /// Every instance, ended ones (terminated, failed) included.
    pub async fn all_instances(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/instances?all=true", None)
            .await
    }

    pub async fn send(&self, id: &str, message: &str, wait: bool) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/instances/{id}/send"),
            Some(json!({ "message": message, "wait": wait })),
        )
        .await
    }

    /// Permission requests waiting for a decision.
    pub async fn permissions(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/permissions", None)
            .await
    }

    /// Allows or denies a waiting permission request, found by its id.
    pub async fn decide(
        &self,
        request_id: &str,
        decision: &str,
        message: Option<&str>,
    ) -> anyhow::Result<Value> {
        let pending = self.permissions().await?;
        let Some(instance) = pending["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["request_id"] == request_id)
            .and_then(|r| r["instance_id"].as_str())
        else {
            anyhow::bail!(
                "no permission request {request_id} is waiting; `troupe permissions` lists the \
                 ones that are"
            );
        };
        self.call(
            reqwest::Method::POST,
            &format!("/api/instances/{instance}/permissions/{request_id}"),
            Some(json!({ "decision": decision, "message": message })),
        )
        .await
    }

    /// The live dashboard logins.
    pub async fn logins(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/logins", None).await
    }

    /// Ends every dashboard login.
    pub async fn end_logins(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, "/api/logins", None)
            .await
    }

    /// Instances' calls waiting for the person's approval.
    pub async fn approvals(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/approvals", None)
            .await
    }

    /// The person's answer to an approval.
    pub async fn approve(
        &self,
        approval_id: &str,
        approve: bool,
        reason: Option<&str>,
    ) -> anyhow::Result<Value> {
        let approval_id = approval_id.trim();
        if approval_id.is_empty()
            || !approval_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!(
                "{approval_id:?} is not an approval id (appr-…); `troupe approve` lists the ones \
                 waiting"
            );
        }
        let path = format!("/api/approvals/{approval_id}");
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({ "approve": approve, "reason": reason })),
        )
        .await
    }

    /// `interrupt`, `terminate` or `resume` one instance.
    pub async fn act(&self, id: &str, action: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/instances/{id}/{action}"),
            None,
        )
        .await
    }

    pub async fn tree(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/tree", None).await
    }

    pub async fn metrics(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/metrics", None).await
    }

    pub async fn create_team(
        &self,
        name: &str,
        description: &str,
        members: &[NewMember],
        project_dir: Option<&str>,
    ) -> anyhow::Result<Value> {
        let members: Vec<Value> = members
            .iter()
            .map(|m| {
                json!({
                    "name": m.name, "role": m.role, "model": m.model, "agent": m.agent,
                    "use_worktree": m.use_worktree,
                })
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            "/api/teams",
            Some(json!({
                "name": name,
                "description": description,
                "members": members,
                "project_dir": project_dir,
            })),
        )
        .await
    }

    pub async fn teams(&self) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, "/api/teams", None).await
    }

    pub async fn team(&self, name: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, &format!("/api/teams/{name}"), None)
            .await
    }

    pub async fn start_team(&self, name: &str, project_dir: Option<&str>) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/teams/{name}/start"),
            Some(json!({ "project_dir": project_dir })),
        )
        .await
    }

    /// Attaches a session troupe did not start (`troupe chat`).
    pub async fn attach(&self, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/api/sessions", Some(body.clone()))
            .await
    }

    pub async fn detach(&self, id: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/sessions/{id}/end"),
            None,
        )
        .await
    }

    pub async fn resume_team(&self, name: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/teams/{name}/resume"),
            None,
        )
        .await
    }

    pub async fn dissolve_team(&self, name: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, &format!("/api/teams/{name}"), None)
            .await
    }
}

/// The server's errors name the MCP tools that fix things; at a shell, the command is the
/// next step.
pub fn for_the_command_line(error: &str) -> String {
    const NEXT: &[(&str, &str)] = &[
        ("list_instances shows", "`troupe ls` shows"),
        ("list_teams shows", "`troupe team ls` shows"),
        ("resume_instance brings", "`troupe resume <id>` brings"),
        ("resume_instance tries", "`troupe resume <id>` tries"),
        ("or interrupt_instance", "or `troupe interrupt <id>`"),
    ];
    NEXT.iter()
        .fold(error.to_string(), |text, (tool, command)| {
            text.replace(tool, command)
        })
}

/// What to say when no server answers: where it was looked for and how to start one.
fn unreachable(base: &str, e: &reqwest::Error) -> anyhow::Error {
    let why = reach_error(e);
    anyhow::anyhow!(
        "no troupe server answers at {base} ({why}). Start one with `troupe serve`, or point \
         --url / TROUPE_URL at the one you run"
    )
}

/// Why a request did not reach the server, in words.
pub fn reach_error(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "nothing is listening there".to_string()
    } else if e.is_timeout() {
        "it did not answer in time".to_string()
    } else {
        e.to_string()
    }
}

/// Parses the seed's member list: `architect:opus,developer:sonnet,tester:haiku`, each entry
/// `role[:model]` or `name=role[:model]`, where the model may name its agent
/// (`coder:codex/gpt-5`, or `coder:codex` for Codex's default model).
pub fn parse_members(spec: &str) -> anyhow::Result<Vec<NewMember>> {
    let mut members = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = match entry.split_once('=') {
            Some((n, r)) => (Some(n.trim().to_string()), r),
            None => (None, entry),
        };
        let (role, model) = match rest.split_once(':') {
            Some((r, m)) => (r.trim(), Some(m.trim().to_string())),
            None => (rest.trim(), None),
        };
        if role.is_empty() {
            anyhow::bail!("member {entry:?} has no role; write role[:model] or name=role[:model]");
        }
        let (agent, model) = match model {
            Some(m) => crate::supervisor::teams::split_agent(&m),
            None => (None, None),
        };
        members.push(NewMember {
            name,
            role: role.to_string(),
            agent,
            model,
            system_prompt: None,
            ..Default::default()
        });
    }
    if members.is_empty() {
        anyhow::bail!(
            "no members given; e.g. --members architect:opus,developer:sonnet,tester:haiku"
        );
    }
    Ok(members)
}

/// Rows as an aligned table under a header, for people.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut l = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// How long ago an RFC 3339 time was, as people say it (`12s`, `5m`, `3h`, `2d`).
pub fn age(since: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(since) else {
        return "-".into();
    };
    let secs = (now - t.to_utc()).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// An instance's cost for people: dollars, with the unpriced calls said.
pub fn cost(usage: &Value) -> String {
    let micros = usage["cost_micros"].as_i64().unwrap_or(0);
    let unpriced = usage["unpriced_calls"].as_i64().unwrap_or(0);
    match unpriced {
        0 => format!("${:.4}", micros as f64 / 1e6),
        n => format!("${:.4} +{n} unpriced", micros as f64 / 1e6),
    }
}

/// One line per team member.
pub fn print_team(team: &Value) {
    println!(
        "{}{}",
        team["name"].as_str().unwrap_or("?"),
        match team["description"].as_str() {
            Some(d) if !d.is_empty() => format!(" — {d}"),
            _ => String::new(),
        }
    );
    if let Some(dir) = team["project_dir"].as_str() {
        println!("  works in {dir}");
    }
    for m in team["members"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:<11} {:<8} {:<22} {}",
            m["name"].as_str().unwrap_or(""),
            m["role"].as_str().unwrap_or(""),
            m["model"].as_str().unwrap_or(""),
            m["instance_id"].as_str().unwrap_or("-"),
            m["state"].as_str().unwrap_or("")
        );
    }
}

/// A directory from the command line, made absolute against the current directory: the
/// server runs elsewhere and takes absolute paths only.
pub fn absolute_dir(dir: &str) -> anyhow::Result<String> {
    let path = std::path::absolute(dir)
        .map_err(|e| anyhow::anyhow!("cannot make {dir:?} an absolute path: {e}"))?;
    if !path.is_dir() {
        anyhow::bail!("{} is not a directory", path.display());
    }
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::{age, parse_members, table};

    #[test]
    fn tables_align_and_ages_read_short() {
        let t = table(
            &["ID", "STATE"],
            &[
                vec!["dev-1a2b".into(), "idle".into()],
                vec!["a".into(), "busy".into()],
            ],
        );
        assert_eq!(t, "ID        STATE\ndev-1a2b  idle\na         busy\n");
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(age("2026-12-01T09:59:48Z", now), "12s");
        assert_eq!(age("2026-12-01T07:00:00Z", now), "3h");
        assert_eq!(age("2026-11-28T10:00:00Z", now), "3d");
        assert_eq!(age("never", now), "-");
    }

    #[test]
    fn errors_name_the_command_to_run() {
        assert_eq!(
            super::for_the_command_line(
                "no instance ghost; list_instances shows the instances that exist"
            ),
            "no instance ghost; `troupe ls` shows the instances that exist"
        );
        assert_eq!(
            super::for_the_command_line(
                "instance dev-1 is exited; resume_instance brings it back with its conversation"
            ),
            "instance dev-1 is exited; `troupe resume <id>` brings it back with its conversation"
        );
    }

    #[test]
    fn the_seed_member_list_parses() {
        let m =
            parse_members("architect:opus,developer:sonnet, lead=tester:haiku,reviewer").unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].role, "architect");
        assert_eq!(m[0].model.as_deref(), Some("opus"));
        assert_eq!(m[2].name.as_deref(), Some("lead"));
        assert_eq!(m[2].role, "tester");
        assert_eq!(m[3].model, None);
        let m = parse_members("architect:opus,coder:codex/gpt-5,helper:codex").unwrap();
        assert_eq!(m[0].agent, None);
        assert_eq!(
            m[1].agent.as_deref(),
            Some(crate::agents::AgentKind::Codex.as_str())
        );
        assert_eq!(m[1].model.as_deref(), Some("gpt-5"));
        assert_eq!(
            m[2].agent.as_deref(),
            Some(crate::agents::AgentKind::Codex.as_str())
        );
        assert_eq!(m[2].model, None);
        assert!(parse_members("").is_err());
        assert!(parse_members(":opus").is_err());
    }
}
