//! Telling others what happened: the change feed (PostgreSQL `NOTIFY` and the signed
//! webhook), with a real receiver on loopback.

mod feed;
mod feed_restart;
mod receiver;
