//! Which of the embedded migrations a run applies: all of them, or a prefix (an older
//! release's schema, for upgrade tests and the analytics benchmark's "before").

use std::borrow::Cow;

use sqlx::migrate::Migrator;

/// `migrator` limited to the migrations numbered up to `through` (all when `None`).
pub(crate) fn through(migrator: Migrator, through: Option<i64>) -> Migrator {
    let Some(last) = through else {
        return migrator;
    };
    let kept: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    Migrator {
        migrations: Cow::Owned(kept),
        ..migrator
    }
}
