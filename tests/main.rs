//! End-to-end tests: each starts a real Sealpost (SMTP with TLS, HTTPS portal,
//! workers) on ephemeral ports in a temp folder, and drives it with real clients:
//! lettre (SMTP), reqwest with a cookie jar (HTTP), and raw sockets where a test
//! needs exact reply codes. Set `SEALPOST_TEST_POSTGRES_URL` (an admin URL) to run
//! the same suite against `PostgreSQL`.

mod e2e;
