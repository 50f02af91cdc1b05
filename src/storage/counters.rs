//! Database round trips of one store, for benchmarks and the tests that hold the write
//! path to its statement budget. Per store, so parallel tests do not see each other.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageCounters {
    /// Statements sent (BEGIN and COMMIT included).
    pub statements: u64,
    /// Transactions committed.
    pub transactions: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    statements: AtomicU64,
    transactions: AtomicU64,
    /// Behind a transaction pooler: statements are sent unnamed (a named one would
    /// outlive the transaction on a server connection other clients get next), and
    /// statements outside a transaction get one of their own (see `autocommit`).
    pub(crate) transaction_pooled: bool,
}

impl Counters {
    pub(crate) fn transaction_pooled() -> Self {
        Counters {
            transaction_pooled: true,
            ..Default::default()
        }
    }

    pub(crate) fn statement(&self) {
        self.statements.fetch_add(1, Relaxed);
    }

    /// BEGIN and COMMIT are the two statements they are.
    pub(crate) fn committed(&self) {
        self.statements.fetch_add(2, Relaxed);
        self.transactions.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StorageCounters {
        StorageCounters {
            statements: self.statements.load(Relaxed),
            transactions: self.transactions.load(Relaxed),
        }
    }
}
