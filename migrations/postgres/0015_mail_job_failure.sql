-- A mail job that can never be composed (an unknown kind, a missing or
-- malformed message id) is set aside instead of stalling the notifier: it is
-- marked done, and `failure` says what was wrong with it (no PHI).
ALTER TABLE mail_jobs ADD COLUMN failure TEXT;
