-- Calls an instance made that need the person's approval (require_approval): each asked of
-- the person once, decided by them alone, and good for that instance's exact call, once.
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY NOT NULL,   -- appr-…
    instance_id TEXT NOT NULL REFERENCES instances(id),
    tool        TEXT NOT NULL,
    arguments   TEXT NOT NULL,               -- JSON, the call's arguments as it made them
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'approved', 'denied', 'used', 'expired')),
    decided_by  TEXT,                        -- how the person answered: `rest`, `cli`, `dashboard`, `mcp`, `form`
    reason      TEXT,                        -- given with a denial, read by the instance
    asked_at    TEXT NOT NULL,
    decided_at  TEXT,
    used_at     TEXT
);
CREATE INDEX approvals_state ON approvals(state, asked_at);

CREATE TRIGGER events_approval_insert AFTER INSERT ON approvals BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('approval', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'tool', NEW.tool,
        'arguments', json(NEW.arguments), 'state', NEW.state, 'decided_by', NEW.decided_by,
        'reason', NEW.reason, 'asked_at', NEW.asked_at, 'decided_at', NEW.decided_at));
END;

CREATE TRIGGER events_approval_state AFTER UPDATE OF state ON approvals
WHEN OLD.state IS NOT NEW.state BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('approval', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'tool', NEW.tool,
        'arguments', json(NEW.arguments), 'state', NEW.state, 'decided_by', NEW.decided_by,
        'reason', NEW.reason, 'asked_at', NEW.asked_at, 'decided_at', NEW.decided_at));
END;
