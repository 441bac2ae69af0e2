-- Text is kept once, in its own table, as on SQLite (migration 0019): an output event carries
-- its chunk's id and no content, a message event its state and no content or response.

CREATE OR REPLACE FUNCTION events_message() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state THEN
        PERFORM troupe_event('message', NEW.instance_id, json_build_object(
            'id', NEW.id, 'instance_id', NEW.instance_id, 'sender', NEW.sender,
            'state', NEW.state, 'state_reason', NEW.state_reason,
            'has_response', NEW.response IS NOT NULL,
            'created_at', NEW.created_at, 'finished_at', NEW.finished_at));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION events_output() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM troupe_event('output', NEW.instance_id, json_build_object(
        'id', NEW.id, 'instance_id', NEW.instance_id, 'message_id', NEW.message_id,
        'source', NEW.source, 'created_at', NEW.created_at));
    RETURN NULL;
END
$$;
