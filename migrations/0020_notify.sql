-- Notices on their way to the sinks of the config file's [[notify]] tables. Each is written
-- before its first attempt, so a restart finishes what a stop cut short, and each attempt's
-- outcome stays for `troupe notify` and the audit.
CREATE TABLE notify_deliveries (
    id          TEXT PRIMARY KEY NOT NULL,   -- dlv-…
    notice_id   TEXT NOT NULL,               -- ntc-…: one per notice, the same for every attempt
    host        TEXT NOT NULL,               -- the host whose server sends it
    sink        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL,
    request     TEXT NOT NULL,               -- JSON: url, headers, body; no secret (signatures and tokens are added when sent)
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,                     -- the receiver's HTTP status, if it answered
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    next_at     TEXT,                        -- when a pending delivery is tried next
    finished_at TEXT
);
CREATE INDEX notify_deliveries_due ON notify_deliveries(host, state, next_at);
CREATE INDEX notify_deliveries_created ON notify_deliveries(created_at);

-- One-time Allow / Deny links of notices: each bound to one question, one decision and the
-- sink it went to. Only a SHA-256 of the link's secret part is kept.
CREATE TABLE notify_links (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('permission', 'approval')),
    target_id   TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
    sink        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX notify_links_expires ON notify_links(expires_at);

-- Browsers that added the dashboard for Web Push: where to push and the keys that encrypt
-- for that browser alone.
CREATE TABLE push_subscriptions (
    id         TEXT PRIMARY KEY NOT NULL,   -- push-…
    endpoint   TEXT NOT NULL UNIQUE,        -- the push service's URL for that browser
    p256dh     TEXT NOT NULL,               -- the browser's public key, base64url
    auth       TEXT NOT NULL,               -- the secret shared with the browser, base64url
    created_at TEXT NOT NULL
);
