//! Ad-hoc queries: the facts drift check, the demo's example queries and the tests'
//! exact-row checks read arbitrary SQL through these, so no code outside `storage` needs a
//! backend's pool. What only tests run (scripts, plans, timed counts) lives in the dev-only
//! crate `ice-testkit`, on a connection of its own.

use sqlx::{Column, Row, TypeInfo};

use super::backend::SqlStore;
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
    pub(crate) fn to_text(&self) -> Option<String> {
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
    pub(crate) headers: Vec<String>,
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

impl SqlStore<sqlx::Sqlite> {
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
