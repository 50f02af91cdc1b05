//! What ice-sync's client and its simulator (`ice-sim`) both speak: the ICE answers' wire
//! shapes ([`model`], [`jobs_model`], with the error envelope `model::ErrorBody`), ACS3
//! signing and its server-side parse ([`signing`]), the RPC signature STS speaks
//! ([`rpc_signing`]) and the percent-encoding under both ([`percent`]). Pure: no sockets,
//! no clocks, no databases.

pub mod jobs_model;
pub mod model;
pub mod percent;
pub mod rpc_signing;
#[cfg(test)]
mod samples;
pub mod signing;
