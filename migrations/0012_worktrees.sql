-- A git worktree troupe made for an instance spawned with use_worktree: the repository it
-- belongs to, the directory (under the data directory's worktrees/), the branch of its own
-- and the commit it started from. Removing is explicit and only ever of a clean worktree
-- whose commits another branch holds; `removed_at` says when. Branches are never deleted.
CREATE TABLE worktrees (
    instance_id TEXT PRIMARY KEY NOT NULL REFERENCES instances(id),
    repo        TEXT NOT NULL,          -- the repository's top level, where git ran
    path        TEXT NOT NULL UNIQUE,   -- the worktree's directory (canonical)
    branch      TEXT NOT NULL,          -- e.g. troupe/dev
    base_commit TEXT NOT NULL,          -- the HEAD it was made from
    created_at  TEXT NOT NULL,
    removed_at  TEXT
);

-- A team member that works in a worktree of its own when the team starts.
ALTER TABLE team_members ADD COLUMN use_worktree BOOLEAN NOT NULL DEFAULT FALSE;
