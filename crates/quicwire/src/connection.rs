//! One quicwire connection as the application holds it, on either side: sends resolve once
//! the peer's application has the messages, requests once their answer came, and what the
//! peer sends reaches the endpoint's [`Handler`]. The protocol itself is the engine's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quicwire_core::{ConnectionStats, Encoding, Error, Result};
pub use quicwire_engine::{Receipt, RequestOptions, SendOptions};

use crate::endpoint::{ConnState, Endpoint};

/// Where a send's last message is: delivered once the lane's acknowledged count
/// ([`Connection::acked`]) reaches `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub priority: i32,
    pub seq: u64,
}

/// What the application gets from its connections. Calls come from the endpoint's driver
/// task and must not block; hand work off (a channel, a spawned task) and return.
pub trait Handler: Send + Sync + 'static {
    /// A connection finished its handshake (either side). Comes before any other call
    /// for that connection.
    fn on_connection(&self, _conn: &Connection) {}
    /// Messages read off a channel stream, in order. Called once per received batch. The
    /// sender's `send` resolves only once the handler passes `receipt` to
    /// [`Connection::acknowledge`]: do so when the application has the messages.
    /// `receipt.early`: they came as 0-RTT data, which an attacker may have replayed.
    fn on_messages(&self, conn: &Connection, messages: Vec<Bytes>, receipt: Receipt);
    /// A request to answer with [`IncomingRequest::respond`].
    fn on_request(&self, request: IncomingRequest);
    /// An unreliable datagram from the peer ([`Connection::send_datagram`]).
    fn on_datagram(&self, _conn: &Connection, _body: Bytes) {}
    /// A TLS secret as an `SSLKEYLOGFILE` line, with `TransportConfig::key_log` on: append
    /// the lines to a file, and Wireshark decrypts a capture of the traffic.
    fn on_key_log(&self, _line: &str) {}
    /// qlog records (JSON-SEQ, whole records) of the connection with this `id`
    /// ([`Connection::id`]; the trace starts before the connection is ready), with
    /// `TransportConfig::qlog` on: append each connection's to a `.sqlog` file for qvis.
    /// The last may come after the connection closed.
    fn on_qlog(&self, _id: u64, _records: &[u8]) {}
    /// The peer has now received `delivered` of the messages this side sent on the lane
    /// of `priority`.
    fn on_acked(&self, _conn: &Connection, _priority: i32, _delivered: u64) {}
    /// The connection closed; every later call on it fails with `reason`'s code.
    fn on_closed(&self, _conn: &Connection, _reason: &Error) {}
}

/// A negotiated quicwire connection. Cheap to clone; all clones are the same connection.
#[derive(Clone)]
pub struct Connection {
    state: Arc<ConnState>,
    endpoint: Arc<Endpoint>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id())
            .field("peer", &self.peer())
            .field("encoding", &self.encoding())
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(state: Arc<ConnState>, endpoint: Arc<Endpoint>) -> Connection {
        Connection { state, endpoint }
    }

    /// Unique in the process and never reused.
    pub fn id(&self) -> u64 {
        self.state.id.get()
    }

    /// The peer: `host:port` as dialed (client side) or its socket address (server side).
    pub fn peer(&self) -> &str {
        &self.state.info.peer
    }

    /// The peer's address: where it was when the connection opened, and where it is now
    /// once a client moved (connection migration, or a NAT that gave it another port).
    pub fn remote_address(&self) -> SocketAddr {
        let id = self.state.id;
        let now = self
            .endpoint
            .shared
            .read(|st| st.engine.connection_state(id).map(|s| s.remote));
        now.unwrap_or(self.state.remote)
    }

    /// The negotiated encoding of message bodies.
    pub fn encoding(&self) -> Encoding {
        self.state.info.encoding
    }

    /// The largest body the peer accepts (bodies we send must fit).
    pub fn peer_max_message_size(&self) -> u64 {
        self.state.info.peer_max_message_size
    }

    /// The largest datagram this side could send when the connection opened (0: the peer
    /// takes none); [`Connection::stats`] has the current one.
    pub fn max_datagram_size(&self) -> u64 {
        self.state.info.max_datagram_size
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&Error> {
        self.state.closed.get()
    }

    pub fn is_closed(&self) -> bool {
        self.state.closed.get().is_some()
    }

    /// The peer sent GOAWAY: finish what is in flight, start nothing new here.
    pub fn is_going_away(&self) -> bool {
        self.engine_state(|s| s.going_away)
    }

    /// Nothing in flight: no open request either way, every message acknowledged.
    pub fn is_idle(&self) -> bool {
        self.engine_state(|s| s.idle)
    }

    /// The peer's requests being read or answered now.
    pub fn in_flight(&self) -> u64 {
        self.engine_state(|s| s.serving as u64)
    }

    /// Traffic and path figures.
    pub fn stats(&self) -> ConnectionStats {
        let id = self.state.id;
        let shared = &self.endpoint.shared;
        shared
            .read(|st| st.engine.connection_stats(id))
            .unwrap_or_else(|| ConnectionStats {
                peer: self.peer().to_string(),
                ..Default::default()
            })
    }

    fn engine_state<T: Default>(
        &self,
        f: impl FnOnce(&quicwire_engine::ConnectionState) -> T,
    ) -> T {
        let id = self.state.id;
        self.endpoint
            .shared
            .read(|st| st.engine.connection_state(id).map(|s| f(&s)))
            .unwrap_or_default()
    }

    /// Queues messages in order on their lane (all of them, or none and an error); where
    /// the last is, delivered once [`Self::acked`] reaches it. Past the lane's send buffer
    /// (`send_buffer_high` bytes unacknowledged, and as many waiting) it fails with
    /// ERR_FLOW_CONTROL_PAUSED.
    pub fn enqueue(&self, bodies: &[&[u8]], options: SendOptions) -> Result<Queued> {
        self.check_open()?;
        let id = self.state.id;
        let priority = options.priority;
        let seq = self.endpoint.shared.call(|st, now| {
            let mut outbox = st.engine.outbox(id, options)?;
            for body in bodies {
                outbox.push(body)?;
            }
            st.engine.send(now, id, &mut outbox)
        })?;
        Ok(Queued { priority, seq })
    }

    /// Sends one message and waits until the peer's application has it.
    pub async fn send(&self, body: &[u8]) -> Result<()> {
        self.send_batch(&[body]).await
    }

    /// Sends messages in order; resolves when all were delivered.
    pub async fn send_batch(&self, bodies: &[&[u8]]) -> Result<()> {
        self.send_batch_with(bodies, SendOptions::default()).await
    }

    /// [`Self::send_batch`] on the lane of `options.priority`; with `options.unconfirmed`,
    /// returns once they are queued to go, without waiting for the peer's ACK.
    pub async fn send_batch_with(&self, bodies: &[&[u8]], options: SendOptions) -> Result<()> {
        let queued = self.enqueue(bodies, options)?;
        if options.unconfirmed {
            return Ok(());
        }
        self.delivered(queued).await
    }

    /// Waits until the peer acknowledged the message `queued` names, or fails when the
    /// connection closes first (the message may or may not have arrived).
    pub async fn delivered(&self, queued: Queued) -> Result<()> {
        let mut acked = self.state.acked.subscribe();
        let closed = self.closed();
        tokio::pin!(closed);
        let Queued { priority, seq } = queued;
        tokio::select! {
            r = acked.wait_for(|a| lane_acked(a, priority) >= seq) => {
                r.map(|_| ()).map_err(|_| self.closed_error())
            }
            e = &mut closed => Err(Error::closed(format!(
                "{}; message {seq} of lane {priority} may not have been delivered", e.message
            ))),
        }
    }

    /// Messages the peer has acknowledged so far on the lane of `priority`.
    pub fn acked(&self, priority: i32) -> u64 {
        lane_acked(&self.state.acked.borrow(), priority)
    }

    /// Sends a request on a fresh stream and waits for the answer (up to the configured
    /// request timeout). A handler error on the peer comes back as ERR_REMOTE.
    pub async fn request(&self, body: &[u8]) -> Result<Bytes> {
        self.request_with(body, RequestOptions::default()).await
    }

    /// [`Self::request`] with its own timeout.
    pub async fn request_with_timeout(&self, body: &[u8], timeout: Duration) -> Result<Bytes> {
        let timeout = Some(timeout);
        self.request_with(
            body,
            RequestOptions {
                timeout,
                ..Default::default()
            },
        )
        .await
    }

    /// [`Self::request`] with its own timeout and priority.
    pub async fn request_with(&self, body: &[u8], options: RequestOptions) -> Result<Bytes> {
        self.check_open()?;
        let body = Bytes::copy_from_slice(body);
        self.endpoint
            .shared
            .request(self.state.id, body, options)
            .await
    }

    /// Tells the peer that the messages up to `receipt` reached the application.
    pub fn acknowledge(&self, receipt: Receipt) {
        let id = self.state.id;
        self.endpoint
            .shared
            .call(|st, now| st.engine.acknowledge(now, id, receipt));
    }

    /// Sends an unreliable datagram: it may be lost, is never retransmitted and never waits
    /// behind a lost packet. Returns once it is queued; while the connection cannot send,
    /// it waits in a bounded queue that drops its oldest when full
    /// ([`crate::engine::DATAGRAM_QUEUE`]). ERR_MESSAGE_TOO_LARGE past
    /// [`Self::max_datagram_size`].
    pub fn send_datagram(&self, body: &[u8]) -> Result<()> {
        self.check_open()?;
        let id = self.state.id;
        self.endpoint
            .shared
            .call(|st, now| st.engine.send_datagram(now, id, body))
    }

    /// Closes the connection (requests in flight fail, unacknowledged sends fail).
    pub fn close(&self) {
        let id = self.state.id;
        self.endpoint
            .shared
            .call(|st, now| st.engine.disconnect(now, id));
    }

    /// Resolves once the connection is closed, with why.
    pub async fn closed(&self) -> Error {
        loop {
            let notified = self.state.closed_notify.notified();
            if let Some(e) = self.state.closed.get() {
                return e.clone();
            }
            notified.await;
        }
    }

    fn check_open(&self) -> Result<()> {
        match self.state.closed.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn closed_error(&self) -> Error {
        self.state
            .closed
            .get()
            .cloned()
            .unwrap_or_else(|| Error::closed(format!("connection to {} is closed", self.peer())))
    }
}

/// A request from the peer. Answer it with [`respond`](Self::respond); dropping it unanswered
/// resets its stream, so the requester gets ERR_STREAM_RESET instead of waiting.
pub struct IncomingRequest {
    conn: Connection,
    request: Incoming,
    answered: bool,
}

/// A request as the engine reported it.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub handle: u64,
    pub body: Bytes,
    pub early: bool,
    pub trace: Option<Bytes>,
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("conn", &self.conn)
            .field("handle", &self.request.handle)
            .field("len", &self.request.body.len())
            .finish()
    }
}

impl IncomingRequest {
    pub(crate) fn new(conn: Connection, request: Incoming) -> IncomingRequest {
        IncomingRequest {
            conn,
            request,
            answered: false,
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.request.body
    }

    /// It came as 0-RTT data (`TransportConfig::early_data`), before the client finished
    /// its handshake: an attacker may have replayed it. Act on it only if that is harmless.
    pub fn is_early(&self) -> bool {
        self.request.early
    }

    /// The requester's trace context (`RequestOptions::trace`), if it sent one: W3C Trace
    /// Context in the binary form of docs/PROTOCOL.md, section 6b.
    pub fn trace(&self) -> Option<&Bytes> {
        self.request.trace.as_ref()
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Sends the answer: a RESPONSE, or for `Err` an ERROR frame with its code and text.
    /// A response over the requester's limit is replaced by ERR_MESSAGE_TOO_LARGE. Fails
    /// when the answer cannot go (the requester stopped waiting, the connection closed).
    pub async fn respond(mut self, answer: std::result::Result<&[u8], Error>) -> Result<()> {
        self.answered = true;
        let (id, handle) = (self.conn.state.id, self.request.handle);
        self.conn
            .endpoint
            .shared
            .call(|st, now| st.engine.respond(now, id, handle, answer))
    }
}

impl Drop for IncomingRequest {
    fn drop(&mut self) {
        if !self.answered {
            let (id, handle) = (self.conn.state.id, self.request.handle);
            self.conn
                .endpoint
                .shared
                .call(|st, now| st.engine.reset_request(now, id, handle));
        }
    }
}

/// A lane's acknowledged count in a connection's list of them.
fn lane_acked(lanes: &[(i32, u64)], priority: i32) -> u64 {
    lanes
        .iter()
        .find(|(p, _)| *p == priority)
        .map_or(0, |(_, n)| *n)
}
