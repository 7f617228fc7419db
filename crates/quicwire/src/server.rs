//! The server: accepts QUIC connections, exchanges HELLOs, hands traffic to the handler,
//! and closes gracefully (GOAWAY, then drain in-flight requests up to a deadline).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use quicwire_core::frame;
use quicwire_core::quic::{is_loopback, transport_config};
use quicwire_core::{
    app_code, Admission, ConnectionStats, Decision, Encoding, Error, ErrorCode, Result,
    ServerLimits, TransportConfig,
};

use crate::connection::{Connection, Handler, IncomingRequest, Receipt, SessionParams};
use crate::tls::{self, ServerTls};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub transport: TransportConfig,
    pub tls: ServerTls,
    /// Encodings the server accepts (default: all).
    pub encodings: Vec<Encoding>,
    /// Connection caps and address validation.
    pub limits: ServerLimits,
}

impl ServerConfig {
    pub fn new(tls: ServerTls) -> Self {
        ServerConfig {
            transport: TransportConfig::default(),
            tls,
            encodings: Encoding::ALL.to_vec(),
            limits: ServerLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Handshakes that failed (TLS, negotiation).
    pub rejected: u64,
    /// Connections refused at a connection limit.
    pub refused: u64,
    /// Clients asked to validate their address with a retry token.
    pub retried: u64,
    /// Sum over open connections.
    pub totals: ConnectionStats,
}

/// A listening quicwire server. Cheap to clone.
#[derive(Clone)]
pub struct Server(Arc<Shared>);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.0.local_addr)
            .finish()
    }
}

struct Shared {
    endpoint: quinn::Endpoint,
    /// The endpoint's config with loopback's transport settings, for connections from this
    /// host.
    loopback_config: Arc<quinn::ServerConfig>,
    local_addr: SocketAddr,
    connections: Mutex<HashMap<u64, Connection>>,
    accepted: AtomicU64,
    rejected: AtomicU64,
    admission: Mutex<Admission>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tracks the server's open connections in front of the user's handler.
struct Registry {
    shared: std::sync::Weak<Shared>,
    user: Arc<dyn Handler>,
}

impl Handler for Registry {
    fn on_connection(&self, conn: &Connection) {
        if let Some(s) = self.shared.upgrade() {
            lock(&s.connections).insert(conn.id(), conn.clone());
        }
        self.user.on_connection(conn);
    }
    fn on_messages(&self, conn: &Connection, messages: Vec<bytes::Bytes>, receipt: Receipt) {
        self.user.on_messages(conn, messages, receipt);
    }
    fn on_request(&self, request: IncomingRequest) {
        self.user.on_request(request);
    }
    fn on_acked(&self, conn: &Connection, delivered: u64) {
        self.user.on_acked(conn, delivered);
    }
    fn on_closed(&self, conn: &Connection, reason: &Error) {
        if let Some(s) = self.shared.upgrade() {
            lock(&s.connections).remove(&conn.id());
        }
        self.user.on_closed(conn, reason);
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Self::local_addr`]) and starts
    /// accepting. Must be called inside a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        config: ServerConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<Server> {
        config.transport.validate()?;
        config.limits.validate()?;
        if config.encodings.is_empty() {
            return Err(Error::invalid_argument(
                "encodings must list at least one encoding",
            ));
        }
        let quinn_config = tls::quinn_server_config(&config.tls, &config.transport)?;
        let mut loopback_config = quinn_config.clone();
        loopback_config.transport_config(transport_config(&config.transport, true)?);
        let endpoint = crate::socket::endpoint(addr, Some(quinn_config))
            .map_err(|e| Error::new(ErrorCode::Io, format!("cannot listen on {addr}: {e}")))?;
        let local_addr = endpoint.local_addr().map_err(|e| {
            Error::new(ErrorCode::Io, format!("cannot read the bound address: {e}"))
        })?;
        let shared = Arc::new(Shared {
            endpoint,
            loopback_config: Arc::new(loopback_config),
            local_addr,
            connections: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            admission: Mutex::new(Admission::new(config.limits)),
        });
        let handler: Arc<dyn Handler> = Arc::new(Registry {
            shared: Arc::downgrade(&shared),
            user: handler,
        });
        let params = SessionParams {
            max_message_size: config.transport.max_message_size,
            encodings: config.encodings.clone(),
            request_timeout: Duration::from_millis(config.transport.request_timeout_ms),
            max_streams: config.transport.max_concurrent_streams,
        };
        tokio::spawn(accept_loop(shared.clone(), params, handler));
        Ok(Server(shared))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr
    }

    /// Connections open now.
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.0.connections).values().cloned().collect()
    }

    /// Sends `body` to every connected client; returns how many it was queued for.
    pub fn broadcast(&self, body: &[u8]) -> Result<usize> {
        let mut sent = 0;
        for conn in self.connections() {
            let mut out = BytesMut::new();
            frame::put_message(&mut out, body, conn.peer_max_message_size())?;
            if conn
                .enqueue_frames(out.freeze(), 1, body.len() as u64)
                .is_ok()
            {
                sent += 1;
            }
        }
        Ok(sent)
    }

    pub fn stats(&self) -> ServerStats {
        let (refused, retried) = {
            let admission = lock(&self.0.admission);
            (admission.refused(), admission.retried())
        };
        let mut stats = ServerStats {
            accepted: self.0.accepted.load(Ordering::Relaxed),
            rejected: self.0.rejected.load(Ordering::Relaxed),
            refused,
            retried,
            ..Default::default()
        };
        for conn in self.connections() {
            stats.connections += 1;
            stats.totals.accumulate(&conn.stats());
        }
        stats
    }

    /// Stops accepting and closes. Graceful: sends GOAWAY, waits until open requests are
    /// answered (at most `timeout`), then closes; otherwise closes at once.
    pub async fn close(&self, graceful: bool, timeout: Duration) {
        self.0.endpoint.set_server_config(None);
        if graceful {
            let conns = self.connections();
            for conn in &conns {
                conn.go_away();
            }
            let drained = async {
                for conn in &conns {
                    conn.quiet().await;
                }
            };
            let _ = tokio::time::timeout(timeout, drained).await;
        }
        for conn in self.connections() {
            conn.close(app_code::SHUTDOWN, "server closing");
        }
        self.0
            .endpoint
            .close(app_code::SHUTDOWN.into(), b"server closing");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.0.endpoint.wait_idle()).await;
    }
}

async fn accept_loop(shared: Arc<Shared>, params: SessionParams, handler: Arc<dyn Handler>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let ip = incoming.remote_address().ip();
        let decision = lock(&shared.admission).admit(ip, incoming.remote_address_validated());
        match decision {
            Decision::Retry => {
                // Fails only if this Initial already carried a token we could not use.
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
                continue;
            }
            Decision::Refuse => {
                incoming.refuse();
                continue;
            }
            Decision::Accept => {}
        }
        let shared = shared.clone();
        let params = params.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            serve_connection(&shared, incoming, params, handler).await;
            lock(&shared.admission).release(ip);
        });
    }
}

/// Handshakes one admitted connection and waits until it ends.
async fn serve_connection(
    shared: &Shared,
    incoming: quinn::Incoming,
    params: SessionParams,
    handler: Arc<dyn Handler>,
) {
    let peer = incoming.remote_address();
    let accepted = if is_loopback(peer.ip()) {
        incoming.accept_with(shared.loopback_config.clone())
    } else {
        incoming.accept()
    };
    let connecting = match accepted {
        Ok(c) => c,
        Err(e) => {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
    };
    // A server can always send 0.5-RTT data (quinn documents that this never fails for
    // incoming connections): our HELLO goes out with the TLS flight.
    let Ok((quic, handshake)) = connecting.into_0rtt() else {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match Connection::server_handshake(quic, handshake, params, handler).await {
        Ok(conn) => {
            shared.accepted.fetch_add(1, Ordering::Relaxed);
            conn.closed().await;
        }
        Err(e) => {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, error = %e, "handshake failed");
        }
    }
}
