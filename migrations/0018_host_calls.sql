-- Acts on an instance handed to the host that runs it (src/handover.rs says why through the
-- registry). A row lives while the act is in flight: the caller's host writes it `queued`,
-- the owner takes it, runs it as `caller` and writes `done` with the answer or `failed` with
-- the error; the caller's host then deletes it. On SQLite there is one host and no row.

CREATE TABLE host_calls (
    id          TEXT PRIMARY KEY NOT NULL,
    -- The host that carries it out, and the one the caller reached.
    host        TEXT NOT NULL,
    from_host   TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    -- JSON: the act and its arguments.
    act         TEXT NOT NULL,
    -- The instance acting, or NULL for the person.
    caller      TEXT,
    state       TEXT NOT NULL DEFAULT 'queued',
    -- JSON: the answer (done) or the error (failed).
    result      TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL,
    done_at     TEXT
);
CREATE INDEX host_calls_host ON host_calls(host, state);

CREATE TRIGGER host_calls_state_insert BEFORE INSERT ON host_calls
WHEN NEW.state NOT IN ('queued', 'taken', 'done', 'failed')
BEGIN SELECT RAISE(ABORT, 'not a host call state'); END;

CREATE TRIGGER host_calls_state_update BEFORE UPDATE OF state ON host_calls
WHEN NEW.state NOT IN ('queued', 'taken', 'done', 'failed')
BEGIN SELECT RAISE(ABORT, 'not a host call state'); END;

-- What the hosts of a fleet share, by key: `person_token_sha256`, the SHA-256 of the server
-- token every host answers the person with.
CREATE TABLE fleet (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- `host_lost`: the instance's host went silent past the heartbeat limit; written by the hosts
-- that still serve, and replaced by the owner's own report when it is back.
DROP TRIGGER instances_state_insert;
DROP TRIGGER instances_state_update;

CREATE TRIGGER instances_state_insert BEFORE INSERT ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'exited', 'terminated', 'failed', 'attached', 'host_lost')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;

CREATE TRIGGER instances_state_update BEFORE UPDATE OF state ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'exited', 'terminated', 'failed', 'attached', 'host_lost')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;

-- A team member may be pinned to a host (a name, or `label:NAME`); NULL: placed as any spawn.
ALTER TABLE team_members ADD COLUMN host TEXT;
