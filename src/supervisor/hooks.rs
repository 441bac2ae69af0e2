//! Hooks and MCP lists an instance's CLI reports, routed to its task; a permission request
//! is held until someone decides.

use super::*;

impl Supervisor {
    /// An instance's MCP client received one of troupe's lists.
    pub fn mcp_list_answered(&self, instance_id: &str, list: McpList) {
        if let Some(tx) = self.handle(instance_id) {
            let _ = tx.send(Command::McpList(list));
        }
    }

    /// A lifecycle hook posted by an instance's CLI; returns the hook's answer (an empty
    /// object but for a permission request someone decided).
    pub async fn hook(
        &self,
        instance_id: &str,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let tx = self.live(instance_id).await?;
        // Lifecycle hooks hold the CLI's turn until answered: only a permission request waits
        // on more than handing the payload to the instance's task.
        if !self.shared.agents.may_be_permission_request(&payload) {
            let _ = tx.send(Command::Hook(payload));
            return Ok(json!({}));
        }
        let inst = Instance::find(&self.shared.pool, instance_id)
            .await?
            .ok_or_else(|| Error::UnknownInstance(instance_id.to_string()))?;
        let agent = self.shared.agent(inst.agent);
        if let crate::agents::AgentEvent::PermissionAsked { tool, input } =
            agent.hook_event(&payload)
        {
            // Only the CLI session troupe started may ask in the instance's name.
            let session = agent.hook_session(&payload);
            if session
                .is_some_and(|s| !inst.agent_session_id.is_empty() && s != inst.agent_session_id)
            {
                audit::record(
                    &self.shared.pool,
                    None,
                    Some(instance_id),
                    "instance.hook_refused",
                    json!({ "session_id": session, "hook": "permission" }),
                )
                .await;
                return Ok(json!({}));
            }
            return self
                .permission_requested(agent.as_ref(), &inst, &tx, tool, input)
                .await;
        }
        let _ = tx.send(Command::Hook(payload));
        Ok(json!({}))
    }
}
