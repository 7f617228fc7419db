//! One endpoint (a client or a server) and its connections, sans IO: the drive loop between
//! quinn-proto's endpoint, its connections and their quicwire sessions.
//!
//! The driver feeds it the datagrams it received ([`Engine::receive`]), sends what
//! [`Engine::poll_transmits`] hands out, and calls [`Engine::on_timeout`] once
//! [`Engine::next_timeout`] has passed. The application's calls (connect, send, request,
//! respond) come in as methods, and what happened goes out as [`Event`]s. Every entry point
//! takes the time: the engine reads no clock. The client side (dialing through the pool) is
//! in `dial`, the server side (admitting new connections) in `accept`.

mod accept;
mod dial;
mod web;

use accept::WorkerCids;
use dial::Dial;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quicwire_core::quic::{self, MAX_UDP_PAYLOAD};
use quicwire_core::tls;
use quicwire_core::{
    app_code, Admission, Carrier, CongestionControl, ConnectionStats, Error, ErrorCode, Negotiated,
    PoolKey, PoolTable, TransportConfig,
};
use quinn_proto::{ConnectionHandle, Endpoint, EndpointConfig, ServerConfig};
use web_time::{Duration, Instant};

use crate::conn::{schedule, touch, Conn, Link, LinkEvent, Origin};
use crate::event::{ConnectionInfo, Event, Receipt};
use crate::outbox::{Outbox, SendOptions};
use crate::session::{Outcome, Params, RequestOptions, Session};
use crate::stats::{ConnectionEntry, ConnectionState, EngineStats};
use crate::streams::Streams;
use crate::web::WebCommand;
use crate::ConnId;

/// One QUIC endpoint (a client or a server) and its connections.
pub struct Engine {
    endpoint: Endpoint,
    /// A client's TLS setup and transport settings (None: a server).
    client: Option<(tls::ClientCrypto, Arc<quinn_proto::TransportConfig>)>,
    /// Transport settings for a peer on this host (see `quic::transport_config`).
    loopback_transport: Arc<quinn_proto::TransportConfig>,
    /// Server: its config with those settings.
    loopback_server: Option<Arc<ServerConfig>>,
    cfg: TransportConfig,
    params: Params,
    epoch: Instant,
    /// The latest time a call gave.
    now: Instant,
    pool: PoolTable<ConnId>,
    /// Handshakes under way.
    dials: HashMap<ConnId, Dial>,
    /// The figures of the connections gone, added up (see `EngineStats::ended`).
    ended: ConnectionStats,
    /// Second handshakes racing a dial (`connect_racing`): the dial each races for.
    rivals: HashMap<ConnId, ConnId>,
    /// Connections that traded ids in this `drive` (a rival that won, see `rename`): what
    /// was reported under one id before belongs to the other.
    renamed: HashMap<ConnId, ConnId>,
    next_sweep: Instant,
    accepted: u64,
    rejected: u64,
    /// Server: connection caps and address validation.
    admission: Admission,
    /// Boxed: a connection is several KiB, and a table of them inline would keep up to twice
    /// that per connection in empty slots.
    connections: HashMap<ConnId, Box<Conn>>,
    /// Client with 0-RTT on: what the last connection to each server agreed, for the next
    /// one to send 0-RTT data on (at most [`RESUMABLE`] servers).
    resumable: HashMap<PoolKey, Negotiated>,
    /// The id of each quinn-proto handle, for the datagrams the endpoint routes by handle.
    ids: HashMap<ConnectionHandle, ConnId>,
    /// Connections moved since the last `drive`, and those that may have datagrams to send:
    /// only these are looked at, so a call costs the same with one connection or thousands.
    touched: Vec<ConnId>,
    sending: Vec<ConnId>,
    /// Each connection's next deadline (its QUIC timers and request timeouts), soonest first.
    timers: BTreeSet<(Instant, ConnId)>,
    events: VecDeque<Event>,
    /// TLS secrets logged and not yet reported (`TransportConfig::key_log`).
    key_log: Option<Arc<tls::KeyLogLines>>,
    /// Endpoint answers (retries, refusals, stateless resets) waiting to go out.
    responses: VecDeque<(SocketAddr, Vec<u8>)>,
    /// What the page is to do for connections over a browser's WebTransport (see `web`).
    web_out: VecDeque<(ConnId, WebCommand)>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("server", &self.is_server())
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

fn tls_error(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Tls, e.to_string())
}

fn no_encodings() -> Error {
    Error::invalid_argument("encodings must list at least one encoding")
}

/// Where TLS writes its secrets when `key_log` asks for them.
fn key_log_lines(transport: &TransportConfig) -> Option<Arc<tls::KeyLogLines>> {
    transport.key_log.then(Default::default)
}

impl Engine {
    fn new(
        now: Instant,
        server: Option<(Arc<ServerConfig>, Option<u8>)>,
        client: Option<(tls::ClientCrypto, Arc<quinn_proto::TransportConfig>)>,
        cfg: &TransportConfig,
        params: Params,
    ) -> Result<Engine, Error> {
        let mut endpoint_config = EndpointConfig::default();
        endpoint_config
            .max_udp_payload_size(MAX_UDP_PAYLOAD)
            .map_err(|e| Error::invalid_argument(e.to_string()))?;
        let (server, worker) = server.unzip();
        if let Some(worker) = worker.flatten() {
            endpoint_config.cid_generator(move || Box::new(WorkerCids::new(worker)));
        }
        let endpoint = Endpoint::new(Arc::new(endpoint_config), server, true, None);
        Ok(Engine {
            endpoint,
            client,
            loopback_transport: quic::transport_config(cfg, true)?,
            loopback_server: None,
            cfg: cfg.clone(),
            params,
            epoch: now,
            now,
            pool: PoolTable::new(cfg.max_connections),
            dials: HashMap::new(),
            ended: ConnectionStats::default(),
            rivals: HashMap::new(),
            renamed: HashMap::new(),
            next_sweep: now,
            accepted: 0,
            rejected: 0,
            admission: Admission::default(),
            connections: HashMap::new(),
            resumable: HashMap::new(),
            ids: HashMap::new(),
            touched: Vec::new(),
            sending: Vec::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            responses: VecDeque::new(),
            web_out: VecDeque::new(),
            buf: Vec::new(),
            key_log: None,
        })
    }

    pub fn is_server(&self) -> bool {
        self.client.is_none()
    }

    /// A connection open for traffic (negotiated, not closing): what `Event::Connected`
    /// said of it.
    pub fn connection(&self, id: ConnId) -> Option<ConnectionInfo> {
        let conn = self.connections.get(&id).filter(|c| c.is_open())?;
        let negotiated = conn.session.negotiated()?;
        Some(ConnectionInfo {
            encoding: negotiated.encoding,
            peer: conn.peer.clone(),
            peer_max_message_size: negotiated.peer_max_message_size,
            max_datagram_size: conn.datagrams.max_size,
            carrier: conn.link.carrier(),
        })
    }

    /// An outbox for messages to connection `id` on the lane of `priority` (see [`Outbox`]):
    /// push them, then [`Self::send`] it. Each send priority in use is a lane: its own
    /// channel stream at that stream priority (higher first), its own order and send buffer;
    /// a connection has at most [`quicwire_core::config::MAX_LANES`] (ERR_INVALID_ARGUMENT past them).
    pub fn outbox(&self, id: ConnId, options: SendOptions) -> Result<Outbox, Error> {
        let conn = self.open(id)?;
        conn.session.outbox(conn.peer.clone(), options)
    }

    /// Sends an outbox's messages, in order, on connection `id`'s channel stream of its
    /// lane; the lane's sequence number of the last, delivered once `Event::Acked` of that
    /// lane reaches it.
    pub fn send(&mut self, now: Instant, id: ConnId, outbox: &mut Outbox) -> Result<u64, Error> {
        let conn = self.moved(now, id)?;
        conn.session.send(&mut conn.link, outbox, now)
    }

    /// Sends `body` as an unreliable datagram: it may be lost, and is never retransmitted.
    /// ERR_MESSAGE_TOO_LARGE past the path's limit (`ConnectionInfo::max_datagram_size`);
    /// ERR_PROTOCOL when the peer takes no datagrams. While the connection cannot send, it
    /// waits in a queue of [`crate::DATAGRAM_QUEUE`] that drops its oldest when full.
    pub fn send_datagram(&mut self, now: Instant, id: ConnId, body: &[u8]) -> Result<(), Error> {
        let conn = self.moved(now, id)?;
        let prefix = conn.session.datagram_prefix();
        conn.datagrams.send(&mut conn.link, body, prefix)
    }

    /// Sends request `request` (an id of the caller's, unique among its requests in
    /// flight on this connection) on a fresh stream; its answer comes back as
    /// `Event::Response` or `Event::RequestFailed` with that id (see [`RequestOptions`]).
    pub fn request(
        &mut self,
        now: Instant,
        id: ConnId,
        request: u64,
        body: Bytes,
        options: RequestOptions,
    ) -> Result<(), Error> {
        let conn = self.moved(now, id)?;
        conn.session
            .request(&mut conn.link, request, body, options, now)
    }

    /// Gives up request `request` on connection `id`: its stream is reset, and nothing more
    /// is reported of it.
    pub fn cancel_request(&mut self, now: Instant, id: ConnId, request: u64) {
        if let Ok(conn) = self.moved(now, id) {
            conn.session.cancel(&mut conn.link, request);
        }
    }

    /// Answers the peer's request `handle` on connection `id`: a RESPONSE, or for `Err` an
    /// ERROR frame with its code and text. An answer that cannot go (given already, the
    /// requester stopped waiting, the connection is gone) is an error, never dropped
    /// without a word.
    pub fn respond(
        &mut self,
        now: Instant,
        id: ConnId,
        handle: u64,
        answer: Result<&[u8], Error>,
    ) -> Result<(), Error> {
        let conn = self.moved(now, id)?;
        conn.session.respond(&mut conn.link, handle, answer)
    }

    /// Turns down the peer's request `handle` without an answer: its stream is reset, and
    /// the requester gets ERR_STREAM_RESET.
    pub fn reset_request(&mut self, now: Instant, id: ConnId, handle: u64) {
        if let Ok(conn) = self.moved(now, id) {
            conn.session.reset_request(&mut conn.link, handle);
        }
    }

    /// The application has the messages `receipt` names: the peer learns they were
    /// delivered.
    pub fn acknowledge(&mut self, now: Instant, id: ConnId, receipt: Receipt) {
        self.at(now);
        if let Some(conn) = self.connections.get_mut(&id) {
            conn.session
                .acknowledge(&mut conn.link, receipt.stream, receipt.delivered, now);
            touch(&mut self.touched, id, conn);
        }
    }

    /// Closes a connection and drops it from the pool (a connection already gone: nothing).
    pub fn disconnect(&mut self, now: Instant, id: ConnId) {
        self.close(now, id, "disconnect");
    }

    /// Closes connection `id`, its close error saying `reason` (say, that the stream tunnel
    /// carrying it closed).
    pub fn close(&mut self, now: Instant, id: ConnId, reason: &str) {
        self.at(now);
        self.close_conn(now, id, app_code::NO_ERROR, reason);
    }

    /// Sends GOAWAY on every connection and stops accepting new ones (a closing server).
    pub fn go_away(&mut self, now: Instant) {
        self.at(now);
        self.endpoint.set_server_config(None);
        for (&id, conn) in self.connections.iter_mut() {
            conn.session.go_away(&mut conn.link);
            touch(&mut self.touched, id, conn);
        }
    }

    /// Requests from peers still being read or answered (a graceful close waits for none).
    pub fn serving(&self) -> usize {
        self.connections.values().map(|c| c.session.serving()).sum()
    }

    /// Closes every connection; a server also stops accepting, so no handshake starts while
    /// the closing ones drain.
    pub fn close_all(&mut self, now: Instant, reason: &str) {
        let code = if self.is_server() {
            self.endpoint.set_server_config(None);
            app_code::SHUTDOWN
        } else {
            app_code::NO_ERROR
        };
        self.at(now);
        let ids: Vec<ConnId> = self.connections.keys().copied().collect();
        for id in ids {
            self.close_conn(now, id, code, reason);
        }
    }

    /// Connections the engine holds (closing ones too, until their peer has the close).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Pool, admission and traffic figures, with each open connection's.
    pub fn stats(&self) -> EngineStats {
        let open = self.connections.iter().filter(|(_, c)| c.is_open());
        let mut ended = self.ended.clone();
        for conn in self.connections.values().filter(|c| !c.is_open()) {
            ended.accumulate(&connection_stats(conn));
        }
        EngineStats {
            ended,
            pool: self.pool.counters(),
            accepted: self.accepted,
            rejected: self.rejected,
            refused: self.admission.refused(),
            retried: self.admission.retried(),
            connections: open
                .map(|(&id, conn)| ConnectionEntry {
                    id,
                    idle: conn.session.is_idle(),
                    stats: connection_stats(conn),
                })
                .collect(),
        }
    }

    /// One open connection's traffic and path figures.
    pub fn connection_stats(&self, id: ConnId) -> Option<ConnectionStats> {
        self.connections.get(&id).map(|c| connection_stats(c))
    }

    /// Where connection `id` stands, while the engine holds it.
    pub fn connection_state(&self, id: ConnId) -> Option<ConnectionState> {
        let conn = self.connections.get(&id)?;
        Some(ConnectionState {
            open: conn.is_open(),
            going_away: conn.session.is_going_away(),
            idle: conn.session.is_idle(),
            serving: conn.session.serving(),
            remote: conn.link.remote_address(),
        })
    }

    /// Feeds the datagrams received since the last call, then lets every connection act.
    ///
    /// Returns whether the driver should send what is ready (the ACKs owed) before it hands
    /// the events to the application. After one datagram (a request, an answer) it should
    /// not: what the application answers at once then leaves with those ACKs and stream
    /// credit, in one datagram. After several (traffic streaming in) it should, as the
    /// sender's window waits on the ACKs, not on the application.
    pub fn receive(
        &mut self,
        now: Instant,
        datagrams: impl IntoIterator<Item = (SocketAddr, BytesMut)>,
    ) -> bool {
        self.at(now);
        let mut count = 0;
        for (remote, datagram) in datagrams {
            self.handle_datagram(now, remote, datagram);
            count += 1;
        }
        count > 1
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
        self.at(now);
        self.drive_pending();
        while let Some((to, datagram)) = self.responses.pop_front() {
            if !send(&datagram, to, None) {
                return;
            }
        }
        while let Some(&id) = self.sending.last() {
            if let Some(conn) = self.connections.get_mut(&id) {
                self.buf.clear();
                if let Some(quic) = conn.link.quic() {
                    while let Some(t) = quic.poll_transmit(now, max_segments, &mut self.buf) {
                        if !send(&self.buf[..t.size], t.destination, t.segment_size) {
                            return; // It stays in `sending`.
                        }
                        self.buf.clear();
                    }
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
        self.drive_pending();
        self.schedule_unsent();
        let first = self.timers.first().map(|t| t.0);
        first
            .into_iter()
            .chain(self.dials.values().map(|d| d.deadline))
            .chain(self.dials.values().filter_map(|d| d.fallback.map(|f| f.1)))
            .chain((!self.pool.is_empty()).then_some(self.next_sweep))
            .min()
    }

    /// Runs the timers that are due.
    pub fn on_timeout(&mut self, now: Instant) {
        self.at(now);
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
            if let Some(quic) = conn.link.quic() {
                if quic.poll_timeout().is_some_and(|t| t <= now) {
                    quic.handle_timeout(now);
                }
            }
            let mut out = Vec::new();
            conn.session.expire(&mut conn.link, now, &mut out);
            expired.extend(out.into_iter().map(|o| (id, o)));
            touch(&mut self.touched, id, conn);
        }
        for (id, outcome) in expired {
            self.report(now, id, outcome);
        }
        self.expire_dials(now);
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.drive_pending();
        if self.events.is_empty() {
            self.report_qlog();
        }
        self.events.pop_front()
    }

    /// Reports the TLS secrets logged while connection `id` was handled, as its own.
    pub(super) fn report_key_log(&mut self, id: ConnId) {
        let Some(lines) = &self.key_log else {
            return;
        };
        for line in lines.take() {
            self.events.push_back(Event::KeyLog { conn: id, line });
        }
    }

    /// Reports the qlog records written since the last call, of every traced connection.
    fn report_qlog(&mut self) {
        if !self.cfg.qlog {
            return;
        }
        for (&conn, c) in &self.connections {
            if let Some(records) = c.qlog.as_ref().and_then(|q| q.take()) {
                self.events.push_back(Event::Qlog { conn, records });
            }
        }
    }

    /// Whether `poll_event` has events to hand out.
    pub fn has_events(&mut self) -> bool {
        self.drive_pending();
        if self.events.is_empty() {
            self.report_qlog();
        }
        !self.events.is_empty()
    }
}

impl Engine {
    /// Files the deadlines of connections not through `poll_transmits` yet (the driver
    /// normally sends first), whose entries in `timers` may be stale.
    fn schedule_unsent(&mut self) {
        for &id in &self.sending {
            if let Some(conn) = self.connections.get_mut(&id) {
                schedule(&mut self.timers, id, conn);
            }
        }
    }

    fn closed_error(id: ConnId) -> Error {
        Error::closed(format!("connection {id} is closed"))
    }

    /// An open connection.
    fn open(&self, id: ConnId) -> Result<&Conn, Error> {
        self.connections
            .get(&id)
            .map(|c| &**c)
            .filter(|c| !c.reported)
            .ok_or_else(|| Self::closed_error(id))
    }

    /// Takes the time of a call: the latest the engine has been told.
    fn at(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Lets the connections that calls and datagrams moved act on it, and reports what
    /// happened. Calls only move connections; this runs once for all of them, when the
    /// driver next asks for datagrams, events or the next deadline.
    fn drive_pending(&mut self) {
        if !self.touched.is_empty() {
            self.drive(self.now);
        }
    }

    /// An open connection, to be moved by the caller (so it is touched).
    fn moved(&mut self, now: Instant, id: ConnId) -> Result<&mut Conn, Error> {
        self.at(now);
        let conn = self
            .connections
            .get_mut(&id)
            .filter(|c| !c.reported)
            .ok_or_else(|| Self::closed_error(id))?;
        touch(&mut self.touched, id, conn);
        Ok(conn)
    }

    /// Reports one thing that happened on connection `id`, keeping the pool's and the
    /// server's books.
    fn report(&mut self, now: Instant, id: ConnId, outcome: Outcome) {
        if let Some(&dial) = self.rivals.get(&id) {
            return self.rival_outcome(now, id, dial, outcome);
        }
        if matches!(outcome, Outcome::Ready(_) | Outcome::Failed(_))
            && self.settle_race(now, id, &outcome)
        {
            return; // its rival goes on under its id
        }
        let since = now - self.epoch;
        let event = match outcome {
            Outcome::Ready(negotiated) => {
                if let Some(key) = self.connections.get(&id).and_then(|c| c.key()) {
                    if self.cfg.early_data {
                        remember(&mut self.resumable, key, negotiated);
                    }
                }
                if let Some(dial) = self.dials.remove(&id) {
                    self.pool.finish_dial(dial.key, Some(id), since);
                    if self.next_sweep <= now {
                        self.next_sweep = now + self.sweep_period();
                    }
                } else if self.is_server() {
                    self.accepted += 1;
                }
                let (peer, max_datagram_size, carrier) = match self.connections.get_mut(&id) {
                    Some(c) => {
                        let prefix = c.session.datagram_prefix();
                        c.datagrams.update_max_size(&mut c.link, prefix);
                        let carrier = c.link.carrier();
                        (c.peer.clone(), c.datagrams.max_size, carrier)
                    }
                    None => ("".into(), 0, Carrier::Udp),
                };
                Event::Connected {
                    conn: id,
                    info: ConnectionInfo {
                        encoding: negotiated.encoding,
                        peer,
                        peer_max_message_size: negotiated.peer_max_message_size,
                        max_datagram_size,
                        carrier,
                    },
                }
            }
            Outcome::Failed(error) => {
                if let Some(dial) = self.dials.remove(&id) {
                    self.pool.finish_dial(dial.key, None, since);
                }
                let Some(conn) = self.connections.get_mut(&id) else {
                    return;
                };
                if conn.reported {
                    return;
                }
                conn.reported = true;
                let ready = conn.session.is_ready();
                if error.code == ErrorCode::Negotiation {
                    // Its 0-RTT data went on settings the server no longer has: the next
                    // connection makes a handshake first, and learns the new ones.
                    if let Some(key) = conn.key() {
                        self.resumable.remove(key);
                    }
                }
                if let Some(key) = conn.key() {
                    if self.pool.iter().any(|(k, h)| k == key && *h == id) {
                        let key = key.clone();
                        self.pool.take(&key);
                    }
                }
                if self.client.is_none() && !ready {
                    self.rejected += 1;
                }
                Event::Closed { conn: id, error }
            }
            Outcome::Message { body, early } => Event::Message {
                conn: id,
                body,
                early,
            },
            Outcome::Datagram(body) => Event::Datagram { conn: id, body },
            Outcome::Request {
                handle,
                body,
                early,
                trace,
            } => Event::Request {
                conn: id,
                handle,
                body,
                early,
                trace,
            },
            Outcome::Response { id: request, body } => Event::Response {
                conn: id,
                id: request,
                body,
            },
            Outcome::RequestFailed { id: request, error } => Event::RequestFailed {
                conn: id,
                id: request,
                error,
            },
            Outcome::RequestCancelled { handle } => Event::RequestCancelled { conn: id, handle },
            Outcome::Acked {
                priority,
                delivered,
            } => Event::Acked {
                conn: id,
                priority,
                delivered,
            },
            Outcome::Receipt {
                stream,
                delivered,
                early,
            } => Event::Receipt {
                conn: id,
                receipt: Receipt {
                    stream,
                    delivered,
                    early,
                },
            },
        };
        self.events.push_back(event);
    }

    fn insert(&mut self, now: Instant, id: ConnId, mut link: Link, peer: Arc<str>, origin: Origin) {
        let is_client = matches!(origin, Origin::Dialed(_));
        let mut session = Session::new(is_client, self.params.clone(), now);
        if !is_client {
            session.send_hello(&mut link);
        }
        let handle = link.handle();
        let mut conn = Conn {
            link,
            session,
            datagrams: Default::default(),
            datagrams_in: false,
            qlog: None,
            peer,
            origin,
            reported: false,
            touched: false,
            sending: false,
            deadline: None,
        };
        touch(&mut self.touched, id, &mut conn);
        self.connections.insert(id, Box::new(conn));
        if let Some(handle) = handle {
            self.ids.insert(handle, id);
        }
    }

    /// Closes a connection, reports it CLOSED (quinn-proto says nothing of a close it was
    /// asked for) and forgets it in the pool.
    fn close_conn(&mut self, now: Instant, id: ConnId, code: u32, reason: &str) {
        self.drop_rival(now, id);
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        conn.link.close(now, code, reason);
        touch(&mut self.touched, id, conn);
        let mut out = Vec::new();
        let err = Error::closed(format!("connection to {} was closed ({reason})", conn.peer));
        conn.session.fail_all(&err, &mut out);
        out.push(Outcome::Failed(err));
        for outcome in out {
            self.report(now, id, outcome);
        }
    }

    /// Closes a connection without reporting it: the loser of a race (`connect_racing`).
    fn close_quietly(&mut self, now: Instant, id: ConnId, reason: &str) {
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        conn.reported = true;
        conn.link.close(now, app_code::NO_ERROR, reason);
        touch(&mut self.touched, id, conn);
    }

    /// The connection under `from` goes on under `to`, and the one under `to` (if any)
    /// under `from`: a rival that won a race takes its dial's id, which `connect` returned.
    fn rename(&mut self, from: ConnId, to: ConnId) {
        let moving = self.connections.remove(&from);
        let other = self.connections.remove(&to);
        for (id, conn) in [(to, moving), (from, other)] {
            let Some(mut conn) = conn else {
                continue;
            };
            if let Some(handle) = conn.link.handle() {
                self.ids.insert(handle, id);
            }
            // Filed anew under its new id: its timer, and the lists a call puts it on.
            if let Some(old) = conn.deadline.take() {
                self.timers.remove(&(old, if id == to { from } else { to }));
            }
            conn.touched = false;
            conn.sending = true;
            self.sending.push(id);
            touch(&mut self.touched, id, &mut conn);
            self.connections.insert(id, conn);
        }
        self.renamed.insert(from, to);
        self.renamed.insert(to, from);
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
            if let Link::Quic { handle, conn: quic } = &mut conn.link {
                while let Some(event) = quic.poll_endpoint_events() {
                    if let Some(back) = self.endpoint.handle_event(*handle, event) {
                        quic.handle_event(back);
                    }
                }
            }
            let mut out = Vec::new();
            let mut streams = false;
            let mut lost = None;
            while let Some(event) = conn.link.poll_event() {
                match event {
                    LinkEvent::Connected => {
                        conn.session.on_handshake(&mut conn.link, now, &mut out);
                        conn.session.send_hello(&mut conn.link);
                        streams = true;
                    }
                    LinkEvent::Finished(id) => {
                        conn.session.on_finished(id);
                        streams = true;
                    }
                    LinkEvent::Stopped(id) => {
                        conn.session.on_stopped(id, &mut out);
                        streams = true;
                    }
                    LinkEvent::Streams => streams = true,
                    LinkEvent::Lost(error) => lost = Some(error),
                    LinkEvent::DatagramIn => conn.datagrams_in = true,
                    LinkEvent::DatagramsUnblocked => conn.datagrams.flush(&mut conn.link),
                }
            }
            // Take what already arrived (an answer, then the close) before the loss.
            if streams && !conn.reported {
                conn.session.on_streams(&mut conn.link, now, &mut out);
            }
            // Datagrams once the connection is negotiated (they may overtake the HELLO).
            if conn.datagrams_in && conn.session.is_ready() && !conn.reported {
                conn.datagrams_in = false;
                let mut bodies = Vec::new();
                let prefix = conn.session.datagram_prefix();
                conn.datagrams.receive(&mut conn.link, &mut bodies, prefix);
                out.extend(bodies.into_iter().map(Outcome::Datagram));
            }
            if let Some(err) = lost.filter(|_| !conn.reported) {
                conn.session.fail_all(&err, &mut out);
                out.push(Outcome::Failed(err));
            }
            reports.extend(out.into_iter().map(|o| (id, o)));
            if let Link::Web(web) = &mut conn.link {
                self.web_out.extend(web.take_commands().map(|c| (id, c)));
            }
            if conn.link.is_drained() {
                drained.push(id);
            }
        }
        // The list back, for the next calls to fill without allocating (with any connection
        // touched meanwhile, for the next drive).
        let mut touched = touched;
        touched.clear();
        touched.append(&mut self.touched);
        self.touched = touched;
        self.renamed.clear();
        for (id, outcome) in reports {
            // A race settled by an earlier report here may have moved the connection.
            let id = self.renamed.get(&id).copied().unwrap_or(id);
            self.report(now, id, outcome);
        }
        for id in drained {
            let id = self.renamed.get(&id).copied().unwrap_or(id);
            if !self
                .connections
                .get(&id)
                .is_some_and(|c| c.link.is_drained())
            {
                continue;
            }
            let Some(conn) = self.connections.remove(&id) else {
                continue;
            };
            self.ended.accumulate(&connection_stats(&conn));
            if let Some(records) = conn.qlog.as_ref().and_then(|q| q.take()) {
                self.events.push_back(Event::Qlog { conn: id, records });
            }
            if let Some(handle) = conn.link.handle() {
                self.ids.remove(&handle);
            }
            if let Some(deadline) = conn.deadline {
                self.timers.remove(&(deadline, id));
            }
            if let Origin::Accepted(ip) = conn.origin {
                self.admission.release(ip);
            }
        }
    }
}

/// How many servers a client keeps 0-RTT settings for (as many as it keeps tickets for).
const RESUMABLE: usize = 256;

/// Keeps what a connection to `key` agreed, for the next one's 0-RTT data; past
/// [`RESUMABLE`] servers, an arbitrary other one is forgotten (it resumes with 1-RTT).
fn remember(resumable: &mut HashMap<PoolKey, Negotiated>, key: &PoolKey, negotiated: Negotiated) {
    if resumable.len() >= RESUMABLE && !resumable.contains_key(key) {
        if let Some(other) = resumable.keys().next().cloned() {
            resumable.remove(&other);
        }
    }
    resumable.insert(key.clone(), negotiated);
}

/// A connection's figures: the session's counters and quinn's path figures.
fn connection_stats(conn: &Conn) -> ConnectionStats {
    let Link::Quic { conn: quic, .. } = &conn.link else {
        return ConnectionStats {
            peer: conn.peer.to_string(),
            carrier: conn.link.carrier(),
            streams_open: conn.session.streams_open(),
            datagrams_out: conn.datagrams.counters.sent,
            datagrams_in: conn.datagrams.counters.received,
            datagrams_dropped: conn.datagrams.counters.dropped,
            datagrams_lost: conn.datagrams.counters.lost,
            max_datagram_size: conn.datagrams.max_size,
            ..conn.session.counters.clone()
        };
    };
    let q = quic.stats();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    ConnectionStats {
        peer: conn.peer.to_string(),
        carrier: conn.link.carrier(),
        streams_open: conn.session.streams_open(),
        rtt_ms: ms(q.path.rtt),
        min_rtt_ms: ms(q.path.min_rtt),
        lost_packets: q.path.lost_packets,
        lost_bytes: q.path.lost_bytes,
        udp_tx: q.udp_tx.datagrams,
        udp_rx: q.udp_rx.datagrams,
        cwnd: q.path.cwnd,
        congestion_events: q.path.congestion_events,
        mtu: q.path.current_mtu.into(),
        congestion_control: controller(quic),
        datagrams_out: conn.datagrams.counters.sent,
        datagrams_in: conn.datagrams.counters.received,
        datagrams_dropped: conn.datagrams.counters.dropped,
        datagrams_lost: conn.datagrams.counters.lost,
        max_datagram_size: conn.datagrams.max_size,
        // A server that derived 0-RTT keys took the client's early data.
        zero_rtt_accepted: match conn.origin {
            Origin::Accepted(_) => u64::from(quic.has_0rtt()),
            Origin::Dialed(_) => conn.session.counters.zero_rtt_accepted,
        },
        ..conn.session.counters.clone()
    }
}

/// The controller a connection runs, as quinn-proto has it.
fn controller(quic: &quinn_proto::Connection) -> CongestionControl {
    use quinn_proto::congestion::{Bbr, NewReno};
    let running = quic.congestion_state().clone_box().into_any();
    if running.is::<Bbr>() {
        CongestionControl::Bbr
    } else if running.is::<NewReno>() {
        CongestionControl::NewReno
    } else {
        CongestionControl::Cubic
    }
}
