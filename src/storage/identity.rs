//! `database_identity` (migration 0011): the one row saying which ICE region (and, where
//! known, which account) this database mirrors. Recorded by the first start; the first
//! writer wins when replicas start at once. Whether a start may proceed is decided by
//! `app::region`, not here.

use super::backend::{Dialect, RowGet, SqlStore};
use super::error::{StorageContext, StorageError};
use crate::domain::Timestamp;

/// What the database says it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseIdentity {
    pub(crate) region: String,
    /// The Alibaba Cloud account ID, when the configuration that recorded it named one.
    pub(crate) account: Option<String>,
    pub(crate) recorded_at: Timestamp,
    /// `sync.replica_id` of the process that recorded it.
    pub(crate) recorded_by: String,
}

const READ: &str =
    "SELECT region, account, recorded_at, recorded_by FROM database_identity WHERE id = 1";
/// First start: records unless a row exists (another replica was first).
const RECORD: &str = "\
INSERT INTO database_identity (id, region, account, recorded_at, recorded_by)
VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
/// The operator's override: replaces what was recorded.
const REWRITE: &str = "\
INSERT INTO database_identity (id, region, account, recorded_at, recorded_by)
VALUES (1, $1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET region = excluded.region, account = excluded.account,
    recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by";

impl<DB: Dialect> SqlStore<DB> {
    pub(crate) async fn identity(&self) -> Result<Option<DatabaseIdentity>, StorageError> {
        let row = self
            .query(READ)
            .fetch_optional(self.exec())
            .await
            .ctx("reading which region this database mirrors (database_identity)")?;
        row.map(|r| {
            Ok(DatabaseIdentity {
                region: r.try_get("region")?,
                account: r.try_get("account")?,
                recorded_at: r.try_get("recorded_at")?,
                recorded_by: r.try_get("recorded_by")?,
            })
        })
        .transpose()
    }

    /// Records `id` if nothing is recorded yet (`replace`: whatever is recorded); returns
    /// what the database says afterwards.
    pub(crate) async fn record_identity(
        &self,
        id: &DatabaseIdentity,
        replace: bool,
    ) -> Result<Option<DatabaseIdentity>, StorageError> {
        self.query(if replace { REWRITE } else { RECORD })
            .bind(id.region.clone())
            .bind(id.account.clone())
            .bind(id.recorded_at)
            .bind(id.recorded_by.clone())
            .execute(self.exec())
            .await
            .ctx("recording which region this database mirrors (database_identity)")?;
        self.identity().await
    }
}
