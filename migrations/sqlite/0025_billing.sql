-- Plans and billing (issue 13, item 3). A plan is one product (SecureMail or
-- the Outlook add-in) for one user, paid by one payer (the user, or their
-- practice's User Manager), for a period (monthly or annual) that runs to
-- `period_end`. Invoices are numbered in one sequence for the installation.
-- Webhook events are kept by id so a replayed event changes nothing.
CREATE TABLE billing_plans (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    payer_id      INTEGER NOT NULL REFERENCES users(id),
    product       TEXT    NOT NULL,
    period        TEXT    NOT NULL,
    amount_cents  INTEGER NOT NULL,
    currency      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    provider_ref  TEXT    NOT NULL DEFAULT '',
    period_end    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    cancelled_at  INTEGER,
    ended_at      INTEGER
);
CREATE INDEX billing_plans_user ON billing_plans (user_id, status);
CREATE INDEX billing_plans_payer ON billing_plans (payer_id);
CREATE INDEX billing_plans_ref ON billing_plans (provider, provider_ref);

CREATE TABLE billing_invoices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    number        INTEGER NOT NULL UNIQUE,
    plan_id       INTEGER NOT NULL REFERENCES billing_plans(id),
    payer_id      INTEGER NOT NULL REFERENCES users(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    product       TEXT    NOT NULL,
    period        TEXT    NOT NULL,
    amount_cents  INTEGER NOT NULL,
    currency      TEXT    NOT NULL,
    period_start  INTEGER NOT NULL,
    period_end    INTEGER NOT NULL,
    paid_at       INTEGER NOT NULL
);
CREATE INDEX billing_invoices_payer ON billing_invoices (payer_id);

CREATE TABLE billing_checkouts (
    id            TEXT    PRIMARY KEY,
    payer_id      INTEGER NOT NULL REFERENCES users(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    product       TEXT    NOT NULL,
    period        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER
);

CREATE TABLE billing_events (
    provider     TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
);
