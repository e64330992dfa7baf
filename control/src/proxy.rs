//! The proxy: the front door for PostgreSQL clients.
//!
//! A client names the endpoint it wants inside its StartupMessage (`options=endpoint=NAME`, which
//! libpq sends for `?options=endpoint%3DNAME` or `PGOPTIONS`), so the proxy has to read the
//! startup phase itself before it knows where the connection goes. It then asks a [`Router`] for
//! the backend (a compute, which speaks the PostgreSQL protocol), replays the StartupMessage there
//! without the endpoint switch, and splices bytes both ways until either side closes.
//!
//! The proxy neither terminates TLS (it answers `N` to SSLRequest and GSSENCRequest) nor
//! authenticates: authentication happens between client and backend on the spliced stream.
//!
//! A backend in the proxy's own process (`strata up`) takes the client's socket instead: the
//! proxy only peeks at the StartupMessage, and hands the socket over with it unread, so the
//! backend speaks to the client directly and no byte is relayed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Request codes of the v3 protocol's untyped first packets (PostgreSQL `pqcomm.h`).
const SSL_REQUEST_CODE: u32 = 80877103;
const GSSENC_REQUEST_CODE: u32 = 80877104;
const CANCEL_REQUEST_CODE: u32 = 80877102;
/// A StartupMessage's code is the protocol version, major in the high 16 bits. Any 3.x is passed
/// on unchanged: the backend negotiates the minor version with the client itself.
const PROTOCOL_MAJOR: u32 = 3;
/// PostgreSQL's own limit (`MAX_STARTUP_PACKET_LENGTH`); anything longer is not a PostgreSQL
/// client, and the bound keeps a stranger from making us allocate.
const MAX_STARTUP_PACKET_LEN: usize = 10_000;
/// A client may ask for GSS encryption, then for SSL, then start; more than that is a loop.
const MAX_ENCRYPTION_REQUESTS: usize = 2;
/// Like PostgreSQL's `authentication_timeout`: a client that connects and says nothing does not
/// hold a task forever.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the backend's TCP handshake once the router has named it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection could not be routed; the client sees it as a FATAL ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLSTATE {sqlstate})")]
pub struct RouteError {
    /// The five-character SQLSTATE, e.g. `3D000` for an unknown endpoint.
    pub sqlstate: &'static str,
    pub message: String,
}

impl RouteError {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Self {
            sqlstate,
            message: message.into(),
        }
    }
}

/// A guard held while a connection lasts (a router counts open connections with it: an
/// endpoint without any may be suspended).
pub type ConnectionGuard = Box<dyn Send + Sync>;

/// A client connection handed to a backend in this process: its socket, whose next bytes are
/// the StartupMessage, and the route's guard, to be dropped when the connection ends.
pub type HandedConnection = (TcpStream, Option<ConnectionGuard>);

/// Where a connection goes, and a guard the proxy holds until the connection ends.
pub struct Route {
    pub addr: SocketAddr,
    pub guard: Option<ConnectionGuard>,
    /// Set when the backend runs in this process and takes client sockets itself.
    pub handoff: Option<mpsc::Sender<HandedConnection>>,
}

impl From<SocketAddr> for Route {
    fn from(addr: SocketAddr) -> Self {
        Route {
            addr,
            guard: None,
            handoff: None,
        }
    }
}

/// Where a connection goes.
#[async_trait::async_trait]
pub trait Router: Send + Sync + 'static {
    /// The backend for a client that named `endpoint` (None: the client named none) and
    /// `database`. May take a while: it may start the backend.
    async fn route(
        &self,
        endpoint: Option<&str>,
        database: Option<&str>,
    ) -> Result<Route, RouteError>;

    /// Every backend a CancelRequest may belong to. A CancelRequest carries only a backend pid
    /// and secret, not an endpoint, so the proxy forwards it to each of them; a backend ignores
    /// a key it did not issue.
    async fn cancel_targets(&self) -> Vec<SocketAddr>;
}

/// Accepts PostgreSQL clients on `listener` until `shutdown` is cancelled, then closes every
/// connection still open and returns.
pub async fn serve_proxy(
    listener: TcpListener,
    router: Arc<dyn Router>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut connections = JoinSet::new();
    tracing::info!(addr = %listener.local_addr()?, "proxy accepting PostgreSQL connections");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (client, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let router = Arc::clone(&router);
                let span = tracing::debug_span!("proxy", client = %peer);
                connections.spawn(
                    async move {
                        match handle_client(client, router.as_ref()).await {
                            Ok(()) => tracing::debug!("connection closed"),
                            Err(e @ ProxyError::Connect { .. }) => tracing::warn!(error = %e),
                            Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
                        }
                    }
                    .instrument(span),
                );
            }
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        tracing::warn!(error = %e, "proxy connection task panicked");
                    }
                }
            }
        }
    }
    connections.shutdown().await;
    tracing::info!("proxy stopped");
    Ok(())
}

/// Why one client connection ended early. Logged where the connection task ends; whatever the
/// client should see has been sent to it by then.
#[derive(Debug, thiserror::Error)]
enum ProxyError {
    #[error("startup: {0}")]
    Startup(#[from] StartupError),
    #[error("no startup message within {STARTUP_TIMEOUT:?}")]
    StartupTimeout,
    #[error("could not route endpoint {endpoint:?}: {source}")]
    Route {
        endpoint: Option<String>,
        source: RouteError,
    },
    #[error("could not connect to backend {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("spliced connection: {0}")]
    Splice(#[source] io::Error),
}

/// What went wrong reading a client's first packets.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error("client i/o: {0}")]
    Io(#[from] io::Error),
    #[error("startup packet length {0} is outside 8..={MAX_STARTUP_PACKET_LEN}")]
    BadLength(usize),
    #[error("unsupported frontend protocol or request code {0}")]
    UnknownCode(u32),
    #[error("malformed startup packet: {0}")]
    Malformed(&'static str),
    #[error("more than {MAX_ENCRYPTION_REQUESTS} encryption requests")]
    TooManyEncryptionRequests,
}

impl StartupError {
    /// Whether the client spoke, but not PostgreSQL: then it is told why before we close. An i/o
    /// error means the client is gone and there is nobody to tell.
    fn is_protocol_violation(&self) -> bool {
        !matches!(self, StartupError::Io(_))
    }
}

/// Runs one client connection from its first byte to its close.
async fn handle_client(mut client: TcpStream, router: &dyn Router) -> Result<(), ProxyError> {
    let _ = client.set_nodelay(true);
    let request = match tokio::time::timeout(STARTUP_TIMEOUT, read_startup(&mut client)).await {
        Ok(Ok(request)) => request,
        Ok(Err(e)) => {
            if e.is_protocol_violation() {
                send_fatal(&mut client, "08P01", &e.to_string()).await;
            }
            return Err(e.into());
        }
        Err(_elapsed) => return Err(ProxyError::StartupTimeout),
    };
    let (mut startup, unread) = match request {
        StartupRequest::Startup { message, len } => (message, len),
        StartupRequest::Cancel(packet) => {
            forward_cancel(&packet, &router.cancel_targets().await).await;
            return Ok(());
        }
    };

    let endpoint = startup.take_endpoint();
    // Held until the connection ends.
    let route = match router
        .route(endpoint.as_deref(), startup.get("database"))
        .await
    {
        Ok(route) => route,
        Err(e) => {
            send_fatal(&mut client, e.sqlstate, &e.message).await;
            return Err(ProxyError::Route {
                endpoint,
                source: e,
            });
        }
    };
    let Route {
        addr,
        guard,
        handoff,
    } = route;
    let guard = match handoff {
        Some(handoff) => match handoff.send((client, guard)).await {
            Ok(()) => {
                tracing::debug!(endpoint = endpoint.as_deref(), "handed to the compute");
                return Ok(());
            }
            // The compute stopped meanwhile: try its address as any other backend's.
            Err(mpsc::error::SendError((returned, guard))) => {
                client = returned;
                guard
            }
        },
        None => guard,
    };
    // The StartupMessage was only peeked at: it goes to the backend as re-encoded below.
    client
        .read_exact(&mut vec![0u8; unread])
        .await
        .map_err(ProxyError::Splice)?;
    let mut backend = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(backend)) => backend,
        Ok(Err(source)) => {
            let message = format!("could not connect to the compute at {addr}: {source}");
            send_fatal(&mut client, "08006", &message).await;
            return Err(ProxyError::Connect { addr, source });
        }
        Err(_elapsed) => {
            let message =
                format!("the compute at {addr} did not answer within {CONNECT_TIMEOUT:?}");
            send_fatal(&mut client, "08006", &message).await;
            let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            return Err(ProxyError::Connect { addr, source });
        }
    };
    let _ = backend.set_nodelay(true);
    tracing::debug!(endpoint = endpoint.as_deref(), backend = %addr, "routed");

    backend
        .write_all(&startup.encode())
        .await
        .map_err(ProxyError::Splice)?;
    let (to_backend, to_client) = tokio::io::copy_bidirectional(&mut client, &mut backend)
        .await
        .map_err(ProxyError::Splice)?;
    tracing::debug!(to_backend, to_client, "session ended");
    drop(guard);
    Ok(())
}

/// What a client asked for once encryption negotiation is over.
#[derive(Debug, PartialEq, Eq)]
enum StartupRequest {
    /// The StartupMessage, still unread on the socket (`len` bytes).
    Startup { message: StartupMessage, len: usize },
    /// The whole CancelRequest packet, forwarded byte for byte (protocol 3.2 made the key
    /// variable-length, so it is not parsed).
    Cancel(Vec<u8>),
}

/// Reads packets until the client starts a session or asks for a cancel, refusing encryption
/// on the way: the proxy sees plaintext or nothing, and libpq's default `sslmode=prefer` then
/// carries on unencrypted on the same connection. The StartupMessage is only peeked at, so
/// that a backend in this process can be handed the socket with it unread.
async fn read_startup(client: &mut TcpStream) -> Result<StartupRequest, StartupError> {
    for _ in 0..=MAX_ENCRYPTION_REQUESTS {
        let header = peek_exact(client, 8).await?;
        let len = u32::from_be_bytes(header[..4].try_into().expect("eight bytes")) as usize;
        let code = u32::from_be_bytes(header[4..].try_into().expect("eight bytes"));
        match code {
            SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
                read_packet(client).await?;
                client.write_all(b"N").await?
            }
            CANCEL_REQUEST_CODE => {
                let packet = read_packet(client).await?;
                if packet.len() < 16 {
                    return Err(StartupError::Malformed(
                        "CancelRequest shorter than 16 bytes",
                    ));
                }
                return Ok(StartupRequest::Cancel(packet));
            }
            version if version >> 16 == PROTOCOL_MAJOR => {
                if !(8..=MAX_STARTUP_PACKET_LEN).contains(&len) {
                    return Err(StartupError::BadLength(len));
                }
                let packet = peek_exact(client, len).await?;
                let message = StartupMessage::parse(version, &packet[8..])?;
                return Ok(StartupRequest::Startup { message, len });
            }
            other => return Err(StartupError::UnknownCode(other)),
        }
    }
    Err(StartupError::TooManyEncryptionRequests)
}

/// The next `len` bytes the client sent, left unread.
async fn peek_exact(client: &TcpStream, len: usize) -> Result<Vec<u8>, StartupError> {
    let mut buf = vec![0u8; len];
    loop {
        let n = client.peek(&mut buf).await?;
        if n == len {
            return Ok(buf);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        // The rest of a packet that arrived in pieces is on its way.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads one untyped startup-phase packet (int32 length including itself, int32 code, body) and
/// returns it whole, header included, so a CancelRequest can be forwarded as it came.
async fn read_packet<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, StartupError> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await?;
    let len = u32::from_be_bytes(header) as usize;
    if !(8..=MAX_STARTUP_PACKET_LEN).contains(&len) {
        return Err(StartupError::BadLength(len));
    }
    let mut packet = vec![0u8; len];
    packet[..4].copy_from_slice(&header);
    reader.read_exact(&mut packet[4..]).await?;
    Ok(packet)
}

/// A StartupMessage: the protocol version and the parameters, in the client's order (the
/// backend sees them as the client sent them, less the endpoint switch).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StartupMessage {
    version: u32,
    params: Vec<(String, String)>,
}

impl StartupMessage {
    /// Parses the body after the version: NUL-terminated name and value pairs, ending with an
    /// empty name.
    fn parse(version: u32, body: &[u8]) -> Result<Self, StartupError> {
        let mut params = Vec::new();
        let mut rest = body;
        loop {
            let (name, after) = split_cstr(rest)?;
            if name.is_empty() {
                if !after.is_empty() {
                    return Err(StartupError::Malformed("bytes after the final NUL"));
                }
                break;
            }
            let (value, after) = split_cstr(after)?;
            params.push((name.to_owned(), value.to_owned()));
            rest = after;
        }
        Ok(Self { version, params })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Removes the endpoint switch from `options` and returns the endpoint it named. The switch
    /// must not reach the backend: PostgreSQL rejects a command-line argument it does not know.
    fn take_endpoint(&mut self) -> Option<String> {
        let index = self.params.iter().position(|(n, _)| n == "options")?;
        let (endpoint, remaining) = remove_endpoint_switch(&self.params[index].1);
        match remaining {
            Some(options) => self.params[index].1 = options,
            None => {
                self.params.remove(index);
            }
        }
        endpoint
    }

    /// The StartupMessage packet as the backend should receive it.
    fn encode(&self) -> Vec<u8> {
        let mut packet = vec![0u8; 4];
        packet.extend_from_slice(&self.version.to_be_bytes());
        for (name, value) in &self.params {
            for s in [name, value] {
                packet.extend_from_slice(s.as_bytes());
                packet.push(0);
            }
        }
        packet.push(0);
        let len = u32::try_from(packet.len()).expect("bounded by the parsed packet's length");
        packet[..4].copy_from_slice(&len.to_be_bytes());
        packet
    }
}

/// Splits a NUL-terminated UTF-8 string off the front of `bytes`.
fn split_cstr(bytes: &[u8]) -> Result<(&str, &[u8]), StartupError> {
    let nul = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(StartupError::Malformed("string without its NUL terminator"))?;
    let s = std::str::from_utf8(&bytes[..nul])
        .map_err(|_| StartupError::Malformed("parameter is not UTF-8"))?;
    Ok((s, &bytes[nul + 1..]))
}

/// Splits `options` into switches the way PostgreSQL does (`pg_split_opts`): on unescaped
/// whitespace, where a backslash escapes the next character. Returns the raw tokens, escapes
/// kept, so the switches the proxy does not touch are forwarded exactly as written.
fn split_options(options: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = None;
    let mut escaped = false;
    for (i, c) in options.char_indices() {
        if c.is_ascii_whitespace() && !escaped {
            if let Some(s) = start.take() {
                tokens.push(&options[s..i]);
            }
            continue;
        }
        start.get_or_insert(i);
        escaped = !escaped && c == '\\';
    }
    if let Some(s) = start {
        tokens.push(&options[s..]);
    }
    tokens
}

/// A token with PostgreSQL's backslash escapes resolved.
fn unescape(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut escaped = false;
    for c in token.chars() {
        if !escaped && c == '\\' {
            escaped = true;
        } else {
            escaped = false;
            out.push(c);
        }
    }
    out
}

/// Finds the endpoint switch in `options` (`endpoint=NAME`, `--endpoint=NAME`, `-c endpoint=NAME`
/// or `-cendpoint=NAME`; the last one wins, as for `-c`) and returns the endpoint and the
/// options without it (None when nothing is left).
fn remove_endpoint_switch(options: &str) -> (Option<String>, Option<String>) {
    let tokens = split_options(options);
    let mut endpoint = None;
    let mut kept = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = unescape(tokens[i]);
        let next = tokens.get(i + 1).map(|t| unescape(t));
        let (setting, consumed) = match (token.as_str(), &next) {
            ("-c", Some(next)) => (next.as_str(), 2),
            (t, _) => (
                t.strip_prefix("--").or(t.strip_prefix("-c")).unwrap_or(t),
                1,
            ),
        };
        match setting.strip_prefix("endpoint=") {
            Some(name) => {
                endpoint = Some(name.to_owned());
                i += consumed;
            }
            None => {
                kept.push(tokens[i]);
                i += 1;
            }
        }
    }
    let remaining = (!kept.is_empty()).then(|| kept.join(" "));
    (endpoint, remaining)
}

/// A FATAL ErrorResponse: what a PostgreSQL server sends before closing a connection it refuses.
/// `V` (the untranslated severity) is there because libpq and most drivers prefer it to `S`.
fn error_response(sqlstate: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = u32::try_from(body.len() + 4).expect("error messages are small");
    let mut packet = Vec::with_capacity(body.len() + 5);
    packet.push(b'E');
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&body);
    packet
}

/// Tells the client why its connection is refused, best effort: it may be gone already.
async fn send_fatal(client: &mut TcpStream, sqlstate: &str, message: &str) {
    if let Err(e) = client.write_all(&error_response(sqlstate, message)).await {
        tracing::debug!(error = %e, "could not send the error to the client");
    }
    let _ = client.shutdown().await;
}

/// Sends a CancelRequest to every target at once. The client expects no answer, and a target
/// that is down has no query to cancel, so failures are only logged.
async fn forward_cancel(packet: &[u8], targets: &[SocketAddr]) {
    let sends = targets.iter().map(|&addr| async move {
        let send = async {
            let mut backend = TcpStream::connect(addr).await?;
            backend.write_all(packet).await?;
            backend.shutdown().await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, send).await {
            Ok(Ok(())) => tracing::debug!(backend = %addr, "forwarded cancel request"),
            Ok(Err(e)) => tracing::debug!(backend = %addr, error = %e, "cancel request not sent"),
            Err(_) => tracing::debug!(backend = %addr, "cancel request timed out"),
        }
    });
    futures::future::join_all(sends).await;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use tokio_postgres::config::Host;
    use tokio_postgres::error::SqlState;
    use tokio_postgres::{Client, Config, NoTls};

    use super::*;

    /// The real PostgreSQL the tests route to, if the environment has one.
    async fn test_postgres() -> Option<(Config, SocketAddr)> {
        let url = std::env::var("STRATA_TEST_POSTGRES_URL").ok()?;
        let config: Config = url
            .parse()
            .expect("STRATA_TEST_POSTGRES_URL is a postgres URL");
        let host = match &config.get_hosts()[0] {
            Host::Tcp(host) => host.clone(),
            _ => panic!("STRATA_TEST_POSTGRES_URL must name a TCP host"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .expect("resolve the test PostgreSQL")
            .next()
            .expect("the test PostgreSQL has an address");
        Some((config, addr))
    }

    /// Maps endpoint names to fixed addresses and remembers what it was asked.
    #[derive(Default)]
    struct TestRouter {
        endpoints: HashMap<String, SocketAddr>,
        default: Option<SocketAddr>,
        asked: Mutex<Vec<(Option<String>, Option<String>)>>,
    }

    impl TestRouter {
        fn to_postgres(addr: SocketAddr) -> Self {
            Self {
                endpoints: HashMap::from([("pg".to_owned(), addr)]),
                default: Some(addr),
                ..Self::default()
            }
        }
    }

    #[async_trait::async_trait]
    impl Router for TestRouter {
        async fn route(
            &self,
            endpoint: Option<&str>,
            database: Option<&str>,
        ) -> Result<Route, RouteError> {
            self.asked
                .lock()
                .unwrap()
                .push((endpoint.map(str::to_owned), database.map(str::to_owned)));
            let addr = match endpoint {
                Some(name) => self.endpoints.get(name).copied(),
                None => self.default,
            };
            addr.map(Route::from).ok_or_else(|| {
                RouteError::new("3D000", format!("endpoint {endpoint:?} does not exist"))
            })
        }

        async fn cancel_targets(&self) -> Vec<SocketAddr> {
            self.endpoints.values().copied().collect()
        }
    }

    /// A proxy on a free port; cancelling the token stops it.
    struct TestProxy {
        addr: SocketAddr,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl TestProxy {
        async fn start(router: Arc<dyn Router>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(serve_proxy(listener, router, shutdown.clone()));
            Self {
                addr,
                shutdown,
                task,
            }
        }

        /// A client config pointing at the proxy, with the test PostgreSQL's credentials.
        fn client_config(&self, postgres: Option<&Config>) -> Config {
            let mut config = Config::new();
            config
                .host(self.addr.ip().to_string())
                .port(self.addr.port())
                .connect_timeout(Duration::from_secs(10));
            match postgres {
                Some(pg) => {
                    config.user(pg.get_user().unwrap_or("postgres"));
                    if let Some(db) = pg.get_dbname() {
                        config.dbname(db);
                    }
                    if let Some(password) = pg.get_password() {
                        config.password(password);
                    }
                }
                None => {
                    config.user("postgres");
                }
            }
            config
        }

        async fn stop(self) {
            self.shutdown.cancel();
            self.task.await.unwrap().unwrap();
        }
    }

    async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    #[tokio::test]
    async fn endpoint_switch_routes_and_is_removed_other_options_reach_postgres() {
        let Some((pg, pg_addr)) = test_postgres().await else {
            return;
        };
        let router = Arc::new(TestRouter::to_postgres(pg_addr));
        let proxy = TestProxy::start(router.clone()).await;

        let client = connect(
            proxy
                .client_config(Some(&pg))
                .options("endpoint=pg -c application_name=via_proxy"),
        )
        .await
        .expect("connect through the proxy");
        let row = client
            .query_one("SHOW application_name", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "via_proxy");

        // Only the endpoint switch, so the options parameter is dropped altogether.
        let client = connect(proxy.client_config(Some(&pg)).options("endpoint=pg"))
            .await
            .expect("connect through the proxy");
        let row = client.query_one("SELECT 40 + 2", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);

        // No endpoint: the router's default.
        let client = connect(&proxy.client_config(Some(&pg))).await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();

        let asked = router.asked.lock().unwrap().clone();
        let endpoints: Vec<_> = asked.iter().map(|(e, _)| e.as_deref()).collect();
        assert_eq!(endpoints, [Some("pg"), Some("pg"), None]);
        // tokio-postgres sends `database` only when the config names one.
        let database = pg.get_dbname().map(str::to_owned);
        assert!(asked.iter().all(|(_, db)| *db == database));
        proxy.stop().await;
    }

    /// Routes every connection to a backend "in this process", which takes the sockets.
    struct HandoffRouter(mpsc::Sender<HandedConnection>);

    #[async_trait::async_trait]
    impl Router for HandoffRouter {
        async fn route(&self, _: Option<&str>, _: Option<&str>) -> Result<Route, RouteError> {
            let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
            Ok(Route {
                addr: unused,
                guard: Some(Box::new("guard")),
                handoff: Some(self.0.clone()),
            })
        }

        async fn cancel_targets(&self) -> Vec<SocketAddr> {
            Vec::new()
        }
    }

    #[tokio::test]
    async fn a_backend_in_process_is_handed_the_socket_with_the_startup_message_unread() {
        let (tx, mut rx) = mpsc::channel(1);
        let proxy = TestProxy::start(Arc::new(HandoffRouter(tx))).await;
        let config = proxy
            .client_config(None)
            .options("endpoint=local -c application_name=direct")
            .clone();
        let client = tokio::spawn(async move { connect(&config).await });

        let (mut socket, guard) = rx.recv().await.expect("the proxy hands the socket over");
        assert!(guard.is_some(), "the route's guard goes with the socket");
        // The backend reads the StartupMessage itself, as the client sent it.
        let packet = read_packet(&mut socket).await.unwrap();
        let version = u32::from_be_bytes(packet[4..8].try_into().unwrap());
        let startup = StartupMessage::parse(version, &packet[8..]).unwrap();
        assert_eq!(startup.get("user"), Some("postgres"));
        assert_eq!(
            startup.get("options"),
            Some("endpoint=local -c application_name=direct")
        );
        // What the backend writes reaches the client directly.
        socket
            .write_all(&error_response("57P03", "handed over"))
            .await
            .unwrap();
        let error = client.await.unwrap().expect_err("the backend refused");
        let db_error = error.as_db_error().expect("a server error");
        assert_eq!(db_error.code(), &SqlState::CANNOT_CONNECT_NOW);
        assert_eq!(db_error.message(), "handed over");
        proxy.stop().await;
    }

    #[tokio::test]
    async fn unknown_endpoint_is_refused_with_3d000() {
        // No PostgreSQL needed: the proxy refuses before it connects anywhere.
        let proxy = TestProxy::start(Arc::new(TestRouter::default())).await;
        let error = connect(proxy.client_config(None).options("--endpoint=nosuch"))
            .await
            .expect_err("an unknown endpoint must be refused");
        let db_error = error.as_db_error().expect("a server error");
        assert_eq!(db_error.code(), &SqlState::INVALID_CATALOG_NAME);
        assert!(db_error.message().contains("nosuch"), "{db_error}");
        proxy.stop().await;
    }

    #[tokio::test]
    async fn unreachable_backend_is_reported_as_08006() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = listener.local_addr().unwrap();
        drop(listener);
        let router = TestRouter {
            endpoints: HashMap::from([("down".to_owned(), dead)]),
            ..TestRouter::default()
        };
        let proxy = TestProxy::start(Arc::new(router)).await;
        let error = connect(proxy.client_config(None).options("-c endpoint=down"))
            .await
            .expect_err("a dead backend must be reported");
        let db_error = error.as_db_error().expect("a server error");
        assert_eq!(db_error.code(), &SqlState::CONNECTION_FAILURE);
        assert!(db_error.message().contains(&dead.to_string()), "{db_error}");
        proxy.stop().await;
    }

    #[tokio::test]
    async fn encryption_requests_are_refused_and_the_session_continues_in_plaintext() {
        let Some((pg, pg_addr)) = test_postgres().await else {
            return;
        };
        let proxy = TestProxy::start(Arc::new(TestRouter::to_postgres(pg_addr))).await;
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        for code in [GSSENC_REQUEST_CODE, SSL_REQUEST_CODE] {
            let mut request = 8u32.to_be_bytes().to_vec();
            request.extend_from_slice(&code.to_be_bytes());
            stream.write_all(&request).await.unwrap();
            assert_eq!(stream.read_u8().await.unwrap(), b'N');
        }
        // The same connection then starts an ordinary session.
        let (client, connection) = proxy
            .client_config(Some(&pg))
            .options("endpoint=pg")
            .connect_raw(stream, NoTls)
            .await
            .expect("a session after the refusals");
        tokio::spawn(connection);
        let row = client.query_one("SELECT 'plain'::text", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "plain");
        proxy.stop().await;
    }

    #[tokio::test]
    async fn garbage_first_packet_gets_a_protocol_error() {
        let proxy = TestProxy::start(Arc::new(TestRouter::default())).await;
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply.first(), Some(&b'E'));
        assert!(reply.windows(6).any(|w| w == b"C08P01"), "{reply:?}");
        proxy.stop().await;
    }

    #[tokio::test]
    async fn cancel_request_is_forwarded_to_the_backend() {
        let Some((pg, pg_addr)) = test_postgres().await else {
            return;
        };
        let proxy = TestProxy::start(Arc::new(TestRouter::to_postgres(pg_addr))).await;
        let client = connect(proxy.client_config(Some(&pg)).options("endpoint=pg"))
            .await
            .unwrap();
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let direct = connect(&pg).await.expect("connect to PostgreSQL directly");

        let started = tokio::time::Instant::now();
        let query = client.simple_query("SELECT pg_sleep(30)");
        let cancel = async {
            // Cancel only once the sleep is running, or the cancel would hit nothing.
            loop {
                let sleeping: bool = direct
                    .query_one(
                        "SELECT count(*) > 0 FROM pg_stat_activity \
                         WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
                        &[&pid],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if sleeping {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The token carries the address the client connected to: the proxy's.
            client.cancel_token().cancel_query(NoTls).await
        };
        let (result, cancelled) = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(query, cancel)
        })
        .await
        .expect("the cancelled query must end well before pg_sleep(30) would");
        cancelled.expect("send the cancel request to the proxy");
        let error = result.expect_err("the cancelled query fails");
        assert_eq!(
            error.as_db_error().map(|e| e.code()),
            Some(&SqlState::QUERY_CANCELED)
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        // The session survives a cancel.
        client.simple_query("SELECT 1").await.unwrap();
        proxy.stop().await;
    }

    #[test]
    fn endpoint_switch_forms_are_recognised_and_removed() {
        let cases = [
            ("endpoint=a", Some("a"), None),
            ("--endpoint=a", Some("a"), None),
            ("-c endpoint=a", Some("a"), None),
            ("-cendpoint=a", Some("a"), None),
            (
                "-c search_path=x endpoint=a -c work_mem=4MB",
                Some("a"),
                Some("-c search_path=x -c work_mem=4MB"),
            ),
            ("  endpoint=a\t", Some("a"), None),
            ("endpoint=a endpoint=b", Some("b"), None),
            ("-c geqo=off", None, Some("-c geqo=off")),
            // An escaped space belongs to the switch, and the escapes of other switches are
            // forwarded untouched.
            (
                r"-c application_name=a\ b endpoint=c\ d",
                Some("c d"),
                Some(r"-c application_name=a\ b"),
            ),
            ("-c", None, Some("-c")),
        ];
        for (options, endpoint, remaining) in cases {
            let (got_endpoint, got_remaining) = remove_endpoint_switch(options);
            assert_eq!(got_endpoint.as_deref(), endpoint, "{options:?}");
            assert_eq!(got_remaining.as_deref(), remaining, "{options:?}");
        }
    }

    #[test]
    fn startup_message_round_trips_without_the_endpoint() {
        let mut body = Vec::new();
        for s in ["user", "u", "options", "endpoint=e", "database", "d"] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut message = StartupMessage::parse(196608, &body).unwrap();
        assert_eq!(message.take_endpoint().as_deref(), Some("e"));
        assert_eq!(message.get("database"), Some("d"));
        let packet = message.encode();
        let expected_body = b"user\0u\0database\0d\0\0";
        assert_eq!(&packet[8..], expected_body);
        assert_eq!(&packet[4..8], &196608u32.to_be_bytes());
        assert_eq!(
            packet.len(),
            u32::from_be_bytes(packet[..4].try_into().unwrap()) as usize
        );

        assert!(StartupMessage::parse(196608, b"user\0u\0").is_err());
        assert!(StartupMessage::parse(196608, b"user\0u\0\0x").is_err());
    }
}
