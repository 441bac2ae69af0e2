-- The settings table holds the controls set in the conversation (configure_orchestration):
-- one row per control, its value as JSON. They win over the environment and the config file,
-- and survive restarts. Who set each one is kept with it.
ALTER TABLE settings ADD COLUMN set_by TEXT;  -- instance id of the caller; NULL: the person's session
