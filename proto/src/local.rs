//! Services served by this process, reachable by their address without a socket.
//!
//! `strata up` runs the safekeepers, the pageserver and the computes in one process, each
//! serving gRPC on its own loopback port. A call between two of them through that port pays for
//! protobuf, HTTP/2 framing, two trips through the kernel's TCP stack and the wake-ups between
//! them: under pgbench's TPC-B load, the commit path's calls (compute to safekeeper leader,
//! leader to followers) were about a quarter of the CPU.
//!
//! A server therefore registers here, under the addresses it serves on, the object that
//! answers its calls; a client looks the address up before each call and, when the server is
//! in this process, calls that object directly. The answers (`Status` codes and metadata
//! included) are those the socket would carry, so callers handle both paths alike. A
//! registration ends when its [`Registration`] drops, which servers do as they stop serving;
//! from then on callers use the socket and meet whatever a stopped server answers there.
//!
//! Registrations are keyed by the registered type too, so a safekeeper's Raft handle and its
//! client-facing service can share one address.
//!
//! `STRATA_IN_PROCESS_CALLS=0` in the environment turns this off (nothing registers), so that
//! every call goes through gRPC: for measuring what the shortcut saves, and for ruling it out
//! when chasing a problem.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::pageserver::pageserver_server::Pageserver;
use crate::pageserver::{GetRequest, GetResponse};
use crate::safekeeper::safekeeper_server::Safekeeper;
use crate::safekeeper::{
    AppendWalRequest, AppendWalResponse, RegisterPrimaryRequest, RegisterPrimaryResponse,
    StreamWalRequest, WalChunk,
};

/// One registered service: the id of its registration and the `Arc<T>` itself.
type Entry = (u64, Box<dyn Any + Send + Sync>);

/// Read on every call between components (a lookup), written only as servers start and stop.
/// The map is only inserted into and removed from, so a panic elsewhere leaves it whole.
static SERVICES: LazyLock<RwLock<HashMap<TypeId, HashMap<String, Entry>>>> =
    LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Keeps a service reachable in process; dropping it withdraws the service.
#[must_use = "the service is withdrawn when the registration drops"]
pub struct Registration {
    id: u64,
    type_id: TypeId,
    addrs: Vec<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut services = SERVICES.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(by_addr) = services.get_mut(&self.type_id) {
            for addr in &self.addrs {
                // A later registration at the same address (a restarted server) stays.
                if by_addr.get(addr).is_some_and(|(id, _)| *id == self.id) {
                    by_addr.remove(addr);
                }
            }
        }
    }
}

/// Makes `service` the in-process answer to calls for `T` at each of `addrs` (the forms in
/// which clients name this server, e.g. `127.0.0.1:7010`).
pub fn register<T>(addrs: impl IntoIterator<Item = String>, service: Arc<T>) -> Registration
where
    T: ?Sized + Send + Sync + 'static,
{
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let type_id = TypeId::of::<T>();
    if !enabled() {
        return Registration {
            id,
            type_id,
            addrs: Vec::new(),
        };
    }
    let mut addrs: Vec<String> = addrs.into_iter().collect();
    addrs.sort();
    addrs.dedup();
    let mut services = SERVICES.write().unwrap_or_else(PoisonError::into_inner);
    let by_addr = services.entry(type_id).or_default();
    for addr in &addrs {
        by_addr.insert(addr.clone(), (id, Box::new(service.clone())));
    }
    Registration { id, type_id, addrs }
}

/// Whether servers register: unless `STRATA_IN_PROCESS_CALLS` is `0` (read once).
fn enabled() -> bool {
    static ENABLED: LazyLock<bool> =
        LazyLock::new(|| std::env::var("STRATA_IN_PROCESS_CALLS").map_or(true, |v| v != "0"));
    *ENABLED
}

/// The service for `T` registered at `addr` in this process, if any.
pub fn find<T>(addr: &str) -> Option<Arc<T>>
where
    T: ?Sized + Send + Sync + 'static,
{
    SERVICES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&TypeId::of::<T>())?
        .get(addr)?
        .1
        .downcast_ref::<Arc<T>>()
        .cloned()
}

/// Committed WAL as a local `StreamWal` delivers it.
pub type WalStream = Pin<Box<dyn Stream<Item = Result<WalChunk, Status>> + Send>>;

/// The safekeeper calls computes and pageservers make, for callers in the safekeeper's process.
/// Every `strata.safekeeper.Safekeeper` server provides it.
#[tonic::async_trait]
pub trait LocalSafekeeper: Send + Sync {
    async fn register_primary(
        &self,
        request: RegisterPrimaryRequest,
    ) -> Result<RegisterPrimaryResponse, Status>;

    async fn append_wal(&self, request: AppendWalRequest) -> Result<AppendWalResponse, Status>;

    async fn stream_wal(&self, request: StreamWalRequest) -> Result<WalStream, Status>;
}

#[tonic::async_trait]
impl<S: Safekeeper> LocalSafekeeper for S {
    async fn register_primary(
        &self,
        request: RegisterPrimaryRequest,
    ) -> Result<RegisterPrimaryResponse, Status> {
        Safekeeper::register_primary(self, Request::new(request))
            .await
            .map(Response::into_inner)
    }

    async fn append_wal(&self, request: AppendWalRequest) -> Result<AppendWalResponse, Status> {
        Safekeeper::append_wal(self, Request::new(request))
            .await
            .map(Response::into_inner)
    }

    async fn stream_wal(&self, request: StreamWalRequest) -> Result<WalStream, Status> {
        let stream = Safekeeper::stream_wal(self, Request::new(request)).await?;
        Ok(Box::pin(stream.into_inner()))
    }
}

/// The pageserver's point read, for a compute in the pageserver's process. Every
/// `strata.pageserver.Pageserver` server provides it.
#[tonic::async_trait]
pub trait LocalPageserver: Send + Sync {
    async fn get(&self, request: GetRequest) -> Result<GetResponse, Status>;
}

#[tonic::async_trait]
impl<P: Pageserver> LocalPageserver for P {
    async fn get(&self, request: GetRequest) -> Result<GetResponse, Status> {
        Pageserver::get(self, Request::new(request))
            .await
            .map(Response::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_is_found_by_type_and_address_until_it_drops() {
        let first = register(["127.0.0.1:1".to_string()], Arc::new(1_u32));
        assert_eq!(find::<u32>("127.0.0.1:1").as_deref(), Some(&1));
        assert!(find::<u64>("127.0.0.1:1").is_none(), "another type");
        assert!(find::<u32>("127.0.0.1:2").is_none(), "another address");
        // A restarted server registers again before the old registration is gone.
        let second = register(["127.0.0.1:1".to_string()], Arc::new(2_u32));
        drop(first);
        assert_eq!(find::<u32>("127.0.0.1:1").as_deref(), Some(&2));
        drop(second);
        assert!(find::<u32>("127.0.0.1:1").is_none());
    }

    #[test]
    fn trait_objects_register_too() {
        trait Named: Send + Sync {
            fn name(&self) -> &'static str;
        }
        struct A;
        impl Named for A {
            fn name(&self) -> &'static str {
                "a"
            }
        }
        let _registration = register(["local:3".to_string()], Arc::new(A) as Arc<dyn Named>);
        assert_eq!(find::<dyn Named>("local:3").map(|n| n.name()), Some("a"));
    }
}
