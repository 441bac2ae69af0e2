-- Permission requests from instances in a prompting mode, each with who decided it and how;
-- the rules that decide known requests without asking anyone (per instance and per team); a
-- team member's permission mode.
CREATE TABLE permission_requests (
    id          TEXT PRIMARY KEY NOT NULL,   -- perm-…
    instance_id TEXT NOT NULL REFERENCES instances(id),
    message_id  TEXT REFERENCES messages(id), -- the turn it came up in
    tool_name   TEXT NOT NULL,
    tool_input  TEXT NOT NULL,               -- JSON, as the CLI sent it
    summary     TEXT NOT NULL,               -- the request in a line: `Bash: npm test`
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'allowed', 'denied', 'expired')),
    decided_by  TEXT,                        -- `person`, an instance id, or `rule <rule>`
    message     TEXT,                        -- the reason given with a denial
    asked_at    TEXT NOT NULL,
    decided_at  TEXT
);
CREATE INDEX permission_requests_instance ON permission_requests(instance_id, state);

ALTER TABLE instances ADD COLUMN permission_rules TEXT;      -- JSON {"allow": [...], "deny": [...]}
ALTER TABLE teams ADD COLUMN permission_rules TEXT;          -- JSON, for every member
ALTER TABLE team_members ADD COLUMN permission_mode TEXT;    -- NULL: the server's

CREATE TRIGGER events_permission_insert AFTER INSERT ON permission_requests BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('permission', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'tool_name', NEW.tool_name, 'summary', NEW.summary, 'state', NEW.state,
        'decided_by', NEW.decided_by, 'message', NEW.message,
        'asked_at', NEW.asked_at, 'decided_at', NEW.decided_at));
END;

CREATE TRIGGER events_permission_state AFTER UPDATE OF state ON permission_requests
WHEN OLD.state IS NOT NEW.state BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('permission', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'tool_name', NEW.tool_name, 'summary', NEW.summary, 'state', NEW.state,
        'decided_by', NEW.decided_by, 'message', NEW.message,
        'asked_at', NEW.asked_at, 'decided_at', NEW.decided_at));
END;
