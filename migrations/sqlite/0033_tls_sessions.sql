-- TLS-RPT (RFC 8460): how TLS went for each direct (MX) delivery session, by
-- day (days since 1970-01-01, UTC), recipient (policy) domain, the policy in
-- force (`sts`, `tlsa` or `no-policy-found`) and, for a failure, the MX
-- host and the RFC 8460 result type ('' for a success). `sealpost tlsrpt
-- send` turns a day's rows into reports and removes them.
CREATE TABLE tls_sessions (
    day           INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_type   TEXT NOT NULL,
    policy_string TEXT NOT NULL,
    mx_host       TEXT NOT NULL,
    result_type   TEXT NOT NULL,
    sessions      INTEGER NOT NULL,
    PRIMARY KEY (day, policy_domain, policy_type, mx_host, result_type)
);
