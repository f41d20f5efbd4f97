-- Reply threading: the Message-ID of every sealed message, as a SHA-256 hash of its
-- normalised form (never the id itself), so a reply that names it in In-Reply-To or
-- References is recognised as part of a secure conversation.
CREATE TABLE thread_ids (
    hash        BLOB    NOT NULL,
    message_id  TEXT    NOT NULL REFERENCES messages(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (hash, message_id)
);

-- A spooled reply that was made secure because of the conversation it belongs to.
ALTER TABLE spool ADD COLUMN thread_message_id TEXT;
