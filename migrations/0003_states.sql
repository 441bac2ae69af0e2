-- The states troupe writes, and only those (src/states.rs names them). An instance is
-- starting | idle | busy | waiting_permission | suspended | terminated | failed; a message is
-- queued | submitted | started | answered | interrupted | failed; an interrupt is
-- requested | confirmed | not_busy | finished_first | unconfirmed. The schema's first comment
-- also named `unknown` and `timed_out`, which nothing writes: a caller's wait that runs out
-- leaves the message where it is, and the database now refuses both.

CREATE TRIGGER instances_state_insert BEFORE INSERT ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'terminated', 'failed')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;

CREATE TRIGGER instances_state_update BEFORE UPDATE OF state ON instances
WHEN NEW.state NOT IN ('starting', 'idle', 'busy', 'waiting_permission', 'suspended', 'terminated', 'failed')
BEGIN SELECT RAISE(ABORT, 'not an instance state'); END;

CREATE TRIGGER messages_state_insert BEFORE INSERT ON messages
WHEN NEW.state NOT IN ('queued', 'submitted', 'started', 'answered', 'interrupted', 'failed')
BEGIN SELECT RAISE(ABORT, 'not a message state'); END;

CREATE TRIGGER messages_state_update BEFORE UPDATE OF state ON messages
WHEN NEW.state NOT IN ('queued', 'submitted', 'started', 'answered', 'interrupted', 'failed')
BEGIN SELECT RAISE(ABORT, 'not a message state'); END;

CREATE TRIGGER interrupts_outcome_insert BEFORE INSERT ON interrupts
WHEN NEW.outcome NOT IN ('requested', 'confirmed', 'not_busy', 'finished_first', 'unconfirmed')
BEGIN SELECT RAISE(ABORT, 'not an interrupt outcome'); END;

CREATE TRIGGER interrupts_outcome_update BEFORE UPDATE OF outcome ON interrupts
WHEN NEW.outcome NOT IN ('requested', 'confirmed', 'not_busy', 'finished_first', 'unconfirmed')
BEGIN SELECT RAISE(ABORT, 'not an interrupt outcome'); END;
