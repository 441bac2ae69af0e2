-- Acts on an instance handed to the host that runs it (SQLite's 0018; src/handover.rs says
-- why through the registry). Each new row wakes its host and each answer wakes the caller,
-- through NOTIFY `troupe_calls` (payload: the row's host, or its id once answered).

CREATE TABLE host_calls (
    id          TEXT PRIMARY KEY NOT NULL,
    host        TEXT NOT NULL,
    from_host   TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    act         TEXT NOT NULL,
    caller      TEXT,
    state       TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'taken', 'done', 'failed')),
    result      TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL,
    done_at     TEXT
);
CREATE INDEX host_calls_host ON host_calls(host, state);

CREATE FUNCTION host_calls_notify() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('troupe_calls', NEW.host);
    ELSIF OLD.state IS DISTINCT FROM NEW.state THEN
        PERFORM pg_notify('troupe_calls', NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER host_calls_notify AFTER INSERT OR UPDATE ON host_calls
FOR EACH ROW EXECUTE FUNCTION host_calls_notify();

-- What the hosts of a fleet share, by key (SQLite's 0018).
CREATE TABLE fleet (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- `host_lost` (SQLite's 0018): the instance's host went silent past the heartbeat limit.
ALTER TABLE instances DROP CONSTRAINT instances_state_check;
ALTER TABLE instances ADD CONSTRAINT instances_state_check
    CHECK (state IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'exited',
                     'terminated', 'failed', 'attached', 'host_lost'));

-- A team member may be pinned to a host (SQLite's 0018).
ALTER TABLE team_members ADD COLUMN host TEXT;
