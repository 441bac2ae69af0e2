-- The hosts of a fleet: each `troupe serve` on a shared registry registers here and owns the
-- instances it runs (their tmux sessions, CLIs, hooks and transcripts are on its machine). On
-- SQLite there is one host, the server itself; the table and the column keep both backends alike.

CREATE TABLE hosts (
    name           TEXT PRIMARY KEY NOT NULL,
    -- How other hosts and clients reach it (`--advertise-url`).
    url            TEXT NOT NULL,
    version        TEXT NOT NULL,
    -- JSON: {"claude": "2.1.328", "codex": "0.169.0"}, what it found at start.
    clis           TEXT NOT NULL DEFAULT '{}',
    -- JSON array of strings (`--label gpu --label eu`).
    labels         TEXT NOT NULL DEFAULT '[]',
    max_instances  INTEGER,
    free_memory_mb INTEGER,
    -- `up` while it serves, `draining` when it takes no new spawns, `stopped` after a clean
    -- stop. A host whose heartbeat is older than the limit is shown as lost.
    state          TEXT NOT NULL DEFAULT 'up',
    -- Which machine and process wrote the row: a host restarted on its machine after a crash
    -- takes its row back at once; another machine with the same name waits out the heartbeat.
    machine        TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    started_at     TEXT NOT NULL,
    heartbeat_at   TEXT NOT NULL
);

CREATE TRIGGER hosts_state_insert BEFORE INSERT ON hosts
WHEN NEW.state NOT IN ('up', 'draining', 'stopped')
BEGIN SELECT RAISE(ABORT, 'not a host state'); END;

CREATE TRIGGER hosts_state_update BEFORE UPDATE OF state ON hosts
WHEN NEW.state NOT IN ('up', 'draining', 'stopped')
BEGIN SELECT RAISE(ABORT, 'not a host state'); END;

-- The host that runs the instance; '' for rows written before hosts existed, claimed by the
-- first host that starts on the registry.
ALTER TABLE instances ADD COLUMN host TEXT NOT NULL DEFAULT '';
CREATE INDEX instances_host ON instances(host, state);
