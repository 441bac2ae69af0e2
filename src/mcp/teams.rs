use super::Json;
use super::Parameters;
use rmcp::model::Extensions;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Troupe, caller, tool_error};
use crate::supervisor::teams::{NewMember, TeamView};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateTeamParams {
    /// Team name (letters, digits, '-', '_'), e.g. dev-team.
    pub name: String,
    /// What the team is for; every member is told.
    #[serde(default)]
    pub description: Option<String>,
    /// The seats: role (required), name, agent, model, system_prompt.
    pub members: Vec<NewMember>,
    /// Absolute path of the code the members work on; start_team and resume_team use it.
    #[serde(default)]
    pub project_dir: Option<String>,
    /// Rules that decide every member's permission requests without asking anyone (members in
    /// a prompting permission_mode): {"allow": ["Bash(npm test*)"], "deny": ["Bash(rm *)"]}.
    #[serde(default)]
    pub permission_rules: Option<crate::permissions::Rules>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TeamNameParams {
    /// The team's name.
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StartTeamParams {
    /// The team's name.
    pub name: String,
    /// Absolute path the members work in; kept as the team's from now on (default: the one
    /// the team has, else a workspace each).
    #[serde(default)]
    pub project_dir: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TeamList {
    pub teams: Vec<TeamView>,
}

#[tool_router(router = team_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "create_team",
        description = "Create a persistent team (e.g. dev-team of architect:opus, developer:sonnet, tester:haiku). Members are spawned by start_team and keep their conversations across restarts."
    )]
    pub async fn create_team(
        &self,
        Parameters(p): Parameters<CreateTeamParams>,
        extensions: Extensions,
    ) -> Result<Json<TeamView>, String> {
        let caller = caller(&extensions);
        if let Some(rules) = &p.permission_rules {
            rules
                .check()
                .map_err(|e| tool_error(crate::error::Error::InvalidInput(e)))?;
        }
        let team = self
            .sup
            .create_team(
                &p.name,
                p.description.as_deref().unwrap_or(""),
                p.members,
                p.project_dir,
                caller.as_deref(),
            )
            .await
            .map_err(tool_error)?;
        match p.permission_rules.filter(|r| !r.is_empty()) {
            Some(rules) => self
                .sup
                .set_team_permission_rules(&team.name, &rules, caller.as_deref())
                .await
                .map(Json)
                .map_err(tool_error),
            None => Ok(Json(team)),
        }
    }

    #[tool(
        name = "list_teams",
        description = "The teams, with each member's instance and state."
    )]
    pub async fn list_teams(&self) -> Result<Json<TeamList>, String> {
        self.sup
            .list_teams()
            .await
            .map(|teams| Json(TeamList { teams }))
            .map_err(tool_error)
    }

    #[tool(
        name = "get_team",
        description = "One team, with each member's instance and state."
    )]
    pub async fn get_team(
        &self,
        Parameters(p): Parameters<TeamNameParams>,
    ) -> Result<Json<TeamView>, String> {
        self.sup.team(&p.name).await.map(Json).map_err(tool_error)
    }

    #[tool(
        name = "start_team",
        description = "Spawn every member of a team that has no instance yet; returns the members' instance ids."
    )]
    pub async fn start_team(
        &self,
        Parameters(p): Parameters<StartTeamParams>,
        extensions: Extensions,
    ) -> Result<Json<TeamView>, String> {
        self.sup
            .start_team(&p.name, p.project_dir, caller(&extensions).as_deref())
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "resume_team",
        description = "Bring a team back (after a restart, a suspend or a terminate): each member resumes its own conversation."
    )]
    pub async fn resume_team(
        &self,
        Parameters(p): Parameters<TeamNameParams>,
        extensions: Extensions,
    ) -> Result<Json<TeamView>, String> {
        self.sup
            .resume_team(&p.name, caller(&extensions).as_deref())
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "dissolve_team",
        description = "Terminate the team's instances and retire the team; its records stay in the database."
    )]
    pub async fn dissolve_team(
        &self,
        Parameters(p): Parameters<TeamNameParams>,
        extensions: Extensions,
    ) -> Result<Json<TeamView>, String> {
        self.sup
            .dissolve_team(&p.name, caller(&extensions).as_deref())
            .await
            .map(Json)
            .map_err(tool_error)
    }
}
