//! Poll requests (issue 14, on-demand refresh): the queue and its claims (`queue`), a
//! running daemon picking requests up (`daemon`: one or two real processes), `ice-sync
//! refresh` (`cli`) and `POST /refresh` (`http`). Every test runs on both backends except
//! the two-replica one, which only PostgreSQL can host.

mod cli;
pub(crate) mod daemon;
mod http;
mod queue;
