-- Dashboard logins: each browser that traded a one-time code gets its own random session id,
-- kept here as a hash, so one can be ended (/logout) or all of them (troupe logins --end-all).
-- `token_hash` ties a session to the server token it was made under: a new token ends them all.
CREATE TABLE web_sessions (
    id_hash     TEXT PRIMARY KEY NOT NULL,
    token_hash  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    ended_at    TEXT
);
