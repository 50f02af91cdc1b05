//! The engine: what a cycle needs, assembled once — the store, the ICE client, the
//! options and the clock.
//!
//! Neither the engine nor its cycles ([`super::cycle`]) sleep on a schedule or read
//! config files: they get everything at construction, and stop when the
//! `CancellationToken` they are given is cancelled (no new requests start; in-flight
//! projects finish and commit).

use std::time::Duration;

use crate::clock::{self, SharedClock};
use crate::config::LiveSync;
use crate::ice::IceClient;
use crate::storage::Store;

use super::clock_watch::ClockWatch;
use super::policy::PollPolicy;

pub use super::list_sweep::ListMode;
pub use super::report::{CycleOutcome, CycleReport};

/// Which projects a cycle polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleKind {
    /// What was due at the latest tick of `sync.schedule`.
    Scheduled,
    /// `run --once`: every project a tick at this moment would poll — transient ones
    /// always, settled ones whose interval has passed, failing ones whose backoff has
    /// passed — however recent the previous run.
    Once,
    /// `run --once --all`: every enabled project.
    All,
    /// Projects someone asked to poll now (`ice-sync refresh`, `POST /refresh`, a
    /// callback). Runs beside the scheduled cycles of the same engine, under a lease owner
    /// of its own ([`Engine::lease_owner`]), so neither gives back the other's claims.
    Refresh,
}

impl CycleKind {
    /// `sync_runs.trigger`.
    pub(crate) fn trigger(self) -> &'static str {
        match self {
            CycleKind::Scheduled => "scheduled",
            CycleKind::Once => "once",
            CycleKind::All => "all",
            CycleKind::Refresh => "request",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The live `[sync]` half this engine runs on (`config::sync::LiveSync`): a live key
    /// the engine reads is read from here (`sync.concurrency`, `sync.max_qps`,
    /// `sync.removal_confirmations`, ...), with no copy or default of its own. The
    /// schedule and intervals in it are read through [`EngineOptions::policy`], which is
    /// built from them.
    pub sync: LiveSync,
    /// Stop claiming work after this long; the cycle is then `partial`.
    pub cycle_timeout: Option<Duration>,
    pub replica_id: String,
    pub policy: PollPolicy,
    /// How long a claim lasts unless renewed (it is renewed while fetches are in flight).
    pub lease_ttl: Duration,
    /// Projects per claim; 0 picks a size from the backend, concurrency and lease.
    pub claim_batch: usize,
    /// Unchanged projects recorded per touch statement.
    pub(crate) touch_batch: usize,
    /// Changed projects per write transaction.
    pub write_batch: usize,
    /// A write transaction also ends once its projects' stored size reaches this.
    pub write_batch_bytes: usize,
    /// `Some` in list mode: each cycle starts with a sweep of `ListEditingProjects`.
    pub list: Option<ListMode>,
    /// `jobs.enabled`: each cycle ends with its job step (`sync::jobs`).
    pub(crate) jobs: bool,
}

/// The engine's own tuning, not configuration keys: every `sync.*` key's default lives
/// in `config::sync` alone (`RawSync`).
impl EngineOptions {
    /// Unchanged projects recorded per touch statement.
    pub(crate) const TOUCH_BATCH: usize = 1000;
    /// Changed projects per write transaction.
    pub(crate) const WRITE_BATCH: usize = 64;
    /// Stored bytes that end a write transaction early.
    pub(crate) const WRITE_BATCH_BYTES: usize = 8 * 1024 * 1024;
}

pub struct Engine {
    pub(super) store: Store,
    pub(super) client: IceClient,
    pub(super) options: EngineOptions,
    pub(super) clock: SharedClock,
    pub(super) clock_watch: std::sync::Arc<ClockWatch>,
    pub(super) progress: std::sync::Arc<super::progress::CycleProgress>,
    /// Held for the engine's lifetime (and its successors'): the SQLite single-writer
    /// lock, if any.
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

impl Engine {
    pub fn new(store: Store, client: IceClient, options: EngineOptions) -> Self {
        Self {
            store,
            client,
            options,
            clock: clock::system(),
            clock_watch: Default::default(),
            progress: Default::default(),
            _lock: None,
        }
    }

    /// The engine a reloaded configuration asks for: a new client and options on the
    /// same store, sharing this one's clock, step detection, progress and writer lock, so
    /// the swap is invisible to everything but the new settings.
    pub fn successor(&self, client: IceClient, options: EngineOptions) -> Engine {
        Engine {
            store: self.store.clone(),
            client,
            options,
            clock: self.clock.clone(),
            clock_watch: self.clock_watch.clone(),
            progress: self.progress.clone(),
            _lock: self._lock.clone(),
        }
    }

    /// Reads wall-clock time from `clock` (tests skew and step it).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps `lock` (see `storage::lock_writer`) until the engine is dropped.
    pub(crate) fn holding(mut self, lock: Option<std::fs::File>) -> Self {
        self._lock = lock.map(std::sync::Arc::new);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Who a cycle of `kind` records its leases for: the replica id, or for requested
    /// cycles the replica id with a suffix (they run beside scheduled ones, and each
    /// cycle gives back all of its owner's leases when it starts and ends).
    pub(crate) fn lease_owner(&self, kind: CycleKind) -> String {
        match kind {
            CycleKind::Refresh => crate::config::replica::requests_owner(&self.options.replica_id),
            CycleKind::Scheduled | CycleKind::Once | CycleKind::All => {
                self.options.replica_id.clone()
            }
        }
    }
}
