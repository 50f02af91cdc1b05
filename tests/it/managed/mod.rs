//! PostgreSQL as managed deployments have it: TLS (`tls`, against throwaway clusters with
//! certificates the test generates) and connection poolers (`pooler`, through the
//! PgBouncers `scripts/test` starts, in transaction and session mode).

mod pooler;
mod tls;
