-- Each instance proves who it is with a token of its own: on its hooks and on its MCP calls,
-- alongside the header that names it. Kept apart from `instances` so no listing of instances
-- can carry a secret. `server_url` is the address written into the instance's configuration
-- when its CLI last started: a server on another address must start the CLI again.

CREATE TABLE instance_credentials (
    instance_id TEXT PRIMARY KEY NOT NULL REFERENCES instances(id),
    token       TEXT NOT NULL,
    server_url  TEXT NOT NULL
);
