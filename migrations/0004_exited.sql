-- An instance whose CLI exited on its own is `exited`: its conversation is kept and it can be
-- resumed, unlike `failed`.

DROP TRIGGER instances_state_insert;
DROP TRIGGER instances_state_update;

CREATE TRIGGER instances_state_insert BEFORE INSERT ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'exited', 'terminated', 'failed')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;

CREATE TRIGGER instances_state_update BEFORE UPDATE OF state ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'exited', 'terminated', 'failed')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;
