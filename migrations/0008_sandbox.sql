-- The sandbox a Codex instance runs in (read-only, workspace-write, danger-full-access);
-- NULL for CLIs without one, and for Codex instances that skip approvals and the sandbox.
ALTER TABLE instances ADD COLUMN sandbox_mode TEXT
    CHECK (sandbox_mode IS NULL OR sandbox_mode IN ('read-only', 'workspace-write', 'danger-full-access'));
