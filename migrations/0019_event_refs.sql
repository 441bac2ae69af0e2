-- Text is kept once, in its own table: an output event carries its chunk's id and no content,
-- a message event its state and no content or response. GET /api/events reads the text from
-- the row it names (src/db/events.rs). `has_response` says whether the message had its answer
-- when the event was written, so a replayed earlier state shows none. Events written before
-- this migration keep their copies and are read as they are.

DROP TRIGGER events_output;
CREATE TRIGGER events_output AFTER INSERT ON output_chunks BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('output', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'source', NEW.source, 'created_at', NEW.created_at));
END;

DROP TRIGGER events_message_insert;
CREATE TRIGGER events_message_insert AFTER INSERT ON messages BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('message', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'sender', NEW.sender,
        'state', NEW.state, 'state_reason', NEW.state_reason,
        'has_response', json(CASE WHEN NEW.response IS NULL THEN 'false' ELSE 'true' END),
        'created_at', NEW.created_at, 'finished_at', NEW.finished_at));
END;

DROP TRIGGER events_message_state;
CREATE TRIGGER events_message_state AFTER UPDATE OF state ON messages
WHEN OLD.state IS NOT NEW.state BEGIN
    INSERT INTO events (kind, instance_id, data) VALUES ('message', NEW.instance_id, json_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'sender', NEW.sender,
        'state', NEW.state, 'state_reason', NEW.state_reason,
        'has_response', json(CASE WHEN NEW.response IS NULL THEN 'false' ELSE 'true' END),
        'created_at', NEW.created_at, 'finished_at', NEW.finished_at));
END;
