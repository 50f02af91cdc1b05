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
//!
//! A section's file owns everything about its keys: the raw serde struct and its
//! defaults, the ranges ([`bounds`] gathers them), the validation, its half and its part
//! of the reload diff. Adding a key to `[sync]` is an edit of `sync.rs` (and docs).
//!
//! Past this module nothing re-checks a string.

pub(crate) mod bounds;
pub(crate) mod callback;
pub(crate) mod database;
pub(crate) mod halves;
pub(crate) mod ice;
pub(crate) mod id_file;
pub(crate) mod jobs;
pub mod load;
mod parse_error;
pub(crate) mod postgres;
pub(crate) mod raw;
pub(crate) mod reload;
pub mod replica;
pub(crate) mod retention;
pub(crate) mod schedule;
pub(crate) mod secrets;
pub(crate) mod settings;
pub(crate) mod sync;
pub(crate) mod url;
pub(crate) mod webhook;

pub(crate) use callback::CallbackSettings;
pub use database::{DatabaseKind, DatabaseSettings};
pub(crate) use halves::{Fixed, Live, LiveSync};
pub(crate) use ice::IceSettings;
pub(crate) use jobs::JobsSettings;
pub use load::{config_path, load, load_from, DEFAULT_CONFIG_PATH};
pub use postgres::{Pooler, PostgresOptions, SslMode};
pub(crate) use reload::ReloadPlan;
pub(crate) use retention::RetentionSettings;
pub use schedule::{Schedule, SCHEDULE_HELP};
pub use settings::{ConfigError, LogFormat, LogSettings, MetricsSettings, Settings};
pub use sync::{ListFilter, SyncMode, SyncSettings};
pub(crate) use url::DatabaseUrl;
pub(crate) use webhook::{WebhookSecret, WebhookSettings};
