//! Ad-hoc SQL: the demo's example queries, `check`'s catalog reads and the tests'
//! assertions run arbitrary SQL through these, so no code outside `storage` needs a
//! backend's pool.

use sqlx::{Column, Row};

use super::backend::for_every_backend;
use super::error::{StorageContext, StorageError};
use crate::domain::Timestamp;

/// The rows of an ad-hoc query, every value rendered as text (`None` for NULL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

for_every_backend! {
    /// Runs one or more statements (no parameters, no result).
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<(), StorageError> {
        self.counters.statement();
        sqlx::raw_sql(sql).execute(&self.pool).await.ctx("running SQL")?;
        Ok(())
    }

    /// The first column of the first row, as an integer.
    pub(crate) async fn query_i64(&self, sql: &str) -> Result<i64, StorageError> {
        let row = self.query(sql).fetch_one(&self.pool).await.ctx("running SQL")?;
        if let Ok(v) = row.try_get::<i64, _>(0usize) {
            return Ok(v);
        }
        Ok(i64::from(row.try_get::<i32, _>(0usize)?))
    }

    pub(crate) async fn query_table(&self, sql: &str) -> Result<TextTable, StorageError> {
        let rows = self.query(sql).fetch_all(&self.pool).await.ctx("running SQL")?;
        let headers = rows
            .first()
            .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
            .unwrap_or_default();
        let rows = rows
            .iter()
            .map(|row| (0..row.columns().len()).map(|i| Self::cell(row, i)).collect())
            .collect();
        Ok(TextTable { headers, rows })
    }

    fn cell(row: &DB::Row, i: usize) -> Option<String> {
        if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            return v;
        }
        if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            return v.map(|v| v.to_string());
        }
        if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
            return v.map(|v| v.to_string());
        }
        if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            return v.map(|v| v.to_string());
        }
        if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
            return v.map(|v| v.to_string());
        }
        if let Ok(v) = row.try_get::<Option<Timestamp>, _>(i) {
            return v.map(|v| v.to_text());
        }
        Some("?".to_string())
    }
}
