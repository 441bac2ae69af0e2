-- The event log behind GET /api/events: every change the live stream reports, written by
-- triggers in the same transaction as the change itself, so a client that reconnects with the
-- last id it saw is given exactly what it missed. `data` is the event's JSON.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    kind        TEXT NOT NULL,   -- instance | message | output | interrupt | usage | audit | team | settings
    instance_id TEXT,
    data        TEXT NOT NULL
);
CREATE INDEX events_instance ON events(instance_id, id);

CREATE TRIGGER events_instance_insert AFTER INSERT ON instances BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('instance', NEW.id, json_object(
        'id', NEW.id, 'name', NEW.name, 'agent', NEW.agent, 'model', NEW.model,
        'role', NEW.role, 'parent_id', NEW.parent_id, 'team_id', NEW.team_id,
        'state', NEW.state, 'state_reason', NEW.state_reason, 'state_since', NEW.state_since,
        'created_at', NEW.created_at, 'terminated_at', NEW.terminated_at));
END;

CREATE TRIGGER events_instance_state AFTER UPDATE OF state ON instances
WHEN OLD.state IS NOT NEW.state BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('instance', NEW.id, json_object(
        'id', NEW.id, 'name', NEW.name, 'agent', NEW.agent, 'model', NEW.model,
        'role', NEW.role, 'parent_id', NEW.parent_id, 'team_id', NEW.team_id,
        'state', NEW.state, 'state_reason', NEW.state_reason, 'state_since', NEW.state_since,
        'created_at', NEW.created_at, 'terminated_at', NEW.terminated_at));
END;

CREATE TRIGGER events_message_insert AFTER INSERT ON messages BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('message', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'sender', NEW.sender,
        'state', NEW.state, 'state_reason', NEW.state_reason,
        'content', substr(NEW.content, 1, 2000), 'response', substr(NEW.response, 1, 2000),
        'created_at', NEW.created_at, 'finished_at', NEW.finished_at));
END;

CREATE TRIGGER events_message_state AFTER UPDATE OF state ON messages
WHEN OLD.state IS NOT NEW.state BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('message', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'sender', NEW.sender,
        'state', NEW.state, 'state_reason', NEW.state_reason,
        'content', substr(NEW.content, 1, 2000), 'response', substr(NEW.response, 1, 2000),
        'created_at', NEW.created_at, 'finished_at', NEW.finished_at));
END;

CREATE TRIGGER events_output AFTER INSERT ON output_chunks BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('output', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'source', NEW.source, 'content', NEW.content, 'created_at', NEW.created_at));
END;

CREATE TRIGGER events_interrupt_insert AFTER INSERT ON interrupts BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('interrupt', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'outcome', NEW.outcome, 'detail', NEW.detail,
        'requested_at', NEW.requested_at, 'confirmed_at', NEW.confirmed_at));
END;

CREATE TRIGGER events_interrupt_outcome AFTER UPDATE OF outcome ON interrupts
WHEN OLD.outcome IS NOT NEW.outcome BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('interrupt', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'outcome', NEW.outcome, 'detail', NEW.detail,
        'requested_at', NEW.requested_at, 'confirmed_at', NEW.confirmed_at));
END;

CREATE TRIGGER events_usage AFTER INSERT ON usage_records BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('usage', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'model', NEW.model, 'input_tokens', NEW.input_tokens,
        'output_tokens', NEW.output_tokens, 'cache_creation_tokens', NEW.cache_creation_tokens,
        'cache_read_tokens', NEW.cache_read_tokens, 'cost_micros', NEW.cost_micros,
        'created_at', NEW.created_at));
END;

CREATE TRIGGER events_audit AFTER INSERT ON audit_events BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('audit', NEW.instance_id, json_object(
        'id', NEW.id, 'at', NEW.at, 'actor', NEW.actor, 'instance_id', NEW.instance_id,
        'kind', NEW.kind,
        'detail', CASE WHEN json_valid(NEW.detail) THEN json(NEW.detail) ELSE NEW.detail END));
END;

CREATE TRIGGER events_team_insert AFTER INSERT ON teams BEGIN
    INSERT INTO events (kind, data) VALUES ('team', json_object(
        'id', NEW.id, 'name', NEW.name, 'dissolved_at', NEW.dissolved_at));
END;

CREATE TRIGGER events_team_update AFTER UPDATE ON teams BEGIN
    INSERT INTO events (kind, data) VALUES ('team', json_object(
        'id', NEW.id, 'name', NEW.name, 'dissolved_at', NEW.dissolved_at));
END;

CREATE TRIGGER events_settings_upsert AFTER INSERT ON settings BEGIN
    INSERT INTO events (kind, data) VALUES ('settings', json_object('key', NEW.key));
END;

CREATE TRIGGER events_settings_update AFTER UPDATE ON settings BEGIN
    INSERT INTO events (kind, data) VALUES ('settings', json_object('key', NEW.key));
END;

CREATE TRIGGER events_settings_delete AFTER DELETE ON settings BEGIN
    INSERT INTO events (kind, data) VALUES ('settings', json_object('key', OLD.key));
END;
