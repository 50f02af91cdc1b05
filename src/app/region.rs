//! One region per database: the first start records which ICE region (and, where the
//! configuration says, which account) the database mirrors; a later start configured for
//! another is refused (exit 2) before anything is polled. ICE project IDs belong to a
//! region: polled in another, every project answers "not found" and would end up marked
//! removed.
//!
//! The account is known cheaply only from `ice.role_arn` (`acs:ram::ACCOUNT:role/NAME`):
//! access keys do not say whose they are without a network call (STS
//! `GetCallerIdentity`), which a start does not make. Where the account is not known it is
//! not recorded and not compared.
//!
//! `ice.rewrite_database_region = true` is the operator saying the move is intended: the
//! record is replaced with this configuration's, logged, and the start proceeds.

use crate::cli::Exit;
use crate::config::Settings;
use crate::storage::{DatabaseIdentity, Store};

/// The account ID in a RAM role ARN (`acs:ram::1234567890123456:role/ice-sync`).
pub(crate) fn account_of(role_arn: &str) -> Option<String> {
    let mut parts = role_arn.trim().split(':');
    let (Some("acs"), Some("ram"), Some(_), Some(account)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    (!account.is_empty() && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

/// Records this configuration's region in a database that has none, or refuses to start
/// (an [`Exit`] with code 2) when the database mirrors another region or account.
pub async fn check_region(settings: &Settings, store: &Store) -> anyhow::Result<()> {
    let configured = DatabaseIdentity {
        region: settings.ice.region.clone(),
        account: settings
            .ice
            .credentials
            .role_arn
            .as_deref()
            .and_then(account_of),
        recorded_at: super::now(store).await?,
        recorded_by: settings.sync.replica_id.clone(),
    };
    if settings.ice.rewrite_database_region {
        let before = store.identity().await?;
        store.record_identity(&configured, true).await?;
        if let Some(before) = before.filter(|b| differs(b, &configured)) {
            tracing::warn!(
                was = %describe(&before),
                now = %describe(&configured),
                "ice.rewrite_database_region: this database now records another region; \
                 remove the setting again"
            );
        }
        return Ok(());
    }
    let Some(recorded) = store.record_identity(&configured, false).await? else {
        return Ok(());
    };
    if differs(&recorded, &configured) {
        return Err(Exit {
            code: 2,
            message: refusal(&recorded, &configured),
        }
        .into());
    }
    if recorded.account.is_none() && configured.account.is_some() {
        // Same region, and now the account is known too: remember it.
        store.record_identity(&configured, true).await?;
    }
    Ok(())
}

/// Another region, or another account where both are known.
fn differs(recorded: &DatabaseIdentity, configured: &DatabaseIdentity) -> bool {
    recorded.region != configured.region
        || matches!((&recorded.account, &configured.account), (Some(a), Some(b)) if a != b)
}

fn describe(id: &DatabaseIdentity) -> String {
    match &id.account {
        Some(account) => format!("region {}, account {account}", id.region),
        None => format!("region {}", id.region),
    }
}

fn refusal(recorded: &DatabaseIdentity, configured: &DatabaseIdentity) -> String {
    format!(
        "this database mirrors ICE {} (recorded {} by {}), but this configuration is for {}: \
         ICE project IDs belong to one region and account, so every project would look \
         removed. Use one database (or PostgreSQL schema) per region: point database.url at \
         that region's database. If this database really moves, start once with \
         ice.rewrite_database_region = true (ICE_SYNC__ICE__REWRITE_DATABASE_REGION=true), \
         which records the new region",
        describe(recorded),
        recorded.recorded_at,
        recorded.recorded_by,
        describe(configured),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_comes_from_a_role_arn_only() {
        assert_eq!(
            account_of("acs:ram::1234567890123456:role/ice-sync").as_deref(),
            Some("1234567890123456")
        );
        assert_eq!(account_of("acs:ram::x:role/r"), None);
        assert_eq!(account_of("LTAI-access-key"), None);
        assert_eq!(account_of(""), None);
    }
}
