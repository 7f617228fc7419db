//! The server: accepts QUIC connections (within its admission limits), hands their traffic
//! to the handler, and closes gracefully (GOAWAY, then drain in-flight requests up to a
//! deadline). All of it is the engine's; this binds the socket and drives it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quicwire_core::{ConnectionStats, Error, ErrorCode, Result};
use quicwire_engine::Engine;
pub use quicwire_engine::{ServerConfig, WebTransportConfig};

use crate::connection::{Connection, Handler, SendOptions};
use crate::endpoint::{now, Endpoint};
use crate::memory::MemoryNetwork;
use crate::socket::Network;

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

/// A listening quicwire server. Cheap to clone; it closes when the last clone and the last
/// of its connections are gone, or with [`Server::close`].
#[derive(Clone)]
pub struct Server {
    endpoint: Arc<Endpoint>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr)
            .finish()
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
        Self::start(addr, config, handler, Network::Udp)
    }

    /// [`Self::bind`] on a [`MemoryNetwork`] instead of UDP (tests).
    pub fn bind_in_memory(
        network: &MemoryNetwork,
        addr: SocketAddr,
        config: ServerConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<Server> {
        Self::start(addr, config, handler, Network::Memory(network.clone()))
    }

    fn start(
        addr: SocketAddr,
        config: ServerConfig,
        handler: Arc<dyn Handler>,
        network: Network,
    ) -> Result<Server> {
        let engine = Engine::server(&config, now())?;
        let io =
            |e: std::io::Error| Error::new(ErrorCode::Io, format!("cannot listen on {addr}: {e}"));
        let socket = network.bind(addr, false).map_err(io)?;
        let local_addr = socket.local_addr().map_err(io)?;
        let endpoint = Endpoint::start(engine, network, Some(socket), handler);
        Ok(Server {
            endpoint,
            local_addr,
        })
    }

    /// Also takes QUIC over TCP on the TCP port of the same number, from clients behind a
    /// UDP block (`Transport::Tcp`, `Transport::Auto`).
    pub async fn listen_tcp(&self) -> Result<()> {
        self.endpoint.shared.listen_tcp(self.local_addr).await
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections open now.
    pub fn connections(&self) -> Vec<Connection> {
        let conns = self
            .endpoint
            .shared
            .read(|st| st.conns.values().cloned().collect::<Vec<_>>());
        conns
            .into_iter()
            .filter(|c| c.closed.get().is_none())
            .map(|c| Connection::new(c, self.endpoint.clone()))
            .collect()
    }

    /// Sends `body` to every connected client; returns how many it was queued for.
    pub fn broadcast(&self, body: &[u8]) -> Result<usize> {
        let mut sent = 0;
        for conn in self.connections() {
            match conn.enqueue(&[body], SendOptions::default()) {
                Ok(_) => sent += 1,
                Err(e) if e.code == ErrorCode::MessageTooLarge => return Err(e),
                Err(_) => {} // Closed or full meanwhile: that one is skipped.
            }
        }
        Ok(sent)
    }

    pub fn stats(&self) -> ServerStats {
        let stats = self.endpoint.shared.read(|st| st.engine.stats());
        let mut totals = ConnectionStats::default();
        for c in &stats.connections {
            totals.accumulate(&c.stats);
        }
        ServerStats {
            connections: stats.connections.len() as u64,
            accepted: stats.accepted,
            rejected: stats.rejected,
            refused: stats.refused,
            retried: stats.retried,
            totals,
        }
    }

    /// Stops accepting and closes. Graceful: sends GOAWAY, waits until open requests are
    /// answered (at most `timeout`), then closes; otherwise closes at once.
    pub async fn close(&self, graceful: bool, timeout: Duration) {
        let shared = &self.endpoint.shared;
        if graceful {
            shared.call(|st, now| st.engine.go_away(now));
            let drained = shared.until(|st| st.engine.serving() == 0);
            let _ = tokio::time::timeout(timeout, drained).await;
        }
        shared.close("server closing").await;
    }
}
