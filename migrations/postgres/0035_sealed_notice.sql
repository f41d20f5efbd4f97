-- The sender's note for recipients (shown in the notification), sealed under
-- the message's data key, so a notification is composed without reading the
-- message's blobs. NULL for a message sealed before: its note is read from
-- the sealed metadata instead.
ALTER TABLE messages ADD COLUMN sealed_notice BYTEA;
