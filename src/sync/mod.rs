//! Synchronisation: the pure [`diff`] and the [`engine`] that runs cycles.

pub mod diff;
pub mod engine;
