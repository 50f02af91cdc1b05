//! The change feed's webhook: every committed history row, POSTed to `webhook.url`,
//! signed, at least once, in order per project.
//!
//! The announcement itself happens in storage, inside the write transaction: PostgreSQL's
//! `NOTIFY ice_sync_transition` always, and a `webhook_outbox` row while the webhook is
//! on. This module comes after the write in the data flow and only drains that outbox:
//! * [`secret`]: the signing key (`webhook.secret`, `webhook.secret_file` or the systemd
//!   credential `webhook-secret`), resolved at start-up;
//! * [`signature`]: `X-Ice-Sync-Signature: sha256=<hex HMAC of the body>`;
//! * [`deliverer`]: the task that claims each project's next row, sends it, deletes it on
//!   2xx and backs off otherwise; it wakes when the writer commits, and polls as a
//!   fallback.
//!
//! Delivery state lives in the database, so a restart resends whatever was not
//! acknowledged, and a repeat carries the same `Idempotency-Key` (`project_id:seq`) and
//! the same bytes as the first attempt.

pub mod deliverer;
pub(crate) mod secret;
pub(crate) mod signature;

pub use deliverer::{backoff, Deliverer, Running};
pub use secret::Webhook;
