//! End-to-end tests: real `strata` processes on loopback, real clients (psql, tokio-postgres,
//! and the driver suites under drivers/).

mod branches;
mod bulk;
mod databases;
mod describe;
mod drivers;
mod durability;
mod round_trip;
mod support;
mod time_travel;
mod transactions;
