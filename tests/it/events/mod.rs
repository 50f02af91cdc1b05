//! Events that make polling faster: ICE event callbacks (`callbacks`), end to end through
//! the simulator's signed deliveries, the in-process endpoint and the real daemon.

mod callbacks;
