//! Synchronisation: the pure [`diff`] and [`policy`], and the [`engine`] that runs cycles.

pub mod diff;
pub mod engine;
pub mod policy;
