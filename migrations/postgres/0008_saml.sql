-- SAML 2.0 single sign-on: one identity provider per practice (set by an admin),
-- the AuthnRequests we sent (for InResponseTo, single use) and the assertion ids
-- we accepted (replay cache), each until it expires.
CREATE TABLE saml_idps (
    practice_id  BIGINT PRIMARY KEY REFERENCES practices(id),
    entity_id    TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE TABLE saml_requests (
    id           TEXT    PRIMARY KEY,
    practice_id  BIGINT  NOT NULL REFERENCES practices(id),
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    used_at      BIGINT
);
CREATE TABLE saml_assertions (
    practice_id  BIGINT  NOT NULL REFERENCES practices(id),
    assertion_id TEXT    NOT NULL,
    expires_at   BIGINT  NOT NULL,
    PRIMARY KEY (practice_id, assertion_id)
);
