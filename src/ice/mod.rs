//! Everything about talking to Alibaba Cloud ICE as a client: typed failures ([`error`])
//! and the HTTP client ([`client`]; what its error answers mean is `answers`), whose answers share one in-flight byte budget
//! ([`budget`]). The wire shapes ([`model`], [`jobs_model`]) and the signing live in the
//! crate `ice_wire`, which the simulator shares; the shapes are re-exported here because
//! the client's answers are typed in them. Nothing here knows about databases or
//! schedules.

mod answers;
pub(crate) mod budget;
pub(crate) mod client;
pub(crate) mod error;

pub use ice_wire::{jobs_model, model};

pub use client::{ClientOptions, Fetched, IceClient, DEFAULT_MAX_RESPONSE_BYTES};
pub use error::{ErrorClass, IceError};
pub use model::Project;
