//! Wiring the change feed's webhook: the deliverer a daemon runs beside its cycles when
//! `webhook.url` is set (the store was told to queue transitions by `DaemonBuilder::engine`).

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{replica, Settings};
use crate::feed::{Deliverer, Running, Webhook};
use crate::sync::Engine;

/// Starts the deliverer, or `None` without `webhook.url`. Leases left by a local daemon
/// that died are given back first, so its unacknowledged rows go out now rather than
/// when their leases expire.
pub async fn start_feed(
    settings: &Settings,
    engine: &Engine,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<Running>> {
    let Some(webhook) = Webhook::resolve(&settings.webhook, |k| std::env::var(k).ok())? else {
        return Ok(None);
    };
    let store = engine.store().clone();
    let own_id = &engine.options().replica_id;
    let pattern = replica::own_runs_pattern(own_id);
    if pattern.ends_with(":%") {
        for owner in store.outbox().outbox_lease_owners(&pattern).await? {
            if replica::local_owner_is_gone(&owner, own_id) {
                let released = store.outbox().outbox_release(&owner).await?;
                tracing::info!(
                    owner,
                    released,
                    "released the webhook deliveries of a daemon that is no longer running"
                );
            }
        }
    }
    let deliverer = Deliverer::new(store, webhook, own_id.clone(), engine.clock().clone())
        .context("starting the webhook deliverer")?;
    Ok(Some(deliverer.spawn(shutdown)))
}
