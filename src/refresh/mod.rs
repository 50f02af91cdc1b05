//! Refresh: "poll these projects now", in one folder and under one word.
//!
//! * [`command`] is `ice-sync refresh`: queues the refresh, then waits for a running
//!   daemon to poll the projects, or polls them itself;
//! * [`http`] is `POST /refresh` on the metrics listener, for tools that cannot run the
//!   command (it only queues);
//! * [`token`] is that endpoint's bearer token: where it comes from, how it is compared;
//! * [`daemon`] is the daemon's side: refresh cycles, woken by the queue.
//!
//! ICE callbacks queue refreshes too (`callback`). The queue itself is SQL, so it lives
//! in `storage::refresh_queue` (`store.refresh_queue()`): the table column is
//! `tracked_projects.requested_at`, a refresh cycle's `sync_runs.trigger` is `request`,
//! and the metrics keep their `ice_sync_poll_request*` names — those are the published
//! schema and metric names, unchanged.

pub(crate) mod command;
pub mod daemon;
pub(crate) mod http;
pub(crate) mod token;
