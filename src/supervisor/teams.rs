//! Persistent teams: named sets of members (role, model, prompt) whose instances can be
//! started, stopped with everything else, and resumed days later with their conversations.

use serde_json::json;

use super::{SpawnRequest, Supervisor, validate_name};
use crate::agents::AgentKind;
use crate::db::audit;
use crate::db::instances::Instance;
use crate::db::teams::{Team, TeamMember};
use crate::error::{Error, Result};
use crate::roles;

/// A member as a caller describes it when creating a team.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct NewMember {
    /// Seat name, unique in the team (defaults to the role).
    #[serde(default)]
    pub name: Option<String>,
    /// Role: a preset (architect, developer, reviewer, tester, documenter, researcher) or any
    /// other role name, which runs on sonnet with a prompt built from the name.
    pub role: String,
    /// The agent CLI: claude (the default) or codex.
    #[serde(default)]
    pub agent: Option<String>,
    /// Model (defaults to the role's for Claude, gpt-5 for Codex). `codex/gpt-5` names the
    /// agent too.
    #[serde(default)]
    pub model: Option<String>,
    /// A system prompt replacing the role's preset.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// `skip` (the server's default) or a prompting mode: default, accept-edits, plan.
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// Work in a git worktree of its own, on a branch troupe/<member name>, made from the
    /// team's project_dir repository when the member is spawned.
    #[serde(default)]
    pub use_worktree: bool,
    /// In a fleet, the host it runs on: a host's name, or `label:NAME` for the roomiest host
    /// with that label. Default: as any spawn (the host the call reached).
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct MemberView {
    pub name: String,
    pub role: String,
    pub agent: String,
    pub model: String,
    /// The instance filling the seat, once the team was started.
    pub instance_id: Option<String>,
    /// That instance's state (not_started when there is none).
    pub state: String,
    /// The member works in a git worktree of its own.
    pub use_worktree: bool,
    /// The host it is pinned to (a name or `label:NAME`), if any.
    pub host: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct TeamView {
    pub team_id: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub dissolved_at: Option<String>,
    /// Where the members work, when the team has a directory.
    pub project_dir: Option<String>,
    pub members: Vec<MemberView>,
}

/// A member's model as written, `codex/gpt-5`, `codex` or `opus`: the agent it names (if
/// any) and the model (None for the agent's default).
pub fn split_agent(spec: &str) -> (Option<String>, Option<String>) {
    let spec = spec.trim();
    let known = |a: &str| AgentKind::parse(a).is_some();
    match spec.split_once('/') {
        Some((agent, model)) => (
            Some(agent.trim().to_ascii_lowercase()),
            Some(model.trim().to_string()).filter(|m| !m.is_empty()),
        ),
        None if known(spec) => (Some(spec.to_ascii_lowercase()), None),
        None if spec.is_empty() => (None, None),
        None => (None, Some(spec.to_string())),
    }
}

impl Supervisor {
    pub async fn create_team(
        &self,
        name: &str,
        description: &str,
        members: Vec<NewMember>,
        project_dir: Option<String>,
        caller: Option<&str>,
    ) -> Result<TeamView> {
        let pool = self.pool();
        let name = validate_name(name.trim())?;
        let project_dir = match project_dir
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(dir) => Some(super::project_dir(dir)?.display().to_string()),
            None => None,
        };
        if members.is_empty() {
            return Err(Error::InvalidInput(
                "a team needs at least one member (role, and optionally name and model)".into(),
            ));
        }
        if Team::find_by_name(pool, &name).await?.is_some() {
            return Err(Error::InvalidInput(format!(
                "a team named {name} exists already; resume_team brings it back, or dissolve it first"
            )));
        }
        let team_id = format!("team-{}", uuid::Uuid::now_v7().simple());
        let mut seats: Vec<TeamMember> = Vec::new();
        for m in members {
            let seat = self.seat(&team_id, m, &seats)?;
            seats.push(seat);
        }
        Team::insert_with_members(
            pool,
            &team_id,
            &name,
            description,
            project_dir.as_deref(),
            &seats,
        )
        .await?;
        audit::record(
            pool,
            caller,
            None,
            "team.create",
            json!({ "team": name, "members": seats.iter().map(|s| &s.name).collect::<Vec<_>>() }),
        )
        .await;
        self.team(&name).await
    }

    /// A member's seat: its role's preset, its CLI and a model that CLI runs, and a name no
    /// earlier seat has.
    fn seat(&self, team_id: &str, m: NewMember, taken: &[TeamMember]) -> Result<TeamMember> {
        let preset = roles::resolve(&m.role).map_err(Error::InvalidInput)?;
        let role = preset.name.clone();
        let (named_agent, model) = match m.model.as_deref() {
            Some(spec) => split_agent(spec),
            None => (None, None),
        };
        let agent = m
            .agent
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_ascii_lowercase)
            .or(named_agent)
            .unwrap_or_else(|| AgentKind::Claude.as_str().into());
        let cli = AgentKind::parse(&agent)
            .map(|kind| self.shared.agent(kind))
            .ok_or_else(|| {
                let known: Vec<&str> = AgentKind::ALL.iter().map(|k| k.as_str()).collect();
                Error::InvalidInput(format!(
                    "member {role}: unknown agent {agent:?}; use {}",
                    known.join(" or ")
                ))
            })?;
        let model = model.unwrap_or_else(|| cli.default_model(preset.model));
        if cli.cli_model(&model).is_none() {
            return Err(Error::InvalidInput(format!(
                "member {role}: unknown {agent} model {model:?}; {}",
                cli.model_hint()
            )));
        }
        let permission_mode = match m.permission_mode.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(mode) => Some(
                crate::config::PermissionMode::parse_or_explain(mode)
                    .map_err(|why| Error::InvalidInput(format!("member {role}: {why}")))?
                    .as_str()
                    .to_string(),
            ),
        };
        let base = match m.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => validate_name(n)?,
            None => preset.slug.clone(),
        };
        let mut name = base.clone();
        let mut n = 2;
        while taken.iter().any(|s| s.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        Ok(TeamMember {
            team_id: team_id.to_string(),
            name,
            role,
            agent,
            model,
            system_prompt: m.system_prompt.unwrap_or_default(),
            instance_id: None,
            permission_mode,
            use_worktree: m.use_worktree,
            host: m
                .host
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty()),
        })
    }

    /// Sets the rules that decide every member's permission requests without asking.
    pub async fn set_team_permission_rules(
        &self,
        name: &str,
        rules: &crate::permissions::Rules,
        caller: Option<&str>,
    ) -> Result<TeamView> {
        rules.check().map_err(Error::InvalidInput)?;
        let team = self.find_team(name).await?;
        let text = serde_json::to_string(rules).unwrap_or_default();
        Team::set_permission_rules(self.pool(), &team.id, &text).await?;
        audit::record(
            self.pool(),
            caller,
            None,
            "team.permission_rules",
            json!({ "team": team.name, "rules": rules }),
        )
        .await;
        self.view(team).await
    }

    pub async fn team(&self, name: &str) -> Result<TeamView> {
        let team = self.find_team(name).await?;
        self.view(team).await
    }

    pub async fn list_teams(&self) -> Result<Vec<TeamView>> {
        let mut views = Vec::new();
        for team in Team::list(self.pool()).await? {
            views.push(self.view(team).await?);
        }
        Ok(views)
    }

    /// Spawns every member that has no instance yet, in parallel.
    pub async fn start_team(
        &self,
        name: &str,
        project_dir: Option<String>,
        caller: Option<&str>,
    ) -> Result<TeamView> {
        let (sup, name, caller) = (self.clone(), name.to_string(), caller.map(str::to_string));
        super::to_the_end(async move {
            sup.start_team_now(&name, project_dir, caller.as_deref())
                .await
        })
        .await
    }

    async fn start_team_now(
        &self,
        name: &str,
        project_dir: Option<String>,
        caller: Option<&str>,
    ) -> Result<TeamView> {
        let mut team = self.find_team(name).await?;
        // A directory given now is the team's from now on.
        if let Some(dir) = project_dir
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            let dir = super::project_dir(dir)?.display().to_string();
            Team::set_project_dir(self.pool(), &team.id, &dir).await?;
            team.project_dir = Some(dir);
        }
        let project_dir = team.project_dir.clone();
        let members = TeamMember::for_team(self.pool(), &team.id).await?;
        let spawns = members
            .into_iter()
            .filter(|m| m.instance_id.is_none())
            .map(|m| self.spawn_member(&team, m, project_dir.clone(), caller));
        let results = futures::future::join_all(spawns).await;
        audit::record(
            self.pool(),
            caller,
            None,
            "team.start",
            json!({ "team": team.name }),
        )
        .await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e);
        }
        self.view(team).await
    }

    /// Brings every member back: live ones are left alone, stopped ones resume their own
    /// conversation, seats never filled are spawned.
    pub async fn resume_team(&self, name: &str, caller: Option<&str>) -> Result<TeamView> {
        let (sup, name, caller) = (self.clone(), name.to_string(), caller.map(str::to_string));
        super::to_the_end(async move { sup.resume_team_now(&name, caller.as_deref()).await }).await
    }

    async fn resume_team_now(&self, name: &str, caller: Option<&str>) -> Result<TeamView> {
        let team = self.find_team(name).await?;
        let members = TeamMember::for_team(self.pool(), &team.id).await?;
        let work = members.into_iter().map(|m| {
            let team = &team;
            async move {
                match m.instance_id.clone() {
                    Some(id) => self.resume_instance(&id, caller).await.map(|_| ()),
                    None => {
                        self.spawn_member(team, m, team.project_dir.clone(), caller)
                            .await
                    }
                }
            }
        });
        let results = futures::future::join_all(work).await;
        audit::record(
            self.pool(),
            caller,
            None,
            "team.resume",
            json!({ "team": team.name }),
        )
        .await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e);
        }
        self.view(team).await
    }

    /// Terminates the members' instances and retires the team (its records stay).
    pub async fn dissolve_team(&self, name: &str, caller: Option<&str>) -> Result<TeamView> {
        let (sup, name, caller) = (self.clone(), name.to_string(), caller.map(str::to_string));
        super::to_the_end(async move { sup.dissolve_team_now(&name, caller.as_deref()).await })
            .await
    }

    async fn dissolve_team_now(&self, name: &str, caller: Option<&str>) -> Result<TeamView> {
        let team = self.find_team(name).await?;
        for m in TeamMember::for_team(self.pool(), &team.id).await? {
            if let Some(id) = m.instance_id
                && self.handle(&id).is_some()
            {
                self.terminate(&id, caller).await?;
            }
        }
        Team::dissolve(self.pool(), &team.id).await?;
        audit::record(
            self.pool(),
            caller,
            None,
            "team.dissolve",
            json!({ "team": team.name }),
        )
        .await;
        let team = Team {
            dissolved_at: Some(crate::db::now()),
            ..team
        };
        self.view(team).await
    }

    async fn spawn_member(
        &self,
        team: &Team,
        m: TeamMember,
        project_dir: Option<String>,
        caller: Option<&str>,
    ) -> Result<()> {
        let inst = self
            .spawn(
                SpawnRequest {
                    agent: Some(m.agent.clone()),
                    sandbox_mode: None,
                    name: Some(m.name.clone()),
                    role: Some(m.role.clone()),
                    model: Some(m.model.clone()),
                    system_prompt: Some(m.system_prompt.clone()).filter(|p| !p.is_empty()),
                    context: Some(format!(
                        "You are {} on the team {}. {}",
                        m.name, team.name, team.description
                    )),
                    project_dir,
                    parent_instance_id: None,
                    permission_mode: m.permission_mode.clone(),
                    use_worktree: m.use_worktree,
                    host: m.host.clone(),
                    ..Default::default()
                },
                caller,
            )
            .await?;
        Instance::set_team(self.pool(), &inst.id, &team.id).await?;
        TeamMember::set_instance(self.pool(), &team.id, &m.name, &inst.id).await?;
        Ok(())
    }

    async fn find_team(&self, name: &str) -> Result<Team> {
        Team::find_by_name(self.pool(), name.trim())
            .await?
            .ok_or_else(|| Error::UnknownTeam(name.trim().to_string()))
    }

    async fn view(&self, team: Team) -> Result<TeamView> {
        let mut members = Vec::new();
        for m in TeamMember::for_team(self.pool(), &team.id).await? {
            let state = match &m.instance_id {
                Some(id) => Instance::find(self.pool(), id)
                    .await?
                    .map(|i| i.state.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                None => "not_started".into(),
            };
            members.push(MemberView {
                name: m.name,
                role: m.role,
                agent: m.agent,
                model: m.model,
                instance_id: m.instance_id,
                state,
                use_worktree: m.use_worktree,
                host: m.host,
            });
        }
        Ok(TeamView {
            team_id: team.id,
            name: team.name,
            description: team.description,
            created_at: team.created_at,
            dissolved_at: team.dissolved_at,
            project_dir: team.project_dir,
            members,
        })
    }
}
