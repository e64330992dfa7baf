//! Extended-protocol replies held back until Sync, as PostgreSQL does.
//!
//! pgwire's handlers for Bind, Describe and Execute flush the socket after most messages they
//! send, so a prepared statement's reply (BindComplete, RowDescription, DataRow,
//! CommandComplete, ReadyForQuery) leaves as four or five TCP segments, each a system call here
//! and in every hop on the way (the proxy relays each on its own). PostgreSQL writes nothing
//! until Sync or Flush, and then everything at once. [`DeferredFlush`] wraps a connection for
//! those handlers: messages are buffered as usual, flushes are skipped, and the Sync or Flush
//! handler, which gets the connection itself, writes the lot. The buffer still drains by
//! itself when it fills, and a COPY's opening message goes out at once, since the client waits
//! for it before sending data.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, SessionExtensions};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, ProtocolVersion};

use rustls_pki_types::CertificateDer;

/// A client connection whose flushes wait for the next Sync or Flush.
pub struct DeferredFlush<'a, C> {
    client: &'a mut C,
    /// The last message sent opens a COPY: the client must see it now.
    flush_now: bool,
}

impl<'a, C> DeferredFlush<'a, C> {
    pub fn new(client: &'a mut C) -> Self {
        Self {
            client,
            flush_now: false,
        }
    }
}

impl<C> Sink<PgWireBackendMessage> for DeferredFlush<'_, C>
where
    C: Sink<PgWireBackendMessage> + Unpin,
{
    type Error = C::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        Pin::new(&mut *self.client).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: PgWireBackendMessage) -> Result<(), C::Error> {
        self.flush_now = matches!(
            item,
            PgWireBackendMessage::CopyInResponse(_) | PgWireBackendMessage::CopyBothResponse(_)
        );
        Pin::new(&mut *self.client).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        if self.flush_now {
            Pin::new(&mut *self.client).poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        Pin::new(&mut *self.client).poll_close(cx)
    }
}

impl<C: ClientPortalStore> ClientPortalStore for DeferredFlush<'_, C> {
    type PortalStore = C::PortalStore;

    fn portal_store(&self) -> &Self::PortalStore {
        self.client.portal_store()
    }
}

impl<C: ClientInfo> ClientInfo for DeferredFlush<'_, C> {
    fn socket_addr(&self) -> SocketAddr {
        self.client.socket_addr()
    }
    fn is_secure(&self) -> bool {
        self.client.is_secure()
    }
    fn protocol_version(&self) -> ProtocolVersion {
        self.client.protocol_version()
    }
    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.client.set_protocol_version(version)
    }
    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.client.pid_and_secret_key()
    }
    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.client.set_pid_and_secret_key(pid, secret_key)
    }
    fn state(&self) -> PgWireConnectionState {
        self.client.state()
    }
    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.client.set_state(new_state)
    }
    fn transaction_status(&self) -> TransactionStatus {
        self.client.transaction_status()
    }
    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.client.set_transaction_status(new_status)
    }
    fn metadata(&self) -> &HashMap<String, String> {
        self.client.metadata()
    }
    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.client.metadata_mut()
    }
    fn session_extensions(&self) -> &SessionExtensions {
        self.client.session_extensions()
    }
    fn sni_server_name(&self) -> Option<&str> {
        self.client.sni_server_name()
    }
    fn client_certificates<'a>(&self) -> Option<&[CertificateDer<'a>]> {
        self.client.client_certificates()
    }
}

impl<C> Debug for DeferredFlush<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredFlush")
            .field("flush_now", &self.flush_now)
            .finish()
    }
}
