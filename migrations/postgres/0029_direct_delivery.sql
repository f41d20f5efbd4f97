-- Best-method delivery (issue 15): a practice's User Manager lets its secure
-- messages go to partner domains as the message itself over verified TLS
-- (off by default); an outbound row that carries such a direct copy names the
-- message and the recipient (its body is read from the sealed message, never
-- copied into the queue), so a failed direct copy falls back to a notification.
ALTER TABLE practices ADD COLUMN direct_delivery BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbound ADD COLUMN direct_message_id TEXT;
ALTER TABLE outbound ADD COLUMN direct_user_id BIGINT;
CREATE INDEX outbound_direct ON outbound (direct_message_id, direct_user_id) WHERE direct_message_id IS NOT NULL;
