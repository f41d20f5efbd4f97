-- Several nodes on one database (issue 16). A node's spool is on its own disk:
-- a spool row, and a delivery that reads a spool file, name the node holding
-- the file (`node`; '' for rows written before: a node takes the rows whose
-- files are on its disk as it starts). A claim names the node holding it
-- (`claimed_by`), so a node that starts drops only its own previous run's
-- claims, never a live node's; a dead node's claims lapse with their lease.
ALTER TABLE spool ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE outbound ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE mail_jobs ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE outbound ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
