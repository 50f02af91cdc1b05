//! PostgreSQL: connecting and migrating. The queries are shared (`storage::sql`).

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Postgres;

use super::SqlStore;
use crate::config::DatabaseSettings;

pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<SqlStore<Postgres>> {
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(settings.url.expose_secret())
        .await
        // The driver's message may quote the URL: it is scrubbed before anyone sees it.
        .map_err(|e| anyhow::anyhow!(settings.url.scrub(&e.to_string())))
        .with_context(|| {
            format!(
                "cannot connect to database.url = {}: is PostgreSQL running and the URL right?",
                settings.url
            )
        })?;
    Ok(SqlStore { pool })
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<usize> {
    let migrator = sqlx::migrate!("./migrations/postgres");
    let before = applied(pool).await;
    migrator
        .run(pool)
        .await
        .context("applying PostgreSQL migrations")?;
    Ok(applied(pool).await.saturating_sub(before))
}

async fn applied(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| n as usize)
}
