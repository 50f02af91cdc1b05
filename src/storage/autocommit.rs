//! [`Autocommit`]: the executor for a statement that runs on its own (not inside
//! [`SqlStore::transaction`](super::backend::SqlStore::transaction)).
//!
//! Normally that is the pool itself. Behind a transaction pooler (`database.pooler =
//! "transaction"`) it is the statement wrapped in `BEGIN` ... `COMMIT` on one connection:
//! the driver sends an unnamed statement in two round trips (Parse/Describe/Sync, then
//! Bind/Execute/Sync), and PgBouncer may hand each to another server connection once the
//! first ends outside a transaction, where the unnamed statement does not exist. Inside
//! a transaction both reach the same server connection. The COMMIT is awaited, so a
//! write is committed before the caller goes on, as in autocommit.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use sqlx::{Database, Describe, Either, Execute, Executor, Pool};

/// The pool, each statement in a transaction of its own when `wrap` is set.
#[derive(Debug)]
pub(crate) struct Autocommit<'p, DB: Database> {
    pub(crate) pool: &'p Pool<DB>,
    pub(crate) wrap: bool,
}

impl<'p, DB: Database> Executor<'p> for Autocommit<'p, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        if !self.wrap {
            return self.pool.fetch_many(query);
        }
        let pool = self.pool.clone();
        // Collected before COMMIT: a result is only handed out once it is committed.
        let all = async move {
            let mut tx = pool.begin().await?;
            let items: Vec<_> = tx.fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(items)
        };
        Box::pin(
            futures::stream::once(all)
                .map_ok(|items| futures::stream::iter(items.into_iter().map(Ok)))
                .try_flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        if !self.wrap {
            return self.pool.fetch_optional(query);
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let row = tx.fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}
