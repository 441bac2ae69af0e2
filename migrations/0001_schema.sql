-- The whole schema troupe keeps. Timestamps are UTC text with milliseconds
-- (2026-11-25T15:21:36.445Z); money is integer micro-dollars.

CREATE TABLE teams (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    dissolved_at TEXT
);

CREATE TABLE instances (
    id               TEXT PRIMARY KEY NOT NULL,   -- architect-7a3f
    name             TEXT NOT NULL,
    agent            TEXT NOT NULL,               -- claude | codex
    model            TEXT NOT NULL,               -- as requested (opus, sonnet-4, claude-...)
    role             TEXT NOT NULL,
    system_prompt    TEXT NOT NULL,
    workdir          TEXT NOT NULL,
    permission_mode  TEXT NOT NULL,
    parent_id        TEXT REFERENCES instances(id),
    team_id          TEXT REFERENCES teams(id),
    tmux_session     TEXT NOT NULL,
    agent_session_id TEXT NOT NULL,               -- the CLI's own session id, for --resume
    transcript_path  TEXT,
    state            TEXT NOT NULL,               -- starting | idle | busy | waiting_permission | suspended | terminated | failed | unknown
    state_reason     TEXT NOT NULL DEFAULT '',
    state_since      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    terminated_at    TEXT
);
CREATE INDEX instances_parent ON instances(parent_id);
CREATE INDEX instances_state ON instances(state);

CREATE TABLE messages (
    id             TEXT PRIMARY KEY NOT NULL,
    instance_id    TEXT NOT NULL REFERENCES instances(id),
    sender         TEXT,                         -- calling instance id, or NULL for the MCP/REST/CLI user
    content        TEXT NOT NULL,
    state          TEXT NOT NULL,                -- queued | submitted | started | answered | interrupted | failed | timed_out
    state_reason   TEXT NOT NULL DEFAULT '',
    prompt_id      TEXT,                         -- the CLI's id for the turn (Claude Code promptId)
    response       TEXT,
    correlation_id TEXT,
    created_at     TEXT NOT NULL,
    submitted_at   TEXT,
    started_at     TEXT,
    finished_at    TEXT
);
CREATE INDEX messages_instance_state ON messages(instance_id, state, created_at);

CREATE TABLE output_chunks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL REFERENCES instances(id),
    message_id  TEXT REFERENCES messages(id),
    source      TEXT NOT NULL,                   -- prompt | assistant | tool_use | tool_result | interrupt | system
    source_id   TEXT NOT NULL,                   -- transcript record uuid (+ block index): re-reading never duplicates
    content     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (instance_id, source_id)
);
CREATE INDEX output_chunks_instance ON output_chunks(instance_id, id);

CREATE TABLE interrupts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT NOT NULL REFERENCES instances(id),
    message_id   TEXT REFERENCES messages(id),
    requested_at TEXT NOT NULL,
    confirmed_at TEXT,
    outcome      TEXT NOT NULL DEFAULT 'requested', -- requested | confirmed | not_busy | finished_first | unconfirmed
    detail       TEXT NOT NULL DEFAULT ''
);

CREATE TABLE usage_records (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id           TEXT NOT NULL REFERENCES instances(id),
    message_id            TEXT REFERENCES messages(id),
    source_id             TEXT NOT NULL,          -- the model response id: one row per model call
    model                 TEXT NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens     INTEGER NOT NULL,
    cost_micros           INTEGER NOT NULL,
    created_at            TEXT NOT NULL,
    UNIQUE (instance_id, source_id)
);
CREATE INDEX usage_records_instance ON usage_records(instance_id);

CREATE TABLE team_members (
    team_id       TEXT NOT NULL REFERENCES teams(id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    agent         TEXT NOT NULL,
    model         TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    instance_id   TEXT REFERENCES instances(id),
    PRIMARY KEY (team_id, name)
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT,                            -- instance id of the caller, or NULL
    instance_id TEXT,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'       -- JSON
);
CREATE INDEX audit_events_instance ON audit_events(instance_id, id);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
