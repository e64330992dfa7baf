//! End-to-end tests: real `strata` processes on loopback, real clients (psql, tokio-postgres).

mod bulk;
mod durability;
mod round_trip;
mod support;
mod transactions;
