//! Events: ICE event callbacks that make polling faster (`callbacks`, end to end through
//! the simulator's signed deliveries, the in-process endpoint and the real daemon), and
//! telling others what happened: the change feed (PostgreSQL `NOTIFY` and the signed
//! webhook, `feed`, `feed_restart`), with a real receiver on loopback.

pub(crate) mod callbacks;
mod feed;
mod feed_restart;
pub(crate) mod receiver;
mod replay;
