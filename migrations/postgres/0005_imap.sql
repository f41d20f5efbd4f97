-- IMAP access: per-user mailboxes (INBOX = received, Sent = sent) with a stable
-- UIDVALIDITY, and a UID per (user, mailbox, message), assigned in increasing order.
CREATE TABLE imap_mailboxes (
    user_id       BIGINT NOT NULL REFERENCES users(id),
    mailbox       TEXT    NOT NULL,
    uid_validity  BIGINT NOT NULL,
    uid_next      BIGINT NOT NULL,
    PRIMARY KEY (user_id, mailbox)
);

-- flags: bit 1 \Answered, 2 \Flagged, 4 \Deleted, 8 \Draft, 16 \Seen (Sent only:
-- in INBOX \Seen is message_recipients.read_at, the state the portal shows).
CREATE TABLE imap_messages (
    user_id     BIGINT NOT NULL REFERENCES users(id),
    mailbox     TEXT    NOT NULL,
    uid         BIGINT NOT NULL,
    message_id  TEXT    NOT NULL REFERENCES messages(id),
    flags       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, mailbox, uid),
    UNIQUE (user_id, mailbox, message_id)
);

-- A recipient who deletes (expunges) a message hides it for themselves only.
ALTER TABLE message_recipients ADD COLUMN hidden_at BIGINT;
