-- A session troupe did not start (`troupe chat` runs the person's own CLI in their terminal)
-- is `attached`: its spawns are its children and its tokens are counted, but troupe never
-- types into it, and a restart does not try to launch it.

DROP TRIGGER instances_state_insert;
DROP TRIGGER instances_state_update;

CREATE TRIGGER instances_state_insert BEFORE INSERT ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'exited', 'terminated', 'failed', 'attached')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;

CREATE TRIGGER instances_state_update BEFORE UPDATE OF state ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'exited', 'terminated', 'failed', 'attached')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;
