-- The CLI an instance or team member runs, and an instance's permission mode, are read back as
-- enums (`AgentKind`, `PermissionMode`): the database keeps any other text out.

CREATE TRIGGER instances_kinds_insert BEFORE INSERT ON instances
WHEN NEW.agent NOT IN ('claude', 'codex')
  OR NEW.permission_mode NOT IN ('skip', 'default', 'accept-edits', 'plan')
BEGIN SELECT RAISE(ABORT, 'not an agent or permission mode'); END;

CREATE TRIGGER instances_kinds_update BEFORE UPDATE OF agent, permission_mode ON instances
WHEN NEW.agent NOT IN ('claude', 'codex')
  OR NEW.permission_mode NOT IN ('skip', 'default', 'accept-edits', 'plan')
BEGIN SELECT RAISE(ABORT, 'not an agent or permission mode'); END;

CREATE TRIGGER team_members_kinds_insert BEFORE INSERT ON team_members
WHEN NEW.agent NOT IN ('claude', 'codex')
  OR (NEW.permission_mode IS NOT NULL
      AND NEW.permission_mode NOT IN ('skip', 'default', 'accept-edits', 'plan'))
BEGIN SELECT RAISE(ABORT, 'not an agent or permission mode'); END;

CREATE TRIGGER team_members_kinds_update BEFORE UPDATE OF agent, permission_mode ON team_members
WHEN NEW.agent NOT IN ('claude', 'codex')
  OR (NEW.permission_mode IS NOT NULL
      AND NEW.permission_mode NOT IN ('skip', 'default', 'accept-edits', 'plan'))
BEGIN SELECT RAISE(ABORT, 'not an agent or permission mode'); END;
