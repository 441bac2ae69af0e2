//! What a spawn request becomes before anything is written: the agent, model, name, role and
//! prompt, permission mode and sandbox, or the refusal that names what to change. No I/O: the
//! caller looks up the spawning instance and resolves the directory first, and carries out the
//! plan (limits that count live rows, the id, the worktree, the row, the launch).

use std::path::{Path, PathBuf};

use super::{MAX_SYSTEM_PROMPT_BYTES, SpawnRequest, controls};
use crate::agents::{Agent, AgentKind, Agents};
use crate::config::PermissionMode;
use crate::error::{Error, Result};
use crate::roles::{self, Resolved};
use crate::settings::Settings;

/// The instance that asks for the spawn, when one does (the person's spawns have none): its
/// child gets no more than it has.
pub struct SpawnedBy<'a> {
    pub id: &'a str,
    pub permission_mode: PermissionMode,
    pub sandbox_mode: Option<&'a str>,
    /// Resolved.
    pub workdir: PathBuf,
}

/// What the server was started with that bears on a spawn.
pub struct Rules<'a> {
    pub default_mode: PermissionMode,
    /// Why Codex instances cannot run, when they cannot.
    pub codex_missing: Option<&'a str>,
    /// Directories an instance's helpers may work in besides its own (`--allow-dir`).
    pub allow_dirs: &'a [PathBuf],
}

/// A spawn, checked.
pub struct SpawnPlan {
    pub agent: std::sync::Arc<dyn Agent>,
    pub model: String,
    pub name: Option<String>,
    pub role: Resolved,
    pub system_prompt: String,
    pub permission_mode: PermissionMode,
    pub sandbox_mode: Option<String>,
    /// JSON, as stored.
    pub permission_rules: Option<String>,
}

/// Checks `req` against the settings, the agents and the spawning instance; `workdir` is the
/// request's `project_dir`, resolved.
pub fn plan(
    req: &SpawnRequest,
    settings: &Settings,
    agents: &Agents,
    rules: &Rules<'_>,
    by: Option<&SpawnedBy<'_>>,
    workdir: Option<&Path>,
) -> Result<SpawnPlan> {
    let (kind, agent) = agent_for(req, agents, rules)?;
    let sandbox_mode = given(&req.sandbox_mode);
    if let Some(s) = &sandbox_mode {
        agent.check_sandbox(s).map_err(Error::InvalidInput)?;
    }
    let asked_mode = asked_mode(req)?;
    let permission_rules = match req.permission_rules.as_ref().filter(|r| !r.is_empty()) {
        Some(r) => {
            r.check().map_err(Error::InvalidInput)?;
            Some(serde_json::to_string(r).unwrap_or_default())
        }
        None => None,
    };
    let (role, system_prompt) = role_and_prompt(req)?;
    let model = model_for(req, settings, agents, kind, &role)?;
    let name = match given(&req.name) {
        Some(n) => Some(super::validate_name(&n)?),
        None => None,
    };
    // An instance's child gets no more than the instance has: no looser permission mode, and
    // a directory inside the one it works in (or one the person allowed).
    let permission_mode = match by {
        Some(by) => crate::access::child_mode(
            (by.permission_mode, by.sandbox_mode),
            asked_mode,
            sandbox_mode.as_deref(),
            rules.default_mode,
        )
        .map_err(Error::InvalidInput)?,
        None => asked_mode.unwrap_or(rules.default_mode),
    };
    if let (Some(by), Some(dir)) = (by, workdir) {
        inside_what_the_parent_has(by, dir, rules.allow_dirs)?;
    }
    Ok(SpawnPlan {
        agent,
        model,
        name,
        role,
        system_prompt,
        permission_mode,
        sandbox_mode,
        permission_rules,
    })
}

/// A field the caller set to something other than spaces, trimmed.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The agent asked for (Claude Code when none), if it is one troupe runs here.
fn agent_for(
    req: &SpawnRequest,
    agents: &Agents,
    rules: &Rules<'_>,
) -> Result<(AgentKind, std::sync::Arc<dyn Agent>)> {
    let kind = match given(&req.agent) {
        None => AgentKind::Claude,
        Some(name) => AgentKind::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = AgentKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::InvalidInput(format!(
                "unknown agent {name:?}; troupe runs {}",
                known.join(" and ")
            ))
        })?,
    };
    if kind == AgentKind::Codex
        && let Some(why) = rules.codex_missing
    {
        return Err(Error::InvalidInput(why.to_string()));
    }
    Ok((kind, agents.of(kind)))
}

fn asked_mode(req: &SpawnRequest) -> Result<Option<PermissionMode>> {
    let Some(m) = given(&req.permission_mode) else {
        return Ok(None);
    };
    PermissionMode::parse_or_explain(&m)
        .map(Some)
        .map_err(Error::InvalidInput)
}

/// The role, and the system prompt: the one given or the role's, with the context after it.
fn role_and_prompt(req: &SpawnRequest) -> Result<(Resolved, String)> {
    let role =
        roles::resolve(req.role.as_deref().unwrap_or("developer")).map_err(Error::InvalidInput)?;
    let prompt_bytes = req
        .system_prompt
        .as_deref()
        .map_or(role.prompt.len(), str::len)
        + req.context.as_deref().map_or(0, str::len);
    if prompt_bytes > MAX_SYSTEM_PROMPT_BYTES {
        return Err(Error::InvalidInput(format!(
            "system_prompt and context come to {prompt_bytes} bytes; the most is \
             {MAX_SYSTEM_PROMPT_BYTES}. Put the long part in a file in the project and name it \
             in the prompt"
        )));
    }
    let mut system_prompt = given(&req.system_prompt).unwrap_or_else(|| role.prompt.clone());
    if let Some(context) = given(&req.context) {
        system_prompt.push_str("\n\nContext for this work:\n");
        system_prompt.push_str(&context);
    }
    Ok((role, system_prompt))
}

/// The model asked for (else the settings' default for the role), if the agent runs it and
/// `allowed_models` lets it.
fn model_for(
    req: &SpawnRequest,
    settings: &Settings,
    agents: &Agents,
    kind: AgentKind,
    role: &Resolved,
) -> Result<String> {
    let agent = agents.of(kind);
    let model = given(&req.model).unwrap_or_else(|| {
        settings.default_model(&role.name, &agent.default_model(role.model), |m| {
            agent.cli_model(m).is_some()
        })
    });
    let cli_model = agent.cli_model(&model).ok_or_else(|| {
        let elsewhere = AgentKind::ALL
            .into_iter()
            .filter(|k| *k != kind && agents.of(*k).cli_model(&model).is_some())
            .map(|k| format!(" ({model} is a {k} model: {} runs it)", k.spawn_tool()))
            .next()
            .unwrap_or_default();
        Error::InvalidInput(format!(
            "unknown {kind} model {model:?}; {}{elsewhere}",
            agent.model_hint()
        ))
    })?;
    if !settings.model_allowed(&model, &cli_model) {
        return Err(Error::Limit(format!(
            "model {model} is not allowed: allowed_models is {} (set in {}); pick one of those, \
             or change allowed_models with configure_orchestration",
            settings.allowed_models.value.join(", "),
            controls::source_words(settings.allowed_models.source)
        )));
    }
    Ok(model)
}

/// A child's directory must be inside its parent's, or one the person allowed.
fn inside_what_the_parent_has(
    by: &SpawnedBy<'_>,
    dir: &Path,
    allow_dirs: &[PathBuf],
) -> Result<()> {
    if dir.starts_with(&by.workdir) || allow_dirs.iter().any(|a| dir.starts_with(a)) {
        return Ok(());
    }
    let allowed = match allow_dirs.is_empty() {
        true => "no other directory is allowed (serve's --allow-dir)".to_string(),
        false => format!(
            "or in one serve's --allow-dir allows: {}",
            allow_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(Error::Forbidden(format!(
        "project_dir {} is outside {}, where {} works; an instance's helpers work inside its own \
         directory, {allowed}",
        dir.display(),
        by.workdir.display(),
        by.id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> Agents {
        Agents::new(
            AgentKind::Claude.default_bin(),
            AgentKind::Codex.default_bin(),
        )
    }

    const RULES: Rules<'static> = Rules {
        default_mode: PermissionMode::Skip,
        codex_missing: None,
        allow_dirs: &[],
    };

    fn refusal(r: Result<SpawnPlan>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(p) => panic!("planned {} {}", p.agent.name(), p.model),
        }
    }

    /// A request with these fields set.
    fn req(fields: &[(&str, &str)]) -> SpawnRequest {
        let mut r = SpawnRequest::default();
        for (k, v) in fields {
            let v = Some(v.to_string());
            match *k {
                "agent" => r.agent = v,
                "sandbox_mode" => r.sandbox_mode = v,
                "role" => r.role = v,
                "model" => r.model = v,
                "context" => r.context = v,
                "permission_mode" => r.permission_mode = v,
                other => panic!("no field {other}"),
            }
        }
        r
    }

    fn settings() -> Settings {
        let none = crate::settings::Layer::default();
        Settings::resolve(&none, &none, &none)
    }

    #[test]
    fn a_plain_request_gets_the_roles_defaults() {
        let p = plan(
            &req(&[("role", "tester")]),
            &settings(),
            &agents(),
            &RULES,
            None,
            None,
        )
        .unwrap();
        assert_eq!(p.agent.kind(), AgentKind::Claude);
        assert_eq!(p.role.name, "tester");
        assert_eq!(p.permission_mode, PermissionMode::Skip);
        assert!(!p.system_prompt.is_empty());
        assert_eq!(p.sandbox_mode, None);
    }

    #[test]
    fn bad_requests_are_refused_naming_the_fix() {
        let s = settings();
        let a = agents();
        let try_ = |f: &[(&str, &str)]| refusal(plan(&req(f), &s, &a, &RULES, None, None));
        assert!(try_(&[("agent", "gemini")]).contains("troupe runs claude and codex"));
        assert!(try_(&[("sandbox_mode", "read-only")]).contains("a Codex setting"));
        assert!(
            try_(&[
                ("agent", AgentKind::Codex.as_str()),
                ("sandbox_mode", "open")
            ])
            .contains("use one of")
        );
        assert!(try_(&[("permission_mode", "yolo")]).contains("accept-edits"));
        assert!(try_(&[("model", "gpt-5")]).contains("spawn_codex runs it"));
        let long = "x".repeat(MAX_SYSTEM_PROMPT_BYTES + 1);
        assert!(try_(&[("context", &long)]).contains("the most is"));
        let missing = Rules {
            codex_missing: Some("no codex here"),
            ..RULES
        };
        let r = plan(&req(&[("agent", "Codex")]), &s, &a, &missing, None, None);
        assert_eq!(refusal(r), "no codex here");
    }

    #[test]
    fn a_child_gets_no_more_than_the_instance_that_spawns_it() {
        let s = settings();
        let a = agents();
        let by = SpawnedBy {
            id: "lead-1",
            permission_mode: PermissionMode::Default,
            sandbox_mode: None,
            workdir: PathBuf::from("/work/lead"),
        };
        let p = plan(&req(&[]), &s, &a, &RULES, Some(&by), None).unwrap();
        assert_eq!(p.permission_mode, PermissionMode::Default);
        let r = plan(
            &req(&[("permission_mode", "skip")]),
            &s,
            &a,
            &RULES,
            Some(&by),
            None,
        );
        assert!(refusal(r).contains("more than its parent"));
        let inside = Path::new("/work/lead/sub");
        assert!(plan(&req(&[]), &s, &a, &RULES, Some(&by), Some(inside)).is_ok());
        let outside = Path::new("/etc");
        let r = plan(&req(&[]), &s, &a, &RULES, Some(&by), Some(outside));
        assert!(refusal(r).contains("outside /work/lead"));
        let shared = [PathBuf::from("/etc")];
        let allowing = Rules {
            allow_dirs: &shared,
            ..RULES
        };
        assert!(plan(&req(&[]), &s, &a, &allowing, Some(&by), Some(outside)).is_ok());
        // The person is bound by none of it.
        assert!(plan(&req(&[]), &s, &a, &RULES, None, Some(outside)).is_ok());
    }
}
