//! quicwire's engine, sans IO: quinn-proto state machines and quicwire sessions for one
//! endpoint (a client or a server) and its connections.
//!
//! There are no sockets or clocks to wait on in here. A shell feeds it the datagrams it
//! received (`receive`), sends what `poll_transmits` hands out, and calls `on_timeout` once
//! `next_timeout` has passed; the application's messages come in through `write` and its
//! events go out through `take_events`. Two shells drive it: quicwire-wasm from JavaScript
//! (WebAssembly, the platform's datagrams and timers) and quicwire-node from libuv on
//! Node's own thread (a UDP socket and a timer of its loop). TLS, limits and error codes
//! come from quicwire-core.

mod ids;
mod session;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ids::CONNECTION_IDS;
pub use ids::{ConnId, MAX_ID};
use quicwire_core::batch::{self, event as kind};
use quicwire_core::quic::{self, connection_error, is_loopback, MAX_UDP_PAYLOAD};
use quicwire_core::tls::{self, ClientTls, ServerTls};
use quicwire_core::{
    app_code, Admission, ConnectionStats, Decision, Encoding, Error, ErrorCode, PoolKey, PoolTable,
    ServerLimits, TransportConfig,
};
use quinn_proto::{
    ClientConfig, Connection, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, Event,
    ServerConfig, StreamEvent, VarInt,
};
use session::{Outcome, Params, Session};
use web_time::Duration;
/// The clock type every entry point takes `now` in (std's, or the browser's in wasm).
pub use web_time::Instant;

fn invalid(message: String) -> Error {
    Error::invalid_argument(message)
}

/// Events (`quicwire_core::batch::event`), seven numbers each: kind, connection, b, c, d,
/// offset, length. A body is `data[offset..offset + length]`, or, where `offset` is
/// negative, `bodies[-offset - 1]`.
#[derive(Debug, Default)]
struct Events {
    words: Vec<f64>,
    data: Vec<u8>,
    bodies: Vec<Bytes>,
}

impl Events {
    /// Empties the batch, keeping its buffers.
    fn clear(&mut self) {
        self.words.clear();
        self.data.clear();
        self.bodies.clear();
    }
}

/// An op of a `write` that failed, by its index in the batch.
pub type WriteFailure = (u32, Error);

/// Failed ops as the shells hand them to JS: indices and `"<CODE>: <message>"` texts, or
/// nothing when none failed.
pub fn failure_texts(failed: Vec<WriteFailure>) -> Option<(Vec<u32>, Vec<String>)> {
    if failed.is_empty() {
        return None;
    }
    Some(
        failed
            .into_iter()
            .map(|(op, e)| (op, batch::error_text(&e)))
            .unzip(),
    )
}

/// Error codes indexed by the numbers events carry.
pub fn error_codes() -> Vec<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// Checks `host:port` with the pool's rules and returns its key (`host:port`).
pub fn pool_key(host: &str, port: f64) -> Result<String, Error> {
    PoolKey::new(host, port as i64).map(|k| k.to_string())
}

/// Transport options as the JS facade passes them: numbers, in this order (NaN: the default); ranges are core's to check:
/// maxMessageSize, maxConcurrentStreams, idleTimeoutMs, connectTimeoutMs,
/// requestTimeoutMs, maxConnections, keepAliveMs.
pub fn transport_options(limits: &[f64]) -> Result<TransportConfig, Error> {
    let d = TransportConfig::default();
    let get = |i: usize, default: u64| match limits.get(i) {
        Some(v) if v.is_finite() => *v as u64,
        _ => default,
    };
    let cfg = TransportConfig {
        max_message_size: get(0, d.max_message_size),
        max_concurrent_streams: get(1, d.max_concurrent_streams.into()).min(u32::MAX.into()) as u32,
        idle_timeout_ms: get(2, d.idle_timeout_ms),
        connect_timeout_ms: get(3, d.connect_timeout_ms),
        request_timeout_ms: get(4, d.request_timeout_ms),
        max_connections: get(5, d.max_connections.into()).min(u32::MAX.into()) as u32,
        keep_alive_ms: get(6, d.keep_alive_ms),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// A server's admission settings: [maxConnections, maxConnectionsPerIp, validateAddresses
/// (0/1)]; NaN keeps a default.
pub fn server_options(v: &[f64]) -> Result<ServerLimits, Error> {
    let d = ServerLimits::default();
    let get = |i: usize| v.get(i).copied().filter(|x| x.is_finite());
    let limits = ServerLimits {
        max_connections: get(0).map_or(d.max_connections, |x| x.min(u32::MAX.into()) as u32),
        max_connections_per_ip: get(1)
            .map_or(d.max_connections_per_ip, |x| x.min(u32::MAX.into()) as u32),
        validate_addresses: get(2).map_or(d.validate_addresses, |x| x != 0.0),
    };
    limits.validate()?;
    Ok(limits)
}

pub fn encodings(names: &[String], default: &[Encoding]) -> Result<Vec<Encoding>, Error> {
    if names.is_empty() {
        return Ok(default.to_vec());
    }
    names.iter().map(|n| Encoding::parse(n)).collect()
}

/// How a connection came to be: dialed by this client (its pool key), or accepted by this
/// server from an address (which admission counts it under).
enum Origin {
    Dialed(PoolKey),
    Accepted(IpAddr),
}

/// A connection and its quicwire session.
struct Conn {
    /// quinn-proto's handle (a slab slot, reused once the connection is gone).
    handle: ConnectionHandle,
    quic: Connection,
    session: Session,
    /// `host:port` as dialed (client) or the peer's address (server).
    peer: String,
    /// Its pool key (client side).
    key: Option<PoolKey>,
    /// Its close was already reported (a failed negotiation says why itself).
    reported: bool,
    /// Server side: the address admission counted it under (released when it drains; the
    /// peer may have migrated since).
    admitted: Option<IpAddr>,
    /// In `Engine::touched` (a call moved it since the last `drive`).
    touched: bool,
    /// In `Engine::sending` (it may have datagrams to send).
    sending: bool,
    /// Its entry in `Engine::timers`: when it next needs `on_timeout`.
    deadline: Option<Instant>,
}

/// Files a connection's next deadline (its QUIC timers, its request timeouts) in `timers`.
fn schedule(timers: &mut BTreeSet<(Instant, ConnId)>, handle: ConnId, conn: &mut Conn) {
    let deadline = [conn.quic.poll_timeout(), conn.session.next_deadline()]
        .into_iter()
        .flatten()
        .min();
    if deadline != conn.deadline {
        if let Some(old) = conn.deadline {
            timers.remove(&(old, handle));
        }
        if let Some(new) = deadline {
            timers.insert((new, handle));
        }
        conn.deadline = deadline;
    }
}

/// Marks a connection a call moved, for the next `drive` to look at.
fn touch(touched: &mut Vec<ConnId>, handle: ConnId, conn: &mut Conn) {
    if !conn.touched {
        conn.touched = true;
        touched.push(handle);
    }
}

/// One QUIC endpoint (a client or a server) and its connections.
pub struct Engine {
    endpoint: Endpoint,
    client_config: Option<ClientConfig>,
    /// Transport settings for a peer on this host (see `quic::transport_config`).
    loopback_transport: Arc<quinn_proto::TransportConfig>,
    /// Server: its config with those settings.
    loopback_server: Option<Arc<ServerConfig>>,
    cfg: TransportConfig,
    params: Params,
    epoch: Instant,
    pool: PoolTable<ConnId>,
    /// Handshakes under way: their key and deadline.
    dials: HashMap<ConnId, (PoolKey, Instant)>,
    next_sweep: Instant,
    accepted: u64,
    rejected: u64,
    /// Server: connection caps and address validation.
    admission: Admission,
    connections: HashMap<ConnId, Conn>,
    /// The id of each quinn-proto handle, for the datagrams the endpoint routes by handle.
    ids: HashMap<ConnectionHandle, ConnId>,
    /// Connections moved since the last `drive`, and those that may have datagrams to send:
    /// only these are looked at, so a call costs the same with one connection or thousands.
    touched: Vec<ConnId>,
    sending: Vec<ConnId>,
    /// Each connection's next deadline (its QUIC timers and request timeouts), soonest first.
    timers: BTreeSet<(Instant, ConnId)>,
    /// Events not yet taken. Bodies of [`batch::LARGE_BODY`] bytes and more go in `bodies`
    /// and are handed over as they are.
    events: Events,
    /// The batch `take_events` handed out last: its data and bodies wait here for the shell.
    handed: Events,
    /// Endpoint answers (retries, refusals, stateless resets) waiting to go out.
    responses: VecDeque<(SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("server", &self.client_config.is_none())
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A client endpoint that trusts `ca` (PEM), or anything when `insecure`, offering
    /// `encodings` (preferred first; empty: msgpack).
    pub fn client(
        now: Instant,
        ca: Option<String>,
        insecure: bool,
        encodings_offered: &[String],
        limits: &[f64],
    ) -> Result<Engine, Error> {
        let cfg = transport_options(limits)?;
        let encodings = encodings(encodings_offered, &[Encoding::Msgpack])?;
        let crypto = tls::client_config(&ClientTls { ca, insecure }, Vec::new)?;
        let crypto = quinn_proto::crypto::rustls::QuicClientConfig::try_from(crypto)
            .map_err(|e| Error::new(ErrorCode::Tls, e.to_string()))?;
        let mut client_config = ClientConfig::new(Arc::new(crypto));
        client_config.transport_config(quic::transport_config(&cfg, false)?);
        Self::new(now, None, Some(client_config), &cfg, encodings)
    }

    /// A server endpoint with this certificate chain and key (PEM), accepting `encodings`
    /// (empty: all).
    pub fn server(
        now: Instant,
        cert: String,
        key: String,
        encodings_accepted: &[String],
        limits: &[f64],
        admission: &[f64],
    ) -> Result<Engine, Error> {
        let cfg = transport_options(limits)?;
        let server_limits = server_options(admission)?;
        let encodings = encodings(encodings_accepted, &Encoding::ALL)?;
        let crypto = tls::server_config(&ServerTls { cert, key })?;
        let crypto = quinn_proto::crypto::rustls::QuicServerConfig::try_from(crypto)
            .map_err(|e| Error::new(ErrorCode::Tls, e.to_string()))?;
        let mut server_config = ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(quic::transport_config(&cfg, false)?);
        let mut loopback = server_config.clone();
        let mut engine = Self::new(now, Some(Arc::new(server_config)), None, &cfg, encodings)?;
        engine.admission = Admission::new(server_limits);
        loopback.transport_config(engine.loopback_transport.clone());
        engine.loopback_server = Some(Arc::new(loopback));
        Ok(engine)
    }

    fn new(
        now: Instant,
        server: Option<Arc<ServerConfig>>,
        client_config: Option<ClientConfig>,
        cfg: &TransportConfig,
        encodings: Vec<Encoding>,
    ) -> Result<Engine, Error> {
        let mut endpoint_config = EndpointConfig::default();
        endpoint_config
            .max_udp_payload_size(MAX_UDP_PAYLOAD)
            .map_err(|e| invalid(e.to_string()))?;
        let endpoint = Endpoint::new(Arc::new(endpoint_config), server, true, None);
        Ok(Engine {
            endpoint,
            client_config,
            loopback_transport: quic::transport_config(cfg, true)?,
            loopback_server: None,
            cfg: cfg.clone(),
            epoch: now,
            pool: PoolTable::new(cfg.max_connections),
            dials: HashMap::new(),
            next_sweep: now,
            accepted: 0,
            rejected: 0,
            admission: Admission::default(),
            params: Params {
                max_message_size: cfg.max_message_size,
                encodings,
                request_timeout: Duration::from_millis(cfg.request_timeout_ms),
                max_streams: cfg.max_concurrent_streams,
            },
            connections: HashMap::new(),
            ids: HashMap::new(),
            touched: Vec::new(),
            sending: Vec::new(),
            timers: BTreeSet::new(),
            events: Events::default(),
            handed: Events::default(),
            responses: VecDeque::new(),
            buf: Vec::new(),
        })
    }

    /// The pooled connection to `host:port` (an open one, or one being dialed), or a new
    /// handshake with `addr` (the resolved "ip:port"), checking the certificate against
    /// `host`. Returns the connection id; it is ready once CONNECTION is reported.
    pub fn connect(
        &mut self,
        now: Instant,
        host: &str,
        port: f64,
        addr: &str,
    ) -> Result<ConnId, Error> {
        let key = PoolKey::new(host, port as i64)?;
        let remote: SocketAddr = addr
            .parse()
            .map_err(|_| invalid(format!("invalid address {addr:?}: expected ip:port")))?;
        let mut config = self
            .client_config
            .clone()
            .ok_or_else(|| invalid("this engine is a server; it cannot connect".into()))?;
        if is_loopback(remote.ip()) {
            config.transport_config(self.loopback_transport.clone());
        }
        let since = now - self.epoch;
        let conns = &self.connections;
        let usable = |id: &ConnId| {
            conns
                .get(id)
                .is_some_and(|c| !c.reported && !c.session.is_going_away())
        };
        if let Some(id) = self.pool.checkout(&key, since, usable) {
            return Ok(*id);
        }
        if let Some((&id, _)) = self.dials.iter().find(|(_, (k, _))| *k == key) {
            self.pool.note_joined_dial();
            return Ok(id);
        }
        let is_idle = |id: &ConnId| conns.get(id).is_none_or(|c| c.session.is_idle());
        let evicted = self.pool.begin_dial(&key, is_idle)?;
        if let Some((_, id)) = evicted {
            self.close_conn(now, id, app_code::EVICTED, "evicted from the pool");
        }
        let dialed = CONNECTION_IDS
            .take()
            .ok_or_else(|| Error::new(ErrorCode::Internal, "connection ids are used up"))
            .and_then(|id| {
                let conn = self.endpoint.connect(now, config, remote, host);
                conn.map(|c| (id, c))
                    .map_err(|e| invalid(format!("cannot connect to {key}: {e}")))
            });
        let (id, (handle, conn)) = match dialed {
            Ok(v) => v,
            Err(e) => {
                self.pool.finish_dial(key.clone(), None, since);
                return Err(e);
            }
        };
        let deadline = now + Duration::from_millis(self.cfg.connect_timeout_ms);
        let peer = key.to_string();
        self.insert(now, (id, handle), conn, peer, Origin::Dialed(key.clone()));
        self.dials.insert(id, (key, deadline));
        self.drive(now);
        Ok(id)
    }

    /// Closes a connection and drops it from the pool (a connection already gone: nothing).
    pub fn disconnect(&mut self, now: Instant, connection: ConnId) {
        self.close_conn(now, connection, app_code::NO_ERROR, "disconnect");
        self.drive(now);
    }

    /// Sends GOAWAY on every connection and stops accepting new ones (a closing server).
    pub fn go_away(&mut self, now: Instant) {
        self.endpoint.set_server_config(None);
        for (&id, conn) in self.connections.iter_mut() {
            conn.session.go_away(&mut conn.quic);
            touch(&mut self.touched, id, conn);
        }
        self.drive(now);
    }

    /// Requests from peers still being read or answered.
    pub fn serving(&self) -> u32 {
        self.connections
            .values()
            .map(|c| c.session.serving() as u32)
            .sum()
    }

    /// Closes every connection.
    pub fn close_all(&mut self, now: Instant, reason: &str) {
        let code = if self.client_config.is_some() {
            app_code::NO_ERROR
        } else {
            app_code::SHUTDOWN
        };
        let ids: Vec<ConnId> = self.connections.keys().copied().collect();
        for id in ids {
            self.close_conn(now, id, code, reason);
        }
        self.drive(now);
    }

    /// Pool and traffic figures as JSON: counters, totals (core's `accumulate`) and per
    /// open connection its stats.
    pub fn stats(&self) -> String {
        let c = self.pool.counters();
        let mut totals = ConnectionStats::default();
        let mut conns = Vec::new();
        let open = self
            .connections
            .values()
            .filter(|c| !c.reported && c.session.is_ready());
        for conn in open {
            let q = conn.quic.stats();
            let s = ConnectionStats {
                peer: conn.peer.clone(),
                streams_open: conn.session.streams_open(),
                rtt_ms: q.path.rtt.as_secs_f64() * 1000.0,
                lost_packets: q.path.lost_packets,
                udp_tx: q.udp_tx.datagrams,
                udp_rx: q.udp_rx.datagrams,
                ..conn.session.counters.clone()
            };
            totals.accumulate(&s);
            conns.push(stats_json(&s, Some(conn.session.is_idle())));
        }
        format!(
            concat!(
                "{{\"created\":{},\"reused\":{},\"evicted\":{},\"failed\":{},",
                "\"accepted\":{},\"rejected\":{},\"refused\":{},\"totals\":{},\"connections\":[{}]}}"
            ),
            c.created,
            c.reused,
            c.evicted,
            c.failed,
            self.accepted,
            self.rejected,
            self.admission.refused(),
            stats_json(&totals, None),
            conns.join(",")
        )
    }

    /// Feeds the datagrams received since the last call, then lets every connection act.
    ///
    /// Returns whether the shell should send what is ready (the ACKs owed) before it hands
    /// the events to the application. After one datagram (a request, an answer) it should
    /// not: what the application answers at once then leaves with those ACKs and stream
    /// credit, in one datagram. After several (traffic streaming in) it should, as the
    /// sender's window waits on the ACKs, not on the application.
    pub fn receive(
        &mut self,
        now: Instant,
        datagrams: impl IntoIterator<Item = (SocketAddr, BytesMut)>,
    ) -> bool {
        let mut count = 0;
        for (remote, datagram) in datagrams {
            self.handle_datagram(now, remote, datagram);
            count += 1;
        }
        self.drive(now);
        count > 1
    }

    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, datagram: BytesMut) {
        let event = self
            .endpoint
            .handle(now, remote, None, None, datagram, &mut self.buf);
        match event {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                let Some(&id) = self.ids.get(&handle) else {
                    return;
                };
                if let Some(conn) = self.connections.get_mut(&id) {
                    conn.quic.handle_event(event);
                    touch(&mut self.touched, id, conn);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let validated = incoming.remote_address_validated();
                let id = match self.admission.admit(remote.ip(), validated) {
                    Decision::Accept => match CONNECTION_IDS.take() {
                        Some(id) => id,
                        None => {
                            self.admission.release(remote.ip());
                            self.refuse(incoming);
                            return;
                        }
                    },
                    Decision::Retry => {
                        self.buf.clear();
                        match self.endpoint.retry(incoming, &mut self.buf) {
                            Ok(t) => self
                                .responses
                                .push_back((t.destination, self.buf[..t.size].to_vec())),
                            Err(e) => self.endpoint.ignore(e.into_incoming()),
                        }
                        return;
                    }
                    Decision::Refuse => {
                        self.refuse(incoming);
                        return;
                    }
                };
                let mut response = Vec::new();
                let config = self
                    .loopback_server
                    .clone()
                    .filter(|_| is_loopback(remote.ip()));
                match self.endpoint.accept(incoming, now, &mut response, config) {
                    Ok((handle, conn)) => {
                        let peer = remote.to_string();
                        self.insert(now, (id, handle), conn, peer, Origin::Accepted(remote.ip()));
                    }
                    Err(e) => {
                        self.admission.release(remote.ip());
                        if let Some(t) = e.response {
                            self.responses
                                .push_back((t.destination, response[..t.size].to_vec()));
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.responses
                    .push_back((t.destination, self.buf[..t.size].to_vec()));
            }
            None => {}
        }
    }

    /// Turns a new connection away (CONNECTION_REFUSED).
    fn refuse(&mut self, incoming: quinn_proto::Incoming) {
        self.buf.clear();
        let t = self.endpoint.refuse(incoming, &mut self.buf);
        self.responses
            .push_back((t.destination, self.buf[..t.size].to_vec()));
    }

    /// Hands out every datagram ready to send now: its bytes, destination and, when it holds
    /// several packets for segmentation offload (at most `max_segments`), their size. `send`
    /// returns false when the socket is full (it keeps the datagram it was given); the rest
    /// then waits for the next call.
    pub fn poll_transmits(
        &mut self,
        now: Instant,
        max_segments: usize,
        mut send: impl FnMut(&[u8], SocketAddr, Option<usize>) -> bool,
    ) {
        while let Some((to, datagram)) = self.responses.pop_front() {
            if !send(&datagram, to, None) {
                return;
            }
        }
        while let Some(&id) = self.sending.last() {
            if let Some(conn) = self.connections.get_mut(&id) {
                self.buf.clear();
                while let Some(t) = conn.quic.poll_transmit(now, max_segments, &mut self.buf) {
                    if !send(&self.buf[..t.size], t.destination, t.segment_size) {
                        return; // It stays in `sending`.
                    }
                    self.buf.clear();
                }
                conn.sending = false;
                // Sending armed its timers: they hold until the next call moves it.
                schedule(&mut self.timers, id, conn);
            }
            self.sending.pop();
        }
    }

    /// When `on_timeout` is next due, or None when no timer is armed.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        self.schedule_unsent();
        let first = self.timers.first().map(|t| t.0);
        first
            .into_iter()
            .chain(self.dials.values().map(|d| d.1))
            .chain((!self.pool.is_empty()).then_some(self.next_sweep))
            .min()
    }

    /// Runs the timers that are due.
    pub fn on_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        self.schedule_unsent();
        while let Some(&(deadline, id)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.pop_first();
            let Some(conn) = self.connections.get_mut(&id) else {
                continue;
            };
            conn.deadline = None;
            if conn.quic.poll_timeout().is_some_and(|t| t <= now) {
                conn.quic.handle_timeout(now);
            }
            let mut out = Vec::new();
            conn.session.expire(&mut conn.quic, now, &mut out);
            expired.extend(out.into_iter().map(|o| (id, o)));
            touch(&mut self.touched, id, conn);
        }
        for (id, outcome) in expired {
            self.report(now, id, outcome);
        }
        let late: Vec<(ConnId, PoolKey)> = self
            .dials
            .iter()
            .filter(|(_, d)| d.1 <= now)
            .map(|(id, d)| (*id, d.0.clone()))
            .collect();
        for (id, key) in late {
            let ms = self.cfg.connect_timeout_ms;
            let e = Error::new(
                ErrorCode::ConnectTimeout,
                format!("no QUIC handshake with {key} within {ms} ms"),
            );
            self.report(now, id, Outcome::Failed(e));
            self.close_conn(now, id, app_code::NO_ERROR, "connect timeout");
        }
        if self.next_sweep <= now {
            self.sweep(now);
        }
        self.drive(now);
    }

    /// Acknowledges RECEIPT events the application has dealt with: `receipts` holds
    /// (connection, stream, delivered) triples.
    pub fn acknowledge(&mut self, now: Instant, receipts: &[f64]) {
        for r in receipts.chunks_exact(3) {
            let Some(id) = ConnId::from_f64(r[0]) else {
                continue;
            };
            if let Some(conn) = self.connections.get_mut(&id) {
                conn.session
                    .acknowledge(&mut conn.quic, r[1] as u64, r[2] as u64);
                touch(&mut self.touched, id, conn);
            }
        }
        self.drive(now);
    }

    /// Events since the last call (`quicwire_core::batch::event`), seven numbers each: kind,
    /// connection, b, c, d, offset, length; and their bytes. None when there are none. A
    /// body is `bytes[offset..offset + length]`, or, where `offset` is negative,
    /// `take_event_bodies()[-offset - 1]`: those stay here until the next call.
    pub fn take_events(&mut self) -> Option<(&[f64], &[u8])> {
        if self.events.words.is_empty() {
            // Nothing new: the last batch's bytes and bodies are gone all the same, so a
            // shell that asks for them now gets nothing rather than the old batch again.
            self.handed.clear();
            return None;
        }
        // The two batches swap buffers, so neither is allocated anew (unless the shell took
        // the bytes or bodies away).
        std::mem::swap(&mut self.events, &mut self.handed);
        self.events.clear();
        Some((&self.handed.words, &self.handed.data))
    }

    /// Whether `take_events` has events to hand out.
    pub fn has_events(&self) -> bool {
        !self.events.words.is_empty()
    }

    /// The bytes of the events `take_events` returned last, for a shell that keeps them
    /// rather than copying them (large ones).
    pub fn take_event_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.handed.data)
    }

    /// The large bodies of the events `take_events` returned last.
    pub fn take_event_bodies(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.handed.bodies)
    }

    /// Copies the large bodies of the events `take_events` returned last, one after another
    /// in event order, into a buffer of `room` bytes (`copy(at, body)` writes one), and lets
    /// go of them: for a shell whose JS reuses one buffer for them rather than taking a new
    /// one per body. Returns the bytes they take; when that is more than `room`, nothing was
    /// copied and they stay.
    pub fn copy_event_bodies(&mut self, room: usize, mut copy: impl FnMut(usize, &[u8])) -> usize {
        let bodies = &mut self.handed.bodies;
        let need = bodies.iter().map(Bytes::len).sum();
        if need <= room {
            let mut at = 0;
            for body in bodies.drain(..) {
                copy(at, &body);
                at += body.len();
            }
        }
        need
    }

    /// Carries out a batch of ops (messages, requests, answers); returns the failed ones.
    pub fn write(&mut self, now: Instant, data: &[u8], ops: &[f64]) -> Vec<WriteFailure> {
        self.write_shared(now, data, ops, |_| None)
    }

    /// [`Engine::write`], where `shared` returns a large message body as the `Bytes` it
    /// lies in when the shell has it so (see `batch::Messages::add`): sent without a copy.
    pub fn write_shared(
        &mut self,
        now: Instant,
        data: &[u8],
        ops: &[f64],
        shared: impl Fn(&[u8]) -> Option<bytes::Bytes>,
    ) -> Vec<WriteFailure> {
        let mut failures = Vec::new();
        let mut fail = |i: usize, e: Error| failures.push((i as u32, e));
        let mut messages = batch::Messages::default();
        for op in batch::ops(data, ops) {
            let op = match op {
                Ok(op) => op,
                Err((i, e)) => {
                    fail(i, e);
                    break;
                }
            };
            let (i, code, target, id, body, extra) =
                (op.index, op.code, op.target, op.id, op.body, op.extra);
            let result = match code {
                batch::op::MESSAGE => self
                    .conn(target)
                    .and_then(|c| messages.add(&op, c.session.peer_limit().unwrap_or(0), &shared)),
                batch::op::REQUEST => self.conn(target).and_then(|c| {
                    let timeout = (extra > 0.0).then(|| Duration::from_millis(extra as u64));
                    let body = bytes::Bytes::copy_from_slice(body);
                    c.session.request(&mut c.quic, id, body, timeout, now)
                }),
                batch::op::RESPOND | batch::op::RESPOND_ERROR => self.conn(target).and_then(|c| {
                    let answer = if code == batch::op::RESPOND {
                        Ok(body)
                    } else {
                        let code = ErrorCode::from_wire(extra as u64);
                        Err(Error::new(code, String::from_utf8_lossy(body).into_owned()))
                    };
                    c.session.respond(&mut c.quic, id, answer)
                }),
                other => Err(Error::new(
                    ErrorCode::Internal,
                    format!("unknown op {other}"),
                )),
            };
            if let Err(e) = result {
                fail(i, e);
            }
        }
        for mut group in messages {
            let sent = self
                .conn(group.target)
                .and_then(|c| c.session.send_frames(&mut c.quic, &mut group, now));
            if let Err(e) = sent {
                for i in group.ops {
                    fail(i, e.clone());
                }
            }
        }
        self.drive(now);
        failures
    }

    /// Open connections.
    pub fn connection_count(&self) -> u32 {
        self.connections.len() as u32
    }
}

impl Engine {
    /// Files the deadlines of connections not through `poll_transmits` yet (the shell
    /// normally sends first), whose entries in `timers` may be stale.
    fn schedule_unsent(&mut self) {
        for &id in &self.sending {
            if let Some(conn) = self.connections.get_mut(&id) {
                schedule(&mut self.timers, id, conn);
            }
        }
    }

    /// An open connection, to be moved by the caller (so it is touched).
    fn conn(&mut self, id: f64) -> Result<&mut Conn, Error> {
        let closed = || Error::closed(format!("connection {id} is closed"));
        let id = ConnId::from_f64(id).ok_or_else(closed)?;
        let conn = self
            .connections
            .get_mut(&id)
            .filter(|c| !c.reported)
            .ok_or_else(closed)?;
        touch(&mut self.touched, id, conn);
        Ok(conn)
    }

    /// Appends one event for connection `id`.
    fn report(&mut self, now: Instant, id: ConnId, outcome: Outcome) {
        let since = now - self.epoch;
        match &outcome {
            Outcome::Ready(_) => {
                if let Some((key, _)) = self.dials.remove(&id) {
                    self.pool.finish_dial(key, Some(id), since);
                    if self.next_sweep <= self.epoch + since {
                        self.next_sweep = self.epoch + since + self.sweep_period();
                    }
                } else if self.client_config.is_none() {
                    self.accepted += 1;
                }
            }
            Outcome::Failed(_) => {
                if let Some((key, _)) = self.dials.remove(&id) {
                    self.pool.finish_dial(key, None, since);
                }
                if let Some(key) = self.connections.get(&id).and_then(|c| c.key.clone()) {
                    if self.pool.iter().any(|(k, h)| *k == key && *h == id) {
                        self.pool.take(&key);
                    }
                }
                let ready = self
                    .connections
                    .get(&id)
                    .is_some_and(|c| c.session.is_ready());
                if self.client_config.is_none() && !ready {
                    self.rejected += 1;
                }
            }
            _ => {}
        }
        // Bodies are `Bytes` already and texts become `Bytes` without a copy: a small body is
        // copied once, into the batch's data, and a large one not at all.
        let (words, bytes): ([f64; 4], Bytes) = match outcome {
            Outcome::Ready(n) => {
                let peer = self.connections.get(&id).map_or("", |c| c.peer.as_str());
                let label = format!("{} {peer}", n.encoding.as_str());
                (
                    [kind::CONNECTION, 0.0, 0.0, n.peer_max_message_size as f64],
                    label.into(),
                )
            }
            Outcome::Failed(e) => {
                let Some(c) = self.connections.get_mut(&id) else {
                    return;
                };
                if c.reported {
                    return;
                }
                c.reported = true;
                (
                    [kind::CLOSED, 0.0, f64::from(e.code as u16), 0.0],
                    e.message.into(),
                )
            }
            Outcome::Message(body) => ([kind::MESSAGE, 0.0, 0.0, 0.0], body),
            Outcome::Request { handle, body } => ([kind::REQUEST, handle as f64, 0.0, 0.0], body),
            Outcome::Response { id: rid, body } => ([kind::RESPONSE, rid, 0.0, 0.0], body),
            Outcome::RequestFailed { id: rid, error } => (
                [kind::REQUEST_FAILED, rid, f64::from(error.code as u16), 0.0],
                error.message.into(),
            ),
            Outcome::Acked(n) => ([kind::ACKED, n as f64, 0.0, 0.0], Bytes::new()),
            Outcome::Receipt { stream, delivered } => (
                [kind::RECEIPT, stream as f64, delivered as f64, 0.0],
                Bytes::new(),
            ),
        };
        let events = &mut self.events;
        let len = bytes.len() as f64;
        let offset = if bytes.len() >= batch::LARGE_BODY {
            events.bodies.push(bytes);
            -(events.bodies.len() as f64)
        } else {
            events.data.extend_from_slice(&bytes);
            (events.data.len() - bytes.len()) as f64
        };
        events.words.extend_from_slice(&[
            words[0],
            id.to_f64(),
            words[1],
            words[2],
            words[3],
            offset,
            len,
        ]);
    }

    fn insert(
        &mut self,
        now: Instant,
        (id, handle): (ConnId, ConnectionHandle),
        mut quic: Connection,
        peer: String,
        origin: Origin,
    ) {
        let (key, admitted) = match origin {
            Origin::Dialed(key) => (Some(key), None),
            Origin::Accepted(ip) => (None, Some(ip)),
        };
        let mut session = Session::new(key.is_some(), self.params.clone(), now);
        if key.is_none() {
            session.send_hello(&mut quic);
        }
        let mut conn = Conn {
            handle,
            quic,
            session,
            peer,
            key,
            reported: false,
            admitted,
            touched: false,
            sending: false,
            deadline: None,
        };
        touch(&mut self.touched, id, &mut conn);
        self.connections.insert(id, conn);
        self.ids.insert(handle, id);
    }

    /// Closes a connection, reports it CLOSED (quinn-proto says nothing of a close it was
    /// asked for) and forgets it in the pool.
    fn close_conn(&mut self, now: Instant, id: ConnId, code: u32, reason: &str) {
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        let bytes = reason.as_bytes().to_vec().into();
        conn.quic.close(now, VarInt::from_u32(code), bytes);
        touch(&mut self.touched, id, conn);
        let mut out = Vec::new();
        let err = Error::closed(format!("connection to {} was closed ({reason})", conn.peer));
        conn.session.fail_all(&err, &mut out);
        out.push(Outcome::Failed(err));
        for outcome in out {
            self.report(now, id, outcome);
        }
    }

    fn sweep_period(&self) -> Duration {
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Closes pooled connections idle for idle_timeout and plans the next sweep.
    fn sweep(&mut self, now: Instant) {
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        self.next_sweep = now + self.sweep_period();
        let conns = &self.connections;
        let expired = self.pool.expire(now - self.epoch, idle, |h| {
            conns
                .get(h)
                .is_some_and(|c| c.session.is_idle() && now - c.session.last_active >= idle)
        });
        for (_, id) in expired {
            self.close_conn(now, id, app_code::EVICTED, "idle timeout");
        }
    }

    /// Moves events between the endpoint and its connections until both are quiet, lets
    /// each session make progress, and reports what happened.
    fn drive(&mut self, now: Instant) {
        let mut reports = Vec::new();
        let mut drained = Vec::new();
        // Each touched connection once; what drive itself moves is handled here too.
        let touched = std::mem::take(&mut self.touched);
        for &id in &touched {
            let Some(conn) = self.connections.get_mut(&id) else {
                continue;
            };
            conn.touched = false;
            if !conn.sending {
                conn.sending = true;
                self.sending.push(id);
            }
            while let Some(event) = conn.quic.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(conn.handle, event) {
                    conn.quic.handle_event(back);
                }
            }
            let mut out = Vec::new();
            let mut streams = false;
            let mut lost = None;
            while let Some(event) = conn.quic.poll() {
                match event {
                    Event::Connected => {
                        conn.session.send_hello(&mut conn.quic);
                        streams = true;
                    }
                    Event::Stream(StreamEvent::Finished { id }) => {
                        conn.session.on_finished(id);
                        streams = true;
                    }
                    Event::Stream(_) => streams = true,
                    Event::ConnectionLost { reason } => lost = Some(reason),
                    _ => {}
                }
            }
            // Take what already arrived (an answer, then the close) before the loss.
            if streams && !conn.reported {
                conn.session.on_streams(&mut conn.quic, now, &mut out);
            }
            if let Some(reason) = lost.filter(|_| !conn.reported) {
                let err = connection_error(&reason, &conn.quic.remote_address().to_string());
                conn.session.fail_all(&err, &mut out);
                out.push(Outcome::Failed(err));
            }
            reports.extend(out.into_iter().map(|o| (id, o)));
            if conn.quic.is_drained() {
                drained.push(id);
            }
        }
        // The list back, for the next calls to fill without allocating (with any connection
        // touched meanwhile, for the next drive).
        let mut touched = touched;
        touched.clear();
        touched.append(&mut self.touched);
        self.touched = touched;
        for (id, outcome) in reports {
            self.report(now, id, outcome);
        }
        for id in drained {
            let Some(conn) = self.connections.remove(&id) else {
                continue;
            };
            self.ids.remove(&conn.handle);
            if let Some(deadline) = conn.deadline {
                self.timers.remove(&(deadline, id));
            }
            if let Some(ip) = conn.admitted {
                self.admission.release(ip);
            }
        }
    }
}

/// One connection's figures as a JSON object (the facade's ConnectionStats shape).
fn stats_json(s: &ConnectionStats, idle: Option<bool>) -> String {
    let idle = idle.map_or(String::new(), |i| format!("\"idle\":{i},"));
    format!(
        concat!(
            "{{{}\"peer\":{:?},\"messagesOut\":{},\"messagesIn\":{},\"requestsOut\":{},",
            "\"requestsIn\":{},\"bytesOut\":{},\"bytesIn\":{},\"streamsOpen\":{},",
            "\"rttMs\":{},\"lostPackets\":{},\"udpTx\":{},\"udpRx\":{}}}"
        ),
        idle,
        s.peer,
        s.messages_out,
        s.messages_in,
        s.requests_out,
        s.requests_in,
        s.bytes_out,
        s.bytes_in,
        s.streams_open,
        s.rtt_ms,
        s.lost_packets,
        s.udp_tx,
        s.udp_rx,
    )
}
