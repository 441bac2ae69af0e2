-- The directory a team's members work in, kept with the team so `start` and `resume` use it
-- without being told again.
ALTER TABLE teams ADD COLUMN project_dir TEXT;
