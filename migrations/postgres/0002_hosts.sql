-- The hosts of a fleet (SQLite's 0017): each `troupe serve` on the registry registers here and
-- owns the instances it runs.

CREATE TABLE hosts (
    name           TEXT PRIMARY KEY NOT NULL,
    url            TEXT NOT NULL,
    version        TEXT NOT NULL,
    clis           TEXT NOT NULL DEFAULT '{}',
    labels         TEXT NOT NULL DEFAULT '[]',
    max_instances  BIGINT,
    free_memory_mb BIGINT,
    state          TEXT NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'draining', 'stopped')),
    machine        TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    started_at     TEXT NOT NULL,
    heartbeat_at   TEXT NOT NULL
);

ALTER TABLE instances ADD COLUMN host TEXT NOT NULL DEFAULT '';
CREATE INDEX instances_host ON instances(host, state);
