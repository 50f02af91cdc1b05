//! Synchronisation, one concept per file, in the order data flows through a cycle:
//!
//! * [`engine`]: what a cycle needs (store, client, options, clock); `cycle`: one
//!   cycle, end to end, as a value with a method per phase; `outcome`: pure — how a
//!   cycle ended, from the facts its phases gathered.
//! * `time_base` and `clock_watch`: the clock that stamps a cycle's writes (the
//!   database's on PostgreSQL), and noticing that the local clock stepped.
//! * `claim`: due projects claimed a batch at a time under renewed leases.
//! * `list_sweep`: list mode's change detection (it only makes projects due).
//! * `observe`: a fetch result becomes an observation or a failure.
//! * [`diff`] and `policy`: pure — what to write, and when a project is due next
//!   (`next_poll` feeds the policy); `lifecycle`: pure — the states a jump skipped.
//! * `writer`: the one task that writes during a cycle, with failures kept local.
//! * `extra_fields`: fields ICE sends that this build does not name, logged once.
//! * [`jobs`]: producing jobs: found from transitions, callbacks and backfill, polled
//!   until final.
//! * `report`: what a cycle did; `progress`: how far the running
//!   cycle has got.

mod claim;
mod clock_watch;
pub(crate) mod cycle;
pub mod diff;
pub mod engine;
mod extra_fields;
pub mod jobs;
pub(crate) mod lifecycle;
mod list_sweep;
mod next_poll;
mod observe;
mod outcome;
pub(crate) mod policy;
pub(crate) mod progress;
pub(crate) mod report;
mod time_base;
mod writer;

pub use engine::{CycleKind, Engine, EngineOptions, ListMode};
pub(crate) use progress::{CycleProgress, ProgressSnapshot};
pub use report::{CycleOutcome, CycleReport};
