//! The contract between `sync` and `storage`: what a claim hands the engine
//! ([`Stored`]), what the diff decides ([`Plan`]), the jobs the writer gives storage, and
//! list mode's sweep cursor ([`SweepCursor`]), and producing jobs ([`JobObservation`]).
//!
//! A leaf module: it depends only on [`crate::domain`]. `sync` (which makes plans) calls
//! `storage` (which executes them) through the store's roles; `storage` never depends
//! on `sync`, because everything it is handed or hands back is defined here.
//! Every write of a claimed project carries its [`ClaimToken`]: storage applies it only
//! while that claim is still the project's current one. [`Transition`] is what storage
//! announces for each committed history row (the change feed's payload).

mod jobs;
mod plan;
mod producing;
mod stored;
mod sweep;
mod transition;

pub use jobs::{Applied, ClaimScope, FailureJob, NextPoll, RunTotals, TouchJob, WriteJob};
pub use plan::{HistoryEntry, HistoryEvent, Plan, ProjectColumns, ProjectWrite, Touch};
pub use producing::{JobObservation, JobRequest, ProducingJobColumns, StoredJob};
pub use stored::{ClaimToken, Stored, StoredRow};
pub use sweep::{SweepCursor, SweepEnd, SweepStart, SweepStatus, SweepStep};
pub use transition::{Transition, MAX_PAYLOAD_BYTES};
