//! Ad-hoc SQL: the demo's example queries, the analytics tests' exact-row checks, query
//! plans, and the tests' assertions run arbitrary SQL through these, so no code outside
//! `storage` needs a backend's pool.

use sqlx::{Column, Row, TypeInfo};

use super::backend::{Dialect, SqlStore};
use super::error::{StorageContext, StorageError};
use crate::domain::Timestamp;

/// One value of an ad-hoc query, decoded by its SQL type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Timestamp(Timestamp),
    /// A calendar day, `YYYY-MM-DD`.
    Date(String),
    /// A type this module does not decode (its name), e.g. PostgreSQL `numeric`.
    Unsupported(String),
}

impl Cell {
    /// Text as SQLite would store it (timestamps in their fixed-width form).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Text(v) | Cell::Date(v) => Some(v.clone()),
            Cell::Int(v) => Some(v.to_string()),
            Cell::Float(v) => Some(v.to_string()),
            Cell::Bool(v) => Some(v.to_string()),
            Cell::Timestamp(v) => Some(v.to_text()),
            Cell::Unsupported(t) => Some(format!("<{t}>")),
        }
    }
}

/// The rows of an ad-hoc query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// The rows of an ad-hoc query, every value rendered as text (`None` for NULL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl From<CellTable> for TextTable {
    fn from(t: CellTable) -> Self {
        TextTable {
            headers: t.headers,
            rows: t
                .rows
                .into_iter()
                .map(|r| r.iter().map(Cell::to_text).collect())
                .collect(),
        }
    }
}

fn headers<R: Row>(rows: &[R]) -> Vec<String> {
    rows.first()
        .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default()
}

impl<DB: Dialect> SqlStore<DB> {
    #[cfg(feature = "testkit")]
    /// Runs a query (`$1` bound to `bind`, if given) and counts its rows.
    pub(crate) async fn fetch_count(
        &self,
        sql: &str,
        bind: Option<&str>,
    ) -> Result<usize, StorageError> {
        let mut q = self.query(sql);
        if let Some(v) = bind {
            q = q.bind(v.to_string());
        }
        Ok(q.fetch_all(self.exec()).await.ctx("running SQL")?.len())
    }
}

impl SqlStore<sqlx::Sqlite> {
    #[cfg(feature = "testkit")]
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<(), StorageError> {
        self.counters.statement();
        sqlx::raw_sql(sql)
            .execute(self.exec())
            .await
            .ctx("running SQL")?;
        Ok(())
    }

    pub(crate) async fn query_cells(&self, sql: &str) -> Result<CellTable, StorageError> {
        let rows = self
            .query(sql)
            .fetch_all(self.exec())
            .await
            .ctx("running SQL")?;
        let cells = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| sqlite_cell(row, i)).collect())
            .collect();
        Ok(CellTable {
            headers: headers(&rows),
            rows: cells,
        })
    }

    #[cfg(feature = "testkit")]
    /// `EXPLAIN QUERY PLAN`: one line per step (the `detail` column). SQLite has no
    /// `ANALYZE` form; `_analyze` is accepted for symmetry.
    pub(crate) async fn explain(
        &self,
        sql: &str,
        bind: Option<&str>,
        _analyze: bool,
    ) -> Result<Vec<String>, StorageError> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query(&explain);
        if let Some(v) = bind {
            q = q.bind(v.to_string());
        }
        let rows = q.fetch_all(self.exec()).await.ctx("explaining a query")?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(3).map_err(StorageError::from))
            .collect()
    }
}

/// NULL decodes as None whatever the declared type; otherwise the value's own type.
fn sqlite_cell(row: &sqlx::sqlite::SqliteRow, i: usize) -> Cell {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.map_or(Cell::Null, Cell::Text);
    }
    if let Ok(v) = row.try_get::<i64, _>(i) {
        return Cell::Int(v);
    }
    if let Ok(v) = row.try_get::<f64, _>(i) {
        return Cell::Float(v);
    }
    Cell::Unsupported(row.column(i).type_info().name().to_string())
}

impl SqlStore<sqlx::Postgres> {
    #[cfg(feature = "testkit")]
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<(), StorageError> {
        self.counters.statement();
        sqlx::raw_sql(sql)
            .execute(self.exec())
            .await
            .ctx("running SQL")?;
        Ok(())
    }

    pub(crate) async fn query_cells(&self, sql: &str) -> Result<CellTable, StorageError> {
        let rows = self
            .query(sql)
            .fetch_all(self.exec())
            .await
            .ctx("running SQL")?;
        let cells = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| pg_cell(row, i)).collect())
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(CellTable {
            headers: headers(&rows),
            rows: cells,
        })
    }

    #[cfg(feature = "testkit")]
    /// `EXPLAIN`, with sequential scans disabled so a tiny table still shows whether an
    /// index path exists; or, with `analyze`, `EXPLAIN (ANALYZE, BUFFERS)` as planned.
    pub(crate) async fn explain(
        &self,
        sql: &str,
        bind: Option<&str>,
        analyze: bool,
    ) -> Result<Vec<String>, StorageError> {
        // One transaction with SET LOCAL: the setting ends with it, and behind a
        // transaction pooler every statement reaches the same server connection.
        let pooled = self.counters.transaction_pooled;
        let mut tx = self.pool.begin().await?;
        let seqscan = if analyze { "on" } else { "off" };
        sqlx::raw_sql(&format!("SET LOCAL enable_seqscan = {seqscan}"))
            .execute(&mut *tx)
            .await?;
        let explain = if analyze {
            format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")
        } else {
            format!("EXPLAIN {sql}")
        };
        let mut q = sqlx::query(&explain).persistent(!pooled);
        if let Some(v) = bind {
            q = q.bind(v.to_string());
        }
        let lines: Vec<String> = q
            .fetch_all(&mut *tx)
            .await
            .ctx("explaining a query")?
            .iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StorageError::from))
            .collect::<Result<_, _>>()?;
        tx.commit().await?;
        Ok(lines)
    }
}

fn pg_cell(row: &sqlx::postgres::PgRow, i: usize) -> Result<Cell, sqlx::Error> {
    use chrono::{DateTime, NaiveDate, Utc};
    let name = row.column(i).type_info().name().to_string();
    let cell = match name.as_str() {
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
            row.try_get::<Option<String>, _>(i)?.map(Cell::Text)
        }
        "INT2" => row
            .try_get::<Option<i16>, _>(i)?
            .map(|v| Cell::Int(v.into())),
        "INT4" => row
            .try_get::<Option<i32>, _>(i)?
            .map(|v| Cell::Int(v.into())),
        "INT8" => row.try_get::<Option<i64>, _>(i)?.map(Cell::Int),
        "FLOAT4" => row
            .try_get::<Option<f32>, _>(i)?
            .map(|v| Cell::Float(v.into())),
        "FLOAT8" => row.try_get::<Option<f64>, _>(i)?.map(Cell::Float),
        "BOOL" => row.try_get::<Option<bool>, _>(i)?.map(Cell::Bool),
        "TIMESTAMPTZ" => row
            .try_get::<Option<DateTime<Utc>>, _>(i)?
            .map(|v| Cell::Timestamp(v.into())),
        "DATE" => row
            .try_get::<Option<NaiveDate>, _>(i)?
            .map(|v| Cell::Date(v.format("%Y-%m-%d").to_string())),
        _ => return Ok(Cell::Unsupported(name)),
    };
    Ok(cell.unwrap_or(Cell::Null))
}
