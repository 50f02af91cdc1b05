//! Configuration: what the operator wrote, turned once into the types the program runs on.
//!
//! * [`raw`]: the serde layer assembled, what the file and the `ICE_SYNC__*` variables
//!   may say; each section's raw struct and defaults are in its own file; unknown keys
//!   are errors.
//! * [`settings`]: [`Settings`], composed of one validated section per table, each with
//!   its own `from_raw` conversion: [`database`], [`ice`], [`sync`], [`callback`],
//!   [`webhook`], and `[log]` and `[metrics]` in `settings` itself. Every error names the
//!   key and the value.
//! * [`load`]: the layering (defaults < TOML file < variables) and which file to read.
//! * [`id_file`]: files of project IDs (`sync.projects_file`, `track import`).
//! * [`schedule`]: `sync.schedule` (cron, in UTC) and its ticks around a given moment.
//! * [`postgres`]: `[database]`'s PostgreSQL-only keys: TLS and the pooler.
//! * [`bounds`]: checks the range of every duration, size and count key (each section
//!   lists its own).
//! * `secrets`: which keys and URL parameters are secret; `parse_error`: load errors
//!   that never quote a secret (TOML syntax errors by line and column).
//! * [`url`]: [`DatabaseUrl`], which hides passwords wherever it is shown.
//! * [`replica`]: the default `sync.replica_id` and how earlier local identities are
//!   recognised.
//! * [`retention`]: how long bookkeeping rows are kept (`ice-sync prune`).
//! * [`halves`]: the settings split into [`Fixed`] (for the life of the process) and
//!   [`Live`] (what a reload may change), assembled from each section's own split.
//! * [`reload`]: what changed between two loads, by half: what applies at run time and
//!   what needs a restart; each section describes its own keys.
//! * `fixed_keys` (tests and `testkit` only): every restart-only key with another value.
//!
//! A section's file owns everything about its keys: the raw serde struct and its
//! defaults, the ranges ([`bounds`] gathers them), the validation, its half and its part
//! of the reload diff. Adding a key to `[sync]` is an edit of `sync.rs` (and docs).
//!
//! Past this module nothing re-checks a string.

pub mod bounds;
pub mod callback;
pub mod database;
#[cfg(any(test, feature = "testkit"))]
pub mod fixed_keys;
pub mod halves;
pub mod ice;
pub mod id_file;
pub mod jobs;
pub mod load;
mod parse_error;
pub mod postgres;
pub mod raw;
pub mod reload;
pub mod replica;
pub mod retention;
pub mod schedule;
pub(crate) mod secrets;
pub mod settings;
pub mod sync;
pub mod url;
pub mod webhook;

pub use callback::CallbackSettings;
pub use database::{DatabaseKind, DatabaseSettings};
pub use halves::{Fixed, FixedIce, FixedSync, Live, LiveIce, LiveSync};
pub use ice::IceSettings;
pub use jobs::JobsSettings;
pub use load::{config_path, load, load_from, DEFAULT_CONFIG_PATH};
pub use postgres::{Pooler, PostgresOptions, SslMode};
pub use raw::{
    RawAuthKeys, RawCallback, RawDatabase, RawIce, RawListFilter, RawLog, RawMetrics, RawSettings,
    RawSync, RawWebhook,
};
pub use reload::{changes, reload, Applies, Change, ProjectsDelta, ReloadPlan};
pub use replica::{default_replica_id, hostname};
pub use retention::RetentionSettings;
pub use schedule::{Schedule, SCHEDULE_HELP};
pub use settings::{ConfigError, LogFormat, LogSettings, MetricsSettings, Settings};
pub use sync::{ListFilter, SyncMode, SyncSettings};
pub use url::DatabaseUrl;
pub use webhook::{WebhookSecret, WebhookSettings};
