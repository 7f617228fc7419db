//! The client: a pool of connections keyed by `host:port`. A live connection is reused,
//! concurrent connects to one key share one handshake, dead connections are dropped and
//! re-dialed, idle ones are closed after `idle_timeout_ms`, and `max_connections` holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use quicwire_core::{
    app_code, Encoding, Error, ErrorCode, PoolKey, PoolStats, PoolTable, Result, TransportConfig,
};
use tokio::sync::oneshot;

use crate::connection::{now_ms, Connection, Handler, SessionParams};
use crate::tls::{self, ClientTls};
use quicwire_core::quic::{is_loopback, transport_config};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub transport: TransportConfig,
    pub tls: ClientTls,
    /// Encodings to offer, preferred first (default: msgpack).
    pub encodings: Vec<Encoding>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            transport: TransportConfig::default(),
            tls: ClientTls::default(),
            encodings: vec![Encoding::Msgpack],
        }
    }
}

/// A pooled QUIC client. Cheap to clone.
#[derive(Clone)]
pub struct Client(Arc<Shared>);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

type Waiters = Vec<oneshot::Sender<Result<Connection>>>;

struct Shared {
    config: ClientConfig,
    quinn_config: quinn::ClientConfig,
    /// Transport settings for connections to this host (see `transport_config`).
    loopback_transport: Arc<quinn::TransportConfig>,
    handler: Arc<dyn Handler>,
    /// One endpoint per address family, bound on first use.
    endpoints: Mutex<[Option<quinn::Endpoint>; 2]>,
    state: Mutex<State>,
}

struct State {
    table: PoolTable<Connection>,
    dialing: HashMap<PoolKey, Waiters>,
    closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> Duration {
    Duration::from_millis(now_ms())
}

impl Client {
    /// Validates `config` and builds the TLS setup. Must be called inside a tokio runtime.
    pub fn new(config: ClientConfig, handler: Arc<dyn Handler>) -> Result<Client> {
        config.transport.validate()?;
        if config.encodings.is_empty() {
            return Err(Error::invalid_argument(
                "encodings must list at least one encoding",
            ));
        }
        let quinn_config = tls::quinn_client_config(&config.tls, &config.transport)?;
        let loopback_transport = transport_config(&config.transport, true)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                table: PoolTable::new(config.transport.max_connections),
                dialing: HashMap::new(),
                closed: false,
            }),
            config,
            quinn_config,
            loopback_transport,
            handler,
            endpoints: Mutex::new([None, None]),
        });
        tokio::spawn(sweep_idle(Arc::downgrade(&shared)));
        Ok(Client(shared))
    }

    /// The pooled connection to `host:port`, dialing it if needed.
    pub async fn connect(&self, host: &str, port: u16) -> Result<Connection> {
        self.connect_key(&PoolKey::new(host, port.into())?).await
    }

    pub async fn connect_key(&self, key: &PoolKey) -> Result<Connection> {
        let waiter = {
            let mut state = lock(&self.0.state);
            if state.closed {
                return Err(Error::closed("client is closed"));
            }
            let usable = |c: &Connection| !c.is_closed() && !c.is_going_away();
            if let Some(conn) = state.table.checkout(key, now(), usable) {
                return Ok(conn.clone());
            }
            let (tx, rx) = oneshot::channel();
            if let Some(waiters) = state.dialing.get_mut(key) {
                waiters.push(tx);
                state.table.note_joined_dial();
            } else {
                let evicted = state.table.begin_dial(key, Connection::is_idle)?;
                if let Some((_, conn)) = evicted {
                    conn.close(app_code::EVICTED, "evicted from the pool");
                }
                state.dialing.insert(key.clone(), vec![tx]);
                // The dial runs on its own task so a dropped caller cannot strand the waiters.
                tokio::spawn(dial_and_register(self.0.clone(), key.clone()));
            }
            rx
        };
        waiter.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorCode::Internal,
                "connect task ended without an answer",
            ))
        })
    }

    /// Closes `conn` and drops it from the pool.
    pub fn disconnect(&self, conn: &Connection) {
        let mut state = lock(&self.0.state);
        if let Ok(key) = PoolKey::parse(conn.peer()) {
            if state
                .table
                .iter()
                .any(|(k, c)| k == &key && c.id() == conn.id())
            {
                state.table.take(&key);
            }
        }
        drop(state);
        conn.close(app_code::NO_ERROR, "disconnect");
    }

    pub fn stats(&self) -> PoolStats {
        let state = lock(&self.0.state);
        let counters = state.table.counters();
        let mut stats = PoolStats {
            created: counters.created,
            reused: counters.reused,
            evicted: counters.evicted,
            failed: counters.failed,
            ..Default::default()
        };
        for (_, conn) in state.table.iter() {
            if conn.is_closed() {
                continue;
            }
            if conn.is_idle() {
                stats.idle += 1;
            } else {
                stats.active += 1;
            }
            let s = conn.stats();
            stats.totals.accumulate(&s);
            stats.connections.push(s);
        }
        stats.connections.sort_by(|a, b| a.peer.cmp(&b.peer));
        stats
    }

    /// Closes every connection and the endpoints. Later calls fail with ERR_CONNECTION_CLOSED.
    pub async fn close(&self) {
        let conns = {
            let mut state = lock(&self.0.state);
            state.closed = true;
            state.table.drain()
        };
        for (_, conn) in conns {
            conn.close(app_code::NO_ERROR, "client closed");
        }
        // Taken, not cloned: the UDP socket closes once the last handle is gone.
        let endpoints: Vec<quinn::Endpoint> = lock(&self.0.endpoints)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for endpoint in endpoints {
            endpoint.close(app_code::NO_ERROR.into(), b"client closed");
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        }
    }
}

impl Shared {
    fn endpoint_for(&self, addr: &SocketAddr) -> Result<quinn::Endpoint> {
        // A dial racing close() must not bind a socket that nothing would close.
        if lock(&self.state).closed {
            return Err(Error::closed("client is closed"));
        }
        let mut endpoints = lock(&self.endpoints);
        let slot = &mut endpoints[usize::from(addr.is_ipv6())];
        if let Some(e) = slot {
            return Ok(e.clone());
        }
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .map_err(|_| Error::new(ErrorCode::Internal, "bad bind address"))?;
        let endpoint = crate::socket::endpoint(bind, None).map_err(|e| {
            Error::new(
                ErrorCode::Io,
                format!("cannot bind a UDP socket on {bind}: {e}"),
            )
        })?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    async fn dial(&self, key: &PoolKey) -> Result<Connection> {
        let timeout = Duration::from_millis(self.config.transport.connect_timeout_ms);
        let attempt = async {
            let addr = tokio::net::lookup_host((key.host(), key.port()))
                .await
                .map_err(|e| Error::new(ErrorCode::Io, format!("cannot resolve {key}: {e}")))?
                .next()
                .ok_or_else(|| {
                    Error::new(ErrorCode::Io, format!("{key} resolves to no address"))
                })?;
            let endpoint = self.endpoint_for(&addr)?;
            let mut quinn_config = self.quinn_config.clone();
            if is_loopback(addr.ip()) {
                quinn_config.transport_config(self.loopback_transport.clone());
            }
            let connecting = endpoint
                .connect_with(quinn_config, addr, key.host())
                .map_err(|e| Error::invalid_argument(format!("cannot connect to {key}: {e}")))?;
            let peer = key.to_string();
            let quic = connecting
                .await
                .map_err(|e| crate::connection::connection_error(&e, &peer))?;
            let params = SessionParams {
                max_message_size: self.config.transport.max_message_size,
                encodings: self.config.encodings.clone(),
                request_timeout: Duration::from_millis(self.config.transport.request_timeout_ms),
                max_streams: self.config.transport.max_concurrent_streams,
            };
            Connection::client_handshake(quic, peer, params, self.handler.clone()).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorCode::ConnectTimeout,
                format!(
                    "no QUIC handshake with {key} within {} ms",
                    timeout.as_millis()
                ),
            )),
        }
    }
}

async fn dial_and_register(shared: Arc<Shared>, key: PoolKey) {
    let result = shared.dial(&key).await;
    let (waiters, stale) = {
        let mut state = lock(&shared.state);
        let waiters = state.dialing.remove(&key).unwrap_or_default();
        let conn = result.as_ref().ok().filter(|_| !state.closed).cloned();
        let stale = state.table.finish_dial(key, conn, now());
        (waiters, stale)
    };
    if let Some(old) = stale {
        old.close(app_code::NO_ERROR, "replaced");
    }
    for w in waiters {
        let _ = w.send(result.clone());
    }
}

/// Closes idle connections past the timeout and forgets dead ones, until the client is gone.
async fn sweep_idle(shared: Weak<Shared>) {
    let period = {
        let Some(s) = shared.upgrade() else { return };
        Duration::from_millis((s.config.transport.idle_timeout_ms / 4).clamp(10, 1000))
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(s) = shared.upgrade() else { return };
        let idle_timeout = Duration::from_millis(s.config.transport.idle_timeout_ms);
        let idle_ms = s.config.transport.idle_timeout_ms;
        let expired = {
            let mut state = lock(&s.state);
            if state.closed {
                return;
            }
            let dead: Vec<PoolKey> = state
                .table
                .iter()
                .filter(|(_, c)| c.is_closed())
                .map(|(k, _)| k.clone())
                .collect();
            for key in dead {
                state.table.take(&key);
            }
            let now_ms = now_ms();
            state.table.expire(now(), idle_timeout, |c| {
                c.is_idle() && now_ms.saturating_sub(c.last_active_ms()) >= idle_ms
            })
        };
        for (_, conn) in expired {
            conn.close(app_code::EVICTED, "idle timeout");
        }
    }
}
