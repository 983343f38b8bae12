//! Integration tests of the agent crate: a real hub and real agents over TLS on 127.0.0.1, with
//! the `testkit` feature's `Authority` (a `Mutex<HashMap>` standing in for the server's database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hub_agent;
mod protocol;
mod scale;
