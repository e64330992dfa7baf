//! The Strata compute: a stateless PostgreSQL-protocol server.
//!
//! A compute registers as the primary of one branch with the safekeepers (fencing any earlier
//! primary), loads the catalog from the pageserver, and serves pgwire connections. SQL is parsed
//! by sqlparser and planned and run by DataFusion over `StrataTable`s; writes commit through the
//! safekeeper quorum. Nothing here is durable: kill a compute at any moment and a new one carries
//! on from storage.

mod advisory_functions;
mod age_function;
mod as_of;
mod bytea;
mod cast_parameters;
mod catalog;
mod checks;
mod clock;
mod column_names;
mod comments;
mod copy;
mod copy_binary;
mod date_interval;
mod ddl;
mod deferred_flush;
mod df_catalog;
mod dialect;
mod dml;
mod enums;
mod error;
mod expr_rules;
mod fast_path;
mod foreign_keys;
mod format_function;
mod generated;
mod indexes;
mod insert_defaults;
mod int_arithmetic;
mod int_literals;
mod interval;
mod interval_order;
mod interval_scale;
mod json;
mod json_agg;
mod json_build;
mod json_sets;
mod key_range;
mod last_written;
mod like_escape;
mod make_interval;
mod named_statements;
mod names;
mod numeric_scale;
mod numeric_text;
mod ordered_scan;
mod params;
mod pg_aggregates;
mod pg_array;
mod pg_casts;
mod pg_catalog;
mod pg_encode;
mod pg_text;
mod primary;
mod query_forms;
mod row_cache;
mod row_codec;
mod row_expr;
mod scan;
mod search_path;
mod sequence;
mod series;
mod server;
mod session;
mod settings;
mod sql_rewrite;
mod storage;
mod subquery_apply;
mod table;
mod text_input;
mod to_char_function;
mod to_date_function;
mod txn;
mod txn_slot;
mod types;
mod upsert;
mod uuid_functions;
mod views;

use std::sync::Arc;
use std::time::Duration;

use strata_core::TimelineId;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use error::{ComputeError, SqlError};
pub use storage::StorageError;

use primary::Primary;
use storage::{PageserverClient, SafekeeperClient};
use txn::TxnManager;

/// How a compute finds its branch's storage.
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    pub timeline: TimelineId,
    /// `host:port` of every safekeeper.
    pub safekeepers: Vec<String>,
    /// `host:port` of the pageserver.
    pub pageserver: String,
    /// How long to wait for the safekeepers to accept this compute as primary.
    pub register_timeout: Duration,
    /// A read-only compute: every session reads the branch at this LSN (as if `SET
    /// strata.as_of` were in force) and writes are refused. It never registers as primary, so
    /// it runs beside the branch's primary.
    pub pinned: Option<strata_core::Lsn>,
    /// Bytes of committed rows the primary keeps in memory for point reads (see
    /// `row_cache.rs`); 0 turns the cache off.
    pub row_cache_bytes: usize,
}

impl ComputeConfig {
    pub fn new(timeline: TimelineId, safekeepers: Vec<String>, pageserver: String) -> Self {
        Self {
            timeline,
            safekeepers,
            pageserver,
            register_timeout: Duration::from_secs(60),
            pinned: None,
            row_cache_bytes: DEFAULT_ROW_CACHE_BYTES,
        }
    }
}

/// The row cache's size unless configured: the rows of a pgbench database of scale 10.
pub const DEFAULT_ROW_CACHE_BYTES: usize = 256 << 20;

/// How long a read-only compute's lease on its LSN lasts; it is renewed at half that.
const PIN_LEASE: Duration = Duration::from_secs(600);

/// The next handed-over connection; never ready without a channel or once it is closed.
async fn recv_handed(
    handed: &mut Option<tokio::sync::mpsc::Receiver<HandedConnection>>,
) -> Option<HandedConnection> {
    match handed {
        Some(rx) => match rx.recv().await {
            Some(connection) => Some(connection),
            None => {
                *handed = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

async fn renew_pin_lease(
    pageserver: PageserverClient,
    lsn: strata_core::Lsn,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PIN_LEASE / 2) => {}
        }
        if let Err(e) = pageserver.lease(lsn, PIN_LEASE.as_secs()).await {
            tracing::warn!(%lsn, error = %e, "could not renew the lease on the pinned LSN");
        }
    }
}

/// A client socket handed over by a proxy in this process, its StartupMessage not yet read,
/// and a guard to drop when the connection ends.
pub type HandedConnection = (tokio::net::TcpStream, Option<Box<dyn Send + Sync>>);

/// Runs a primary compute on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: ComputeConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ComputeError> {
    run_with_handoff(config, listener, None, shutdown).await
}

/// [`run`], also serving the connections a proxy in this process hands over on `handed`
/// (which saves relaying every byte through the proxy).
pub async fn run_with_handoff(
    config: ComputeConfig,
    listener: TcpListener,
    mut handed: Option<tokio::sync::mpsc::Receiver<HandedConnection>>,
    shutdown: CancellationToken,
) -> Result<(), ComputeError> {
    let safekeepers = SafekeeperClient::connect_lazy(&config.safekeepers, config.timeline)
        .map_err(ComputeError::Register)?;
    let pageserver = PageserverClient::connect_lazy(&config.pageserver, config.timeline)
        .map_err(ComputeError::Register)?;
    let (generation, commit_lsn) = match config.pinned {
        Some(lsn) => {
            tracing::info!(timeline = %config.timeline, %lsn, "read-only compute");
            // GC must not pass the pinned LSN while this compute runs: a lease, renewed.
            pageserver
                .lease(lsn, PIN_LEASE.as_secs())
                .await
                .map_err(ComputeError::Pinned)?;
            tokio::spawn(renew_pin_lease(pageserver.clone(), lsn, shutdown.clone()));
            (0, lsn)
        }
        None => {
            let registered = tokio::select! {
                r = safekeepers.register_primary(config.register_timeout) => r.map_err(ComputeError::Register)?,
                _ = shutdown.cancelled() => return Ok(()),
            };
            tracing::info!(timeline = %config.timeline, generation = registered.0, commit_lsn = %registered.1, "registered as primary");
            registered
        }
    };

    let catalog = primary::load_catalog(&pageserver, commit_lsn)
        .await
        .map_err(ComputeError::Catalog)?;

    let primary = Arc::new(Primary {
        catalog,
        sequences: sequence::Sequences::default(),
        txns: TxnManager::new(
            safekeepers,
            generation,
            commit_lsn,
            // A read-only compute does not see the branch's commits, so it cannot cache.
            (config.pinned.is_none() && config.row_cache_bytes > 0)
                .then(|| row_cache::RowCache::new(config.row_cache_bytes)),
        ),
        pageserver,
        past_catalogs: Default::default(),
        pinned: config.pinned,
        points: Default::default(),
        connections: Default::default(),
    });
    let server = server::Server::new(primary);
    let mut connections = JoinSet::new();
    tracing::info!(addr = %listener.local_addr()?, "accepting PostgreSQL connections");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (socket, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let handlers = server.connection();
                connections.spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                        tracing::debug!(%addr, error = %e, "connection ended with an error");
                    }
                });
            }
            Some((socket, guard)) = recv_handed(&mut handed) => {
                let _ = socket.set_nodelay(true);
                let handlers = server.connection();
                connections.spawn(async move {
                    let addr = socket.peer_addr().ok();
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                        tracing::debug!(?addr, error = %e, "connection ended with an error");
                    }
                    drop(guard);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    tracing::info!("compute stopped");
    Ok(())
}
