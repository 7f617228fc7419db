//! The client: a pool of connections keyed by `host:port` (the engine's): a live connection
//! is reused, concurrent connects to one key share one handshake, dead connections are
//! dropped and re-dialed, idle ones are closed after `idle_timeout_ms`, and
//! `max_connections` holds.

use std::sync::Arc;

use quicwire_core::{ConnectionStats, Error, ErrorCode, PoolKey, PoolStats, Result};
pub use quicwire_engine::ClientConfig;
use quicwire_engine::{ConnId, Engine};
use tokio::sync::oneshot;

use crate::connection::{Connection, Handler};
use crate::endpoint::{now, ConnState, Endpoint, State};
use crate::memory::MemoryNetwork;
use crate::socket::Network;
use crate::tunnel::Transport;

/// Where a `connect` stands: the connection is open, or its handshake is awaited.
enum Dial {
    Open(Arc<ConnState>),
    Waiting(oneshot::Receiver<Result<Arc<ConnState>>>),
}

/// A pooled QUIC client. Cheap to clone; it closes when the last clone and the last of its
/// connections are gone, or with [`Client::close`].
#[derive(Clone)]
pub struct Client(Arc<Endpoint>);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Validates `config` and starts the client's driver. Must be called inside a tokio
    /// runtime.
    pub fn new(config: ClientConfig, handler: Arc<dyn Handler>) -> Result<Client> {
        Self::start(config, handler, Network::Udp)
    }

    /// A client that reaches servers over `transport`: UDP, TCP (to a server that
    /// listens there too, for networks that block UDP), or UDP with TCP racing it after a
    /// delay. Must be called inside a tokio runtime.
    pub fn with_transport(
        config: ClientConfig,
        handler: Arc<dyn Handler>,
        transport: Transport,
    ) -> Result<Client> {
        let client = Self::start(config, handler, Network::Udp)?;
        client.0.shared.update(|st, _| st.transport = transport);
        Ok(client)
    }

    /// A client on a [`MemoryNetwork`] instead of UDP (tests). Must be called inside a
    /// tokio runtime.
    pub fn in_memory(
        network: &MemoryNetwork,
        config: ClientConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<Client> {
        Self::start(config, handler, Network::Memory(network.clone()))
    }

    fn start(
        mut config: ClientConfig,
        handler: Arc<dyn Handler>,
        network: Network,
    ) -> Result<Client> {
        if config.tls.ca.is_none() && !config.tls.insecure {
            config.system_roots = crate::tls::system_roots();
        }
        if config.tls.insecure {
            crate::tls::warn_insecure();
        }
        let engine = Engine::client(&config, now())?;
        Ok(Client(Endpoint::start(engine, network, None, handler)))
    }

    /// The pooled connection to `host:port`, dialing it if needed.
    pub async fn connect(&self, host: &str, port: u16) -> Result<Connection> {
        self.connect_key(&PoolKey::new(host, port.into())?).await
    }

    pub async fn connect_key(&self, key: &PoolKey) -> Result<Connection> {
        let shared = &self.0.shared;
        // A pooled connection needs no name lookup, and the driver no wake-up.
        let pooled = shared.update(|st, now| {
            let id = st.engine.checkout(now, key)?;
            Some(Self::open_or_wait(st, id))
        });
        let waiting = match pooled {
            Some(w) => w,
            None => {
                // Over TCP alone, the tunnel resolves the name itself.
                let udp = if shared.read(|st| st.transport) == Transport::Tcp {
                    None
                } else {
                    let addr = tokio::net::lookup_host((key.host(), key.port()))
                        .await
                        .map_err(|e| {
                            Error::new(ErrorCode::Io, format!("cannot resolve {key}: {e}"))
                        })?
                        .next()
                        .ok_or_else(|| {
                            Error::new(ErrorCode::Io, format!("{key} resolves to no address"))
                        })?;
                    shared.socket_for(addr)?;
                    Some(addr)
                };
                shared.dial(key, udp, Self::open_or_wait)?
            }
        };
        let state = match waiting {
            Dial::Open(open) => open,
            Dial::Waiting(rx) => rx.await.unwrap_or_else(|_| {
                Err(Error::closed(format!(
                    "the client closed while dialing {key}"
                )))
            })?,
        };
        Ok(Connection::new(state, self.0.clone()))
    }

    /// The connection `id` when it is open, or a wait for its handshake.
    fn open_or_wait(st: &mut State, id: ConnId) -> Dial {
        if let Some(open) = st.conns.get(&id) {
            return Dial::Open(open.clone());
        }
        let (tx, rx) = oneshot::channel();
        st.dialing.entry(id).or_default().push(tx);
        Dial::Waiting(rx)
    }

    /// Moves this client's connections to new local sockets (new ports), as after a
    /// network change: QUIC migrates them, and nothing sent is lost.
    pub fn rebind(&self) -> Result<()> {
        self.0.shared.rebind()
    }

    /// Closes `conn` and drops it from the pool.
    pub fn disconnect(&self, conn: &Connection) {
        conn.close();
    }

    pub fn stats(&self) -> PoolStats {
        let stats = self.0.shared.read(|st| st.engine.stats());
        let mut pool = PoolStats {
            created: stats.pool.created,
            reused: stats.pool.reused,
            evicted: stats.pool.evicted,
            failed: stats.pool.failed,
            ..Default::default()
        };
        let mut totals = ConnectionStats::default();
        for c in stats.connections {
            if c.idle {
                pool.idle += 1;
            } else {
                pool.active += 1;
            }
            totals.accumulate(&c.stats);
            pool.connections.push(c.stats);
        }
        pool.totals = totals;
        pool.connections.sort_by(|a, b| a.peer.cmp(&b.peer));
        pool
    }

    /// Closes every connection and the sockets. Later calls fail with ERR_CONNECTION_CLOSED.
    pub async fn close(&self) {
        self.0.shared.close("client closed").await;
    }
}
