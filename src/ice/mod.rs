//! Everything about talking to Alibaba Cloud ICE: request signing ([`signing`]), the
//! response shapes ([`model`]), typed failures ([`error`]) and the HTTP client
//! ([`client`]), whose answers share one in-flight byte budget ([`budget`]), and the
//! producing jobs' shapes ([`jobs_model`]). Nothing here knows about databases or
//! schedules.

pub mod budget;
pub mod client;
pub mod error;
pub mod jobs_model;
pub mod model;
pub mod signing;

pub use client::{ClientOptions, Fetched, IceClient, DEFAULT_MAX_RESPONSE_BYTES};
pub use error::{ErrorClass, IceError};
pub use model::Project;
