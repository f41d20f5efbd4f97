-- The audit chain becomes keyed (HMAC-SHA256 under the keyring's audit key).
-- Rows written before stay as they are, scheme 1 (plain SHA-256); they verify as
-- the chain's prefix, sealed by the first keyed row, whose MAC covers their last hash.
ALTER TABLE audit ADD COLUMN scheme INTEGER NOT NULL DEFAULT 1;

-- A delivery error keeps only our words and the reply codes from now on (the
-- remote text often names the recipient); drop what older versions stored.
UPDATE outbound SET last_error = NULL;
