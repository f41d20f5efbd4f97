-- The practice boundary (DESIGN.md, "Who is trusted with what").

-- A recipient not named in To or Cc (a Bcc): other recipients never see them,
-- and a free account's reply cannot be addressed to them.
ALTER TABLE message_recipients ADD COLUMN bcc BIGINT NOT NULL DEFAULT 0;

-- The relay sources that may send secure mail for a practice: kind 'network'
-- (a CIDR the practice's mail system connects from) or 'tenant' (a Microsoft 365
-- tenant id, matched against X-MS-Exchange-CrossTenant-Id). Set by an admin
-- with `sealpost practice relay`.
CREATE TABLE practice_relay_sources (
    practice_id  BIGINT  NOT NULL REFERENCES practices(id),
    kind         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (practice_id, kind, value)
);

-- Further mail domains of a practice (its first one is practices.domain); a
-- secure sender's address must be in one of them.
CREATE TABLE practice_domains (
    domain       TEXT    PRIMARY KEY,
    practice_id  BIGINT  NOT NULL REFERENCES practices(id),
    created_at   BIGINT  NOT NULL
);

-- The Outlook add-in's own credential (SHA-256 of a random key): it opens the
-- contacts API only; SMTP and IMAP never accept it. One per user.
CREATE TABLE addin_keys (
    user_id       BIGINT  PRIMARY KEY REFERENCES users(id),
    hash          BYTEA   NOT NULL UNIQUE,
    created_at    BIGINT  NOT NULL,
    last_used_at  BIGINT
);
