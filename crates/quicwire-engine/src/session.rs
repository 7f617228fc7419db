//! The quicwire session on one quinn-proto connection, sans I/O. Frames, negotiation and
//! limits come from quicwire-core; this module only moves their bytes through quinn-proto's
//! streams, the same shape as the native runtime:
//! - each side's first unidirectional stream is its control stream: HELLO (sent at once,
//!   a server's as 0.5-RTT data), then ACK and GOAWAY frames;
//! - each side sends messages on a unidirectional channel stream per lane (send priority:
//!   the stream's, so a higher lane's messages pass a lower one's); the receiver ACKs each
//!   lane's once handed to the application: at once for a MESSAGE, within
//!   [`LAZY_ACK_DELAY`] for a LAZY_MESSAGE (whose sender does not wait for it);
//! - every request has its own bidirectional stream.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::{Bytes, BytesMut};
use quicwire_core::config::{grown_stream_credit, initial_stream_credit, MAX_LANES};
use quicwire_core::frame::{self, Frame, FrameReader};
use quicwire_core::{
    alpn_version, app_code, ConnectionStats, Encoding, Error, ErrorCode, Hello, Negotiated,
    TransportConfig, PROTOCOL_VERSION, WEBTRANSPORT_VERSION,
};
use quinn_proto::{Dir, StreamId};
use web_time::{Duration, Instant};

use crate::outbox::{Outbox, SendBuffer, SendOptions};
use crate::streams::{Read, Streams};
use crate::webtransport::{self, Change, WebTransport};

/// How long an ACK for LAZY_MESSAGE frames alone may wait: to go with a later one, and to
/// send fewer packets. Its sender resolved them already; the ACK only frees its window (and
/// lets the connection count as idle).
pub const LAZY_ACK_DELAY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub max_message_size: u64,
    pub encodings: Vec<Encoding>,
    pub request_timeout: Duration,
    /// The most requests the peer may have in progress at once (stream credit grows to it).
    pub max_streams: u32,
    /// Unacknowledged message bytes before sends wait (and as many again before they fail).
    pub send_buffer_high: u64,
    /// 0-RTT (`TransportConfig::early_data`): a server reads what comes before the handshake
    /// is done.
    pub early_data: bool,
    /// A server: the WebTransport sessions it accepts (ALPN `h3`).
    pub webtransport: Option<std::sync::Arc<crate::config::WebTransportConfig>>,
}

/// What a session reports to its engine.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Negotiated: the connection is ready.
    Ready(Negotiated),
    /// The connection is being closed with this error.
    Failed(Error),
    /// `early`: it came as 0-RTT data, before the client finished its handshake.
    Message {
        body: Bytes,
        early: bool,
    },
    /// An unreliable datagram from the peer.
    Datagram(Bytes),
    /// A request to answer with [`Session::respond`] and its `handle`; `early` when it came
    /// before the client finished its handshake (0-RTT data, which an attacker can replay).
    Request {
        handle: u64,
        body: Bytes,
        early: bool,
        /// Its trace context (a TRACE frame before it; protocol version 2).
        trace: Option<Bytes>,
    },
    Response {
        id: u64,
        body: Bytes,
    },
    RequestFailed {
        id: u64,
        error: Error,
    },
    /// The requester of the request with this handle stopped waiting (it gave up, or its
    /// timeout passed) before it was answered: the handler may stop. Its answer, if any,
    /// still goes to `respond`, which reports that it could not be sent.
    RequestCancelled {
        handle: u64,
    },
    /// The peer's application has this many of our messages on the lane of `priority`.
    Acked {
        priority: i32,
        delivered: u64,
    },
    /// The peer's messages on `stream` up to `delivered` were handed over; acknowledge them
    /// with [`Session::acknowledge`] once the application has them.
    Receipt {
        stream: u64,
        delivered: u64,
        early: bool,
    },
}

/// A request we sent, waiting for its answer.
#[derive(Debug)]
struct Outgoing {
    id: u64,
    wire_id: u64,
    answer: FrameReader,
    deadline: Instant,
    timeout: Duration,
}

/// A peer request still being read.
#[derive(Debug)]
struct Incoming {
    reader: FrameReader,
    /// When the whole request must be in.
    deadline: Instant,
    /// Its stream came before the client finished its handshake (0-RTT).
    early: bool,
    /// The trace context a TRACE frame gave it.
    trace: Option<Bytes>,
}

/// A request waiting for a stream (the peer's stream limit is reached).
#[derive(Debug)]
struct Waiting {
    id: u64,
    body: Bytes,
    deadline: Instant,
    timeout: Duration,
    priority: i32,
    /// It may go as 0-RTT data (the application said it is safe to repeat).
    idempotent: bool,
    trace: Option<Bytes>,
}

/// Our messages of one send priority: its channel stream, in order.
#[derive(Debug)]
struct Lane {
    priority: i32,
    /// Its channel stream, opened with the lane's first write, and the stream's channel
    /// number, which the peer's ACKs name (see [`Session::open`]).
    channel: Option<(StreamId, u64)>,
    /// Messages accepted for the lane so far (sent, or held by `buffer`), and how many of
    /// them the peer acknowledged.
    queued: u64,
    acked: u64,
    buffer: SendBuffer,
    /// Frames sent while our data goes as 0-RTT that may not go as such: they go after the
    /// handshake, in order.
    held: Vec<Bytes>,
}

impl Lane {
    fn stream(&self) -> Option<StreamId> {
        self.channel.map(|(stream, _)| stream)
    }
}

/// A stream we opened while our data went as 0-RTT, and everything written on it: a server
/// that turns 0-RTT data down has none of it, and it is all written again.
#[derive(Debug)]
struct EarlyStream {
    id: StreamId,
    priority: i32,
    chunks: Vec<Bytes>,
    finish: bool,
}

/// A peer's channel stream being read.
#[derive(Debug)]
struct Channel {
    reader: FrameReader,
    /// Its messages handed over so far.
    delivered: u64,
    /// Its channel number, which our ACKs name.
    number: u64,
    /// MESSAGE frames (not LAZY_MESSAGE) handed over whose ACK is still to go: the count
    /// through the first of them and through the last (0, 0: none). An ACK that covers the
    /// first goes at once.
    waiting: (u64, u64),
}

#[derive(Debug, Default)]
struct Pending {
    chunks: VecDeque<Bytes>,
    finish: bool,
}

#[derive(Debug)]
pub(crate) struct Session {
    is_client: bool,
    params: Params,
    /// The wire protocol version of the connection (its ALPN's), set when our HELLO goes.
    version: u64,
    /// Set once both HELLOs are known.
    negotiated: Option<Negotiated>,
    /// Our control stream, once our HELLO is on it.
    control: Option<StreamId>,
    /// The peer's control stream (its first uni stream) and its bytes not yet decoded.
    peer_control: Option<StreamId>,
    control_in: FrameReader,
    /// Our channel streams, one per send priority used (at most [`MAX_LANES`]).
    lanes: Vec<Lane>,
    /// Client, while its data goes as 0-RTT: the server's settings as the last connection
    /// to it agreed them, until its HELLO confirms them.
    assumed: Option<Negotiated>,
    /// Client, while its data goes as 0-RTT: the streams it opened, in order.
    early: Option<Vec<EarlyStream>>,
    /// Peer channels: their frames being read, and messages delivered.
    channels_in: HashMap<StreamId, Channel>,
    acks_due: Vec<(u64, u64)>,
    /// When `acks_due`, none of them for a MESSAGE, must go.
    lazy_acks_at: Option<Instant>,
    requests_out: HashMap<StreamId, Outgoing>,
    /// Requests not yet on a stream (the peer's stream limit was reached).
    requests_waiting: VecDeque<Waiting>,
    next_wire_id: u64,
    /// Peer requests still being read, with the deadline for the whole request.
    requests_in: HashMap<StreamId, Incoming>,
    /// Request streams the peer may open now (grows with use up to `params.max_streams`).
    stream_limit: u32,
    /// Requests handed to the application and not answered yet, by handle (the index of
    /// their stream, which no later stream of the connection has): stream, wire id.
    answering: HashMap<u64, (StreamId, u64)>,
    /// Answers sent but not yet acknowledged by the peer (graceful close waits for them).
    responding: HashSet<StreamId>,
    /// Streams whose one frame was read and whose end (FIN) is still to come.
    ending: Vec<StreamId>,
    /// Bytes waiting for flow control, per stream (FIN after them when `finish`).
    pending: HashMap<StreamId, Pending>,
    going_away: bool,
    goaway_sent: bool,
    pub last_active: Instant,
    /// A server's connection over WebTransport (ALPN `h3`): the session's streams are
    /// wrapped in it.
    wt: Option<WebTransport>,
    /// Traffic counters (the path figures are filled in when stats are read).
    pub counters: ConnectionStats,
}

/// How a request goes.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// The connection's request timeout when None.
    pub timeout: Option<Duration>,
    /// Its stream's send priority (higher first).
    pub priority: i32,
    /// Safe to repeat: it may go as 0-RTT data, which an attacker can replay.
    pub idempotent: bool,
    /// Its trace context, for the peer's span to be a child of the caller's: opaque bytes
    /// here, W3C Trace Context in the form docs/PROTOCOL.md gives (at most
    /// [`frame::MAX_TRACE_CONTEXT`]). Dropped on a connection of protocol version 1.
    pub trace: Option<Bytes>,
}

impl Params {
    pub fn new(cfg: &TransportConfig, encodings: Vec<Encoding>) -> Params {
        Params {
            max_message_size: cfg.max_message_size,
            encodings,
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            max_streams: cfg.max_concurrent_streams,
            send_buffer_high: cfg.send_buffer_high,
            early_data: cfg.early_data,
            webtransport: None,
        }
    }
}

impl Session {
    pub fn new(is_client: bool, params: Params, now: Instant) -> Self {
        let stream_limit = initial_stream_credit(params.max_streams);
        let control_in = FrameReader::new(params.max_message_size);
        Session {
            is_client,
            params,
            negotiated: None,
            control: None,
            peer_control: None,
            control_in,
            lanes: Vec::new(),
            version: PROTOCOL_VERSION,
            assumed: None,
            early: None,
            channels_in: HashMap::new(),
            acks_due: Vec::new(),
            lazy_acks_at: None,
            requests_out: HashMap::new(),
            requests_waiting: VecDeque::new(),
            next_wire_id: 1,
            requests_in: HashMap::new(),
            stream_limit,
            answering: HashMap::new(),
            responding: HashSet::new(),
            pending: HashMap::new(),
            ending: Vec::new(),
            going_away: false,
            goaway_sent: false,
            last_active: now,
            wt: None,
            counters: ConnectionStats::default(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.negotiated.is_some()
    }

    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    pub fn is_going_away(&self) -> bool {
        self.going_away
    }

    /// Nothing in flight: no open request either way, every message acknowledged.
    pub fn is_idle(&self) -> bool {
        self.requests_out.is_empty()
            && self.requests_waiting.is_empty()
            && self.requests_in.is_empty()
            && self.answering.is_empty()
            && self.lanes.iter().all(|l| l.acked >= l.queued)
    }

    /// Requests from the peer still being read or answered.
    pub fn serving(&self) -> usize {
        self.requests_in.len() + self.answering.len() + self.responding.len()
    }

    /// All of a stream's data reached the peer.
    pub fn on_finished(&mut self, id: StreamId) {
        self.responding.remove(&id);
    }

    /// The peer asked us to stop sending on `id`: for a request we are answering, its
    /// requester stopped waiting.
    pub fn on_stopped(&mut self, id: StreamId, out: &mut Vec<Outcome>) {
        let handle = id.index();
        if self
            .answering
            .get(&handle)
            .is_some_and(|(stream, _)| *stream == id)
        {
            out.push(Outcome::RequestCancelled { handle });
        }
    }

    /// Streams open now: our channels and requests in flight.
    pub fn streams_open(&self) -> u64 {
        let channels = self.lanes.iter().filter(|l| l.channel.is_some()).count();
        (channels + self.requests_out.len() + self.serving()) as u64
    }

    /// Asks the peer to start nothing new here (a closing server).
    pub fn go_away(&mut self, conn: &mut impl Streams) {
        let Some(control) = self.control else { return };
        if self.goaway_sent || self.negotiated.is_none() {
            return;
        }
        self.goaway_sent = true;
        let mut bytes = BytesMut::new();
        frame::put_goaway(&mut bytes);
        self.write(conn, control, bytes.freeze(), false);
    }

    /// Client resuming a session whose server takes 0-RTT data: ready now, on the settings
    /// the last connection to that server agreed (`assumed`), its HELLO and idempotent
    /// requests going as 0-RTT data. Checked against the server's HELLO once it comes.
    pub fn start_early(&mut self, conn: &mut impl Streams, assumed: Negotiated) {
        self.early = Some(Vec::new());
        self.assumed = Some(assumed);
        self.negotiated = Some(assumed);
        self.send_hello(conn);
    }

    /// The client's handshake is done: if the server turned our 0-RTT data down, it has none
    /// of it, and every stream is opened and written again, in the same order (so with the
    /// same ids). Then the messages and requests held for the handshake go.
    pub fn on_handshake(&mut self, conn: &mut impl Streams, now: Instant, out: &mut Vec<Outcome>) {
        if let Err(e) = self.replay_early(conn) {
            out.push(self.fail(conn, now, e));
        }
    }

    fn replay_early(&mut self, conn: &mut impl Streams) -> Result<(), Error> {
        let codes = self.codes();
        let Some(streams) = self.early.take() else {
            return Ok(());
        };
        if conn.accepted_0rtt() {
            self.counters.zero_rtt_accepted = 1;
        } else {
            self.counters.zero_rtt_rejected = 1;
            for mut early in streams {
                if conn.open(early.id.dir()) != Some(early.id) {
                    return Err(Error::new(
                        ErrorCode::Internal,
                        "the server turned 0-RTT data down, and a stream could not be opened again",
                    ));
                }
                self.pending.remove(&early.id);
                if early.priority != 0 {
                    conn.set_priority(early.id, early.priority);
                }
                let live = Some(early.id) == self.control
                    || self.requests_out.contains_key(&early.id)
                    || self.lanes.iter().any(|l| l.stream() == Some(early.id));
                if live {
                    self.write_chunks(conn, early.id, &mut early.chunks, early.finish);
                } else {
                    // Given up meanwhile (timed out, cancelled): reset again.
                    conn.reset(early.id, codes.wire(app_code::CANCELLED));
                }
            }
        }
        for at in 0..self.lanes.len() {
            let mut held = std::mem::take(&mut self.lanes[at].held);
            if !held.is_empty() {
                let stream = self.lane_stream(conn, at)?;
                self.write_chunks(conn, stream, &mut held, false);
            }
        }
        self.start_requests(conn);
        Ok(())
    }

    fn hello(&self) -> Hello {
        Hello::new(self.params.encodings.clone(), self.params.max_message_size)
            .at_version(self.version)
    }

    /// The protocol version the handshake settled on (its ALPN); while a client's data goes
    /// as 0-RTT, the one its last connection to that server had.
    fn wire_version(&self, conn: &impl Streams) -> u64 {
        if let Some(assumed) = self.assumed {
            return assumed.version;
        }
        // `h3` (WebTransport) names no version.
        conn.alpn()
            .as_deref()
            .and_then(alpn_version)
            .unwrap_or(WEBTRANSPORT_VERSION)
    }

    /// Opens our control stream with our HELLO, once: a server as soon as it accepts (the
    /// HELLO leaves with its TLS flight), a client when TLS is done.
    pub fn send_hello(&mut self, conn: &mut impl Streams) {
        if self.control.is_some() || !self.start_webtransport(conn) {
            return;
        }
        let Some((id, _)) = self.open(conn, Dir::Uni) else {
            return;
        };
        self.control = Some(id);
        self.version = self.wire_version(conn);
        let mut out = BytesMut::new();
        frame::put_hello(&mut out, &self.hello());
        self.write(conn, id, out.freeze(), false);
    }

    /// A server's connection that chose `h3` starts WebTransport; false until its session
    /// is open (the HELLO waits for it).
    fn start_webtransport(&mut self, conn: &mut impl Streams) -> bool {
        if let Some(wt) = &self.wt {
            return wt.is_open();
        }
        let Some(accepts) = self.params.webtransport.clone().filter(|_| !self.is_client) else {
            return true;
        };
        if conn.alpn().as_deref() != Some(webtransport::ALPN_H3) {
            return true;
        }
        let mut writes = Vec::new();
        self.wt = Some(WebTransport::start(
            conn,
            accepts,
            self.last_active,
            &mut writes,
        ));
        for (id, bytes, finish) in writes {
            self.write(conn, id, bytes, finish);
        }
        false
    }

    /// Moves the WebTransport session on: its CONNECT answered, new streams' heads read.
    /// False when the client ended the session (the connection closes).
    fn poll_webtransport(
        &mut self,
        conn: &mut impl Streams,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let Some(wt) = &mut self.wt else { return true };
        let mut writes = Vec::new();
        let change = wt.poll(conn, &mut writes);
        for (id, bytes, finish) in writes {
            self.write(conn, id, bytes, finish);
        }
        match change {
            Some(Change::Opened) => self.send_hello(conn),
            Some(Change::Closed) => {
                let why = "the client ended its WebTransport session";
                conn.close(now, app_code::NO_ERROR, why);
                out.push(Outcome::Failed(Error::closed(why)));
                return false;
            }
            None => {}
        }
        true
    }

    /// Opens a stream of the session: with its WebTransport head over WebTransport. Its
    /// channel number (unidirectional streams) is its index among ours, which over
    /// WebTransport the head carries.
    fn open(&mut self, conn: &mut impl Streams, dir: Dir) -> Option<(StreamId, u64)> {
        let id = conn.open(dir)?;
        let Some(wt) = &mut self.wt else {
            return Some((id, id.index()));
        };
        let (head, number) = wt.head(dir);
        self.write(conn, id, head, false);
        Some((id, number))
    }

    /// How stream error codes go on this connection's wire.
    fn codes(&self) -> Codes {
        match self.wt {
            Some(_) => Codes::WebTransport,
            None => Codes::Quic,
        }
    }

    /// What datagrams start with on this connection: over WebTransport, the session's
    /// quarter stream id (RFC 9297).
    pub fn datagram_prefix(&self) -> Option<u64> {
        self.wt.as_ref().and_then(WebTransport::datagram_prefix)
    }

    /// The peer's next new unidirectional stream, with its channel number.
    fn accept_uni(&mut self, conn: &mut impl Streams) -> Option<(StreamId, u64)> {
        match &mut self.wt {
            Some(wt) => wt.accept_uni(),
            None => conn.accept(Dir::Uni).map(|id| (id, id.index())),
        }
    }

    fn accept_bi(&mut self, conn: &mut impl Streams) -> Option<StreamId> {
        match &mut self.wt {
            Some(wt) => wt.accept_bi(),
            None => conn.accept(Dir::Bi),
        }
    }

    fn usable(&self) -> Result<Negotiated, Error> {
        if self.going_away {
            return Err(Error::closed("the peer is going away (GOAWAY received)"));
        }
        self.negotiated
            .ok_or_else(|| Error::closed("the connection is not ready yet"))
    }

    /// An outbox for messages to the peer on the lane of `priority`, planned against that
    /// lane's send buffer. ERR_INVALID_ARGUMENT for a new lane past [`MAX_LANES`].
    pub fn outbox(&self, peer: std::sync::Arc<str>, options: SendOptions) -> Result<Outbox, Error> {
        let negotiated = self.usable()?;
        let fresh = SendBuffer::default();
        let priority = options.priority;
        let buffer = match self.lanes.iter().find(|l| l.priority == priority) {
            Some(lane) => &lane.buffer,
            None if self.lanes.len() < MAX_LANES as usize => &fresh,
            None => return Err(too_many_lanes(priority)),
        };
        Ok(Outbox::new(
            peer,
            options,
            negotiated.peer_max_message_size,
            negotiated.version >= 3,
            self.params.send_buffer_high,
            buffer,
        ))
    }

    /// Sends an outbox's messages on its lane's channel stream (those it holds go once the
    /// peer's ACKs make room); the lane's sequence number of its last message, which is
    /// delivered once that lane's `Acked` reaches it.
    pub fn send(
        &mut self,
        conn: &mut impl Streams,
        outbox: &mut Outbox,
        now: Instant,
    ) -> Result<u64, Error> {
        self.usable()?;
        let SendOptions {
            priority,
            idempotent,
            ..
        } = outbox.options;
        let at = match self.lanes.iter().position(|l| l.priority == priority) {
            Some(at) => at,
            None => {
                if self.lanes.len() >= MAX_LANES as usize {
                    return Err(too_many_lanes(priority));
                }
                self.lanes.push(Lane {
                    priority,
                    channel: None,
                    queued: 0,
                    acked: 0,
                    buffer: SendBuffer::default(),
                    held: Vec::new(),
                });
                self.lanes.len() - 1
            }
        };
        // While our data goes as 0-RTT, messages wait for the handshake, unless they are
        // safe to repeat and none of their lane waits before them.
        let waits = self.early.is_some() && (!idempotent || !self.lanes[at].held.is_empty());
        let stream = match waits {
            true => None,
            false => Some(self.lane_stream(conn, at)?),
        };
        let lane = &mut self.lanes[at];
        let count = outbox.len() as u64;
        outbox.commit(&mut lane.buffer);
        lane.queued += count;
        let queued = lane.queued;
        self.counters.messages_out += count;
        self.counters.bytes_out += outbox.bytes;
        self.last_active = now;
        let mut chunks = std::mem::take(&mut outbox.chunks);
        match stream {
            Some(stream) => self.write_chunks(conn, stream, &mut chunks, false),
            None => self.lanes[at].held.extend(chunks),
        }
        Ok(queued)
    }

    /// Lane `at`'s channel stream, opened now if it has none yet.
    fn lane_stream(&mut self, conn: &mut impl Streams, at: usize) -> Result<StreamId, Error> {
        if let Some(stream) = self.lanes[at].stream() {
            return Ok(stream);
        }
        let (stream, number) = self
            .open(conn, Dir::Uni)
            .ok_or_else(|| Error::new(ErrorCode::FlowControlPaused, "no stream for the channel"))?;
        let lane = &mut self.lanes[at];
        if lane.priority != 0 {
            // A stream just opened here: it exists, and setting it cannot fail.
            conn.set_priority(stream, lane.priority);
        }
        lane.channel = Some((stream, number));
        Ok(stream)
    }

    /// The largest body the peer accepts.
    pub fn peer_limit(&self) -> Option<u64> {
        self.negotiated.map(|n| n.peer_max_message_size)
    }

    /// Starts a request; its answer comes back as `Response` or `RequestFailed` with `id`.
    pub fn request(
        &mut self,
        conn: &mut impl Streams,
        id: u64,
        body: Bytes,
        options: RequestOptions,
        now: Instant,
    ) -> Result<(), Error> {
        let RequestOptions {
            timeout,
            priority,
            idempotent,
            trace,
        } = options;
        let negotiated = self.usable()?;
        if let Some(t) = trace
            .as_ref()
            .filter(|t| t.len() > frame::MAX_TRACE_CONTEXT)
        {
            return Err(Error::invalid_argument(format!(
                "a trace context of {} bytes is over the {} a request carries",
                t.len(),
                frame::MAX_TRACE_CONTEXT
            )));
        }
        let trace = trace.filter(|_| negotiated.version >= 2);
        if body.len() as u64 > negotiated.peer_max_message_size {
            return Err(Error::too_large(
                body.len() as u64,
                negotiated.peer_max_message_size,
            ));
        }
        let limit = timeout.unwrap_or(self.params.request_timeout);
        let deadline = now + limit;
        self.counters.requests_out += 1;
        self.counters.bytes_out += body.len() as u64;
        self.last_active = now;
        // Higher priorities take the next free stream first; equal ones keep their order.
        let at = self
            .requests_waiting
            .iter()
            .position(|w| w.priority < priority)
            .unwrap_or(self.requests_waiting.len());
        let waiting = Waiting {
            id,
            body,
            deadline,
            timeout: limit,
            priority,
            idempotent,
            trace,
        };
        self.requests_waiting.insert(at, waiting);
        self.start_requests(conn);
        Ok(())
    }

    fn start_requests(&mut self, conn: &mut impl Streams) {
        // While our data goes as 0-RTT, only idempotent requests go; the rest keep their place.
        let early = self.early.is_some();
        let mut next = 0;
        while let Some(waiting) = self.requests_waiting.get(next) {
            if early && !waiting.idempotent {
                next += 1;
                continue;
            }
            let Some((stream, _)) = self.open(conn, Dir::Bi) else {
                return;
            };
            let Some(Waiting {
                id,
                body,
                deadline,
                timeout: limit,
                priority,
                trace,
                ..
            }) = self.requests_waiting.remove(next)
            else {
                return;
            };
            if priority != 0 {
                // A stream just opened here: it exists, and setting it cannot fail.
                conn.set_priority(stream, priority);
            }
            let wire_id = self.next_wire_id;
            self.next_wire_id += 1;
            let mut head = BytesMut::new();
            // Sizes were checked in `request`. The body goes as it is, not copied behind its head.
            if let Some(trace) = trace {
                let _ = frame::put_trace(&mut head, &trace);
            }
            let _ = frame::put_request_head(&mut head, wire_id, body.len(), u64::MAX);
            self.write_chunks(conn, stream, &mut [head.freeze(), body], true);
            self.requests_out.insert(
                stream,
                Outgoing {
                    id,
                    wire_id,
                    answer: FrameReader::new(self.params.max_message_size),
                    deadline,
                    timeout: limit,
                },
            );
        }
    }

    /// Answers the request with this handle. An answer that cannot go (given already, or
    /// the requester stopped waiting for it) is an error, never dropped without a word.
    pub fn respond(
        &mut self,
        conn: &mut impl Streams,
        handle: u64,
        answer: Result<&[u8], Error>,
    ) -> Result<(), Error> {
        let (id, wire_id) = self.answering.remove(&handle).ok_or_else(|| {
            Error::invalid_argument(format!("request {handle} was already answered"))
        })?;
        if let Some(code) = conn.stopped(id) {
            // A stopped stream is reset in reply (RFC 9000, 3.5), which also frees it.
            conn.reset(id, code);
            let code = self.codes().app(code);
            let why =
                format!("the requester stopped waiting for the answer (application code {code})");
            return Err(Error::new(ErrorCode::StreamReset, why));
        }
        let limit = self.peer_limit().unwrap_or(0);
        let mut out = BytesMut::new();
        match answer {
            Ok(body) => {
                // Answers count as sent bytes, as the requester counts them received.
                self.counters.bytes_out += body.len() as u64;
                if let Err(e) = frame::put_response(&mut out, wire_id, body, limit) {
                    let text = format!("response: {}", e.message);
                    frame::put_error(&mut out, wire_id, e.code, &text);
                }
            }
            Err(e) => frame::put_error(&mut out, wire_id, e.code, &e.message),
        }
        self.responding.insert(id);
        self.write(conn, id, out.freeze(), true);
        Ok(())
    }

    /// Gives up request `id` (its caller stopped waiting): its stream is reset, and no
    /// outcome is reported for it.
    pub fn cancel(&mut self, conn: &mut impl Streams, id: u64) {
        if let Some(at) = self.requests_waiting.iter().position(|r| r.id == id) {
            self.requests_waiting.remove(at);
            return;
        }
        let Some(stream) = self
            .requests_out
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(s, _)| *s)
        else {
            return;
        };
        self.requests_out.remove(&stream);
        self.pending.remove(&stream);
        let cancelled = self.codes().wire(app_code::CANCELLED);
        conn.reset(stream, cancelled);
        conn.stop(stream, cancelled);
    }

    /// Turns down the peer's request with this handle without an answer: its stream is
    /// reset, and the requester gets ERR_STREAM_RESET. False when it was answered already.
    pub fn reset_request(&mut self, conn: &mut impl Streams, handle: u64) -> bool {
        let Some((stream, _)) = self.answering.remove(&handle) else {
            return false;
        };
        conn.reset(stream, self.codes().wire(app_code::CANCELLED));
        true
    }

    /// The earliest request deadline, or when lazy ACKs are due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let waiting = self.requests_waiting.iter().map(|r| r.deadline);
        let reading = self.requests_in.values().map(|r| r.deadline);
        self.requests_out
            .values()
            .map(|r| r.deadline)
            .chain(waiting)
            .chain(reading)
            .chain(self.webtransport_deadline())
            .chain(self.lazy_acks_at)
            .min()
    }

    /// When a WebTransport client must have opened its session (its CONNECT answered):
    /// a request timeout after the connection began.
    fn webtransport_deadline(&self) -> Option<Instant> {
        let wt = self.wt.as_ref().filter(|wt| !wt.is_open())?;
        Some(wt.started + self.params.request_timeout)
    }

    /// Fails requests past their deadline (their streams are reset); sends lazy ACKs due.
    pub fn expire(&mut self, conn: &mut impl Streams, now: Instant, out: &mut Vec<Outcome>) {
        if self.lazy_acks_at.is_some_and(|at| at <= now) {
            self.write_acks(conn);
        }
        if self.webtransport_deadline().is_some_and(|d| d <= now) {
            let e = Error::new(
                ErrorCode::Timeout,
                format!(
                    "no WebTransport session was opened within {} ms of connecting",
                    self.params.request_timeout.as_millis()
                ),
            );
            out.push(self.fail(conn, now, e));
            return;
        }
        let late: Vec<StreamId> = self
            .requests_out
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for stream in late {
            if let Some(r) = self.requests_out.remove(&stream) {
                let cancelled = self.codes().wire(app_code::CANCELLED);
                conn.reset(stream, cancelled);
                conn.stop(stream, cancelled);
                self.pending.remove(&stream);
                out.push(timeout(r.id, r.timeout));
            }
        }
        // Waiting requests are in priority order, their deadlines in any order.
        let mut i = 0;
        while let Some(w) = self.requests_waiting.get(i) {
            if w.deadline > now {
                i += 1;
            } else if let Some(w) = self.requests_waiting.remove(i) {
                out.push(timeout(w.id, w.timeout));
            }
        }
        // A peer request not fully received in time is answered ERR_TIMEOUT, its slot freed.
        let stalled: Vec<StreamId> = self
            .requests_in
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        if stalled.is_empty() {
            return;
        }
        let peer = conn.peer();
        for stream in stalled {
            self.requests_in.remove(&stream);
            let e = Error::request_not_received(&peer, self.params.request_timeout.as_millis());
            conn.stop(stream, self.codes().wire(app_code::for_stream_error(&e)));
            let mut bytes = BytesMut::new();
            frame::put_error(&mut bytes, 0, e.code, &e.message);
            self.write(conn, stream, bytes.freeze(), true);
        }
    }

    /// Something happened on the streams: make all the progress possible.
    pub fn on_streams(&mut self, conn: &mut impl Streams, now: Instant, out: &mut Vec<Outcome>) {
        if !self.poll_webtransport(conn, now, out) {
            return;
        }
        if self.negotiated.is_none() || self.assumed.is_some() {
            self.negotiate(conn, now, out);
            if self.negotiated.is_none() {
                return;
            }
            if self.assumed.is_some() {
                // Our 0-RTT data goes; the server's streams wait for its HELLO.
                self.flush_all(conn);
                self.start_requests(conn);
                return;
            }
        }
        self.flush_all(conn);
        self.start_requests(conn);
        self.read_control(conn, now, out);
        while let Some((id, number)) = self.accept_uni(conn) {
            let channel = Channel {
                reader: FrameReader::new(self.params.max_message_size),
                delivered: 0,
                number,
                waiting: (0, 0),
            };
            self.channels_in.insert(id, channel);
        }
        while let Some(id) = self.accept_bi(conn) {
            let incoming = Incoming {
                reader: FrameReader::new(self.params.max_message_size),
                deadline: now + self.params.request_timeout,
                // Before the client's Finished: it may be 0-RTT data an attacker replayed.
                early: !self.is_client && conn.is_handshaking(),
                trace: None,
            };
            self.requests_in.insert(id, incoming);
            // Half the credit in use: double it (an idle connection stays small).
            let open = self.serving() as u64;
            if let Some(next) =
                grown_stream_credit(self.stream_limit, open, self.params.max_streams)
            {
                self.stream_limit = next;
                conn.set_max_concurrent_streams(Dir::Bi, next);
            }
        }
        self.read_channels(conn, now, out);
        self.read_requests_in(conn, now, out);
        self.read_answers(conn, out);
        self.read_ends(conn);
        self.write_acks(conn);
    }

    /// Reads the peer's HELLO (after the handshake) and agrees on the encoding.
    fn negotiate(&mut self, conn: &mut impl Streams, now: Instant, out: &mut Vec<Outcome>) {
        if let Some(id) = self.control {
            self.flush(conn, id);
        }
        // A server taking 0-RTT data reads the client's HELLO and requests before the
        // handshake is done; otherwise both sides wait for it.
        let early_server = !self.is_client && self.params.early_data;
        if conn.is_handshaking() && !early_server {
            return;
        }
        if self.peer_control.is_none() {
            // The peer's control stream: its first unidirectional stream, channel 0.
            self.peer_control = match &mut self.wt {
                Some(wt) => wt.take_uni(0),
                None => conn.accept(Dir::Uni),
            };
        }
        let Some(id) = self.peer_control else { return };
        let codes = self.codes();
        if let Err(e) = read_into(conn, id, &mut self.control_in, codes) {
            out.push(self.fail(conn, now, e));
            return;
        }
        let theirs = match self.control_in.next_frame() {
            Ok(None) => return,
            Ok(Some(Frame::Hello(theirs))) => theirs,
            Ok(Some(other)) => {
                let e = Error::protocol(format!("expected HELLO, got {other:?}"));
                out.push(self.fail(conn, now, e));
                return;
            }
            Err(e) => {
                out.push(self.fail(conn, now, e));
                return;
            }
        };
        match self.hello().agree(&theirs, self.is_client) {
            Ok(negotiated) => match self.assumed.take() {
                // Ready since the start, on what the last connection agreed.
                Some(assumed) if assumed == negotiated => {}
                Some(_) => {
                    let e = Error::new(
                        ErrorCode::Negotiation,
                        "the server's settings changed since the session this connection \
                         resumed, and its 0-RTT data was sent on the old ones",
                    );
                    self.negotiated = Some(negotiated);
                    out.push(self.fail(conn, now, e));
                }
                None => {
                    self.negotiated = Some(negotiated);
                    out.push(Outcome::Ready(negotiated));
                }
            },
            Err(e) => out.push(self.fail(conn, now, e)),
        }
    }

    fn read_control(&mut self, conn: &mut impl Streams, now: Instant, out: &mut Vec<Outcome>) {
        let Some(id) = self.peer_control else { return };
        let codes = self.codes();
        if let Err(e) = read_into(conn, id, &mut self.control_in, codes) {
            out.push(self.fail(conn, now, e));
            return;
        }
        loop {
            match self.control_in.next_frame() {
                Ok(None) => return,
                Ok(Some(Frame::Ack { stream, count })) => {
                    let high = self.params.send_buffer_high;
                    let ours = |l: &&mut Lane| l.channel.is_some_and(|(_, n)| n == stream);
                    let Some(lane) = self.lanes.iter_mut().find(ours) else {
                        continue;
                    };
                    if count <= lane.acked || count > lane.queued {
                        continue;
                    }
                    // Room in the lane's send buffer: what it held goes out now.
                    let mut released = lane.buffer.acked(count - lane.acked, high);
                    lane.acked = count;
                    let (stream, priority) = (lane.stream(), lane.priority);
                    if let Some(stream) = stream.filter(|_| !released.is_empty()) {
                        self.write_chunks(conn, stream, &mut released, false);
                    }
                    out.push(Outcome::Acked {
                        priority,
                        delivered: count,
                    });
                }
                Ok(Some(Frame::GoAway)) => self.going_away = true,
                Ok(Some(other)) => {
                    let e = Error::protocol(format!("unexpected {other:?} on the control stream"));
                    out.push(self.fail(conn, now, e));
                    return;
                }
                Err(e) => {
                    out.push(self.fail(conn, now, e));
                    return;
                }
            }
        }
    }

    fn read_channels(&mut self, conn: &mut impl Streams, now: Instant, out: &mut Vec<Outcome>) {
        let codes = self.codes();
        let mut broken = Vec::new();
        // Before the client's Finished: 0-RTT data, which an attacker may have replayed.
        let early = !self.is_client && conn.is_handshaking();
        let version = self.version;
        for (id, channel) in self.channels_in.iter_mut() {
            let Channel {
                reader,
                delivered,
                number,
                waiting,
            } = channel;
            let before = *delivered;
            let failure = match read_into(conn, *id, reader, codes) {
                Err(_) => {
                    broken.push(*id);
                    continue;
                }
                Ok(_) => loop {
                    let (body, lazy) = match reader.next_frame() {
                        Ok(Some(Frame::Message(body))) => (body, false),
                        Ok(Some(Frame::LazyMessage(body))) if version >= 3 => (body, true),
                        Ok(None) => break None,
                        Ok(Some(other)) => {
                            break Some(Error::protocol(format!("{other:?} on a channel stream")))
                        }
                        Err(e) => break Some(e),
                    };
                    *delivered += 1;
                    if !lazy {
                        if waiting.0 == 0 {
                            waiting.0 = *delivered;
                        }
                        waiting.1 = *delivered;
                    }
                    self.counters.messages_in += 1;
                    self.counters.bytes_in += body.len() as u64;
                    self.last_active = now;
                    out.push(Outcome::Message { body, early });
                },
            };
            if *delivered > before {
                out.push(Outcome::Receipt {
                    stream: *number,
                    delivered: *delivered,
                    early,
                });
            }
            if let Some(e) = failure {
                // Only this stream is broken: stop it, keep the connection.
                conn.stop(*id, codes.wire(app_code::for_stream_error(&e)));
                broken.push(*id);
            }
        }
        for id in broken {
            self.channels_in.remove(&id);
        }
    }

    fn read_requests_in(&mut self, conn: &mut impl Streams, now: Instant, out: &mut Vec<Outcome>) {
        let codes = self.codes();
        let mut done = Vec::new();
        let mut answers = Vec::new();
        let version = self.version;
        for (id, incoming) in self.requests_in.iter_mut() {
            let Incoming {
                reader,
                trace,
                early,
                ..
            } = incoming;
            let read = read_into(conn, *id, reader, codes);
            let finished = matches!(read, Ok(true));
            // Version 2: a TRACE frame may come first.
            let next = read.and_then(|_| loop {
                match reader.next_frame() {
                    Ok(Some(Frame::Trace(context))) if version >= 2 && trace.is_none() => {
                        *trace = Some(context);
                    }
                    other => break other,
                }
            });
            match next {
                Ok(None) => {}
                Ok(Some(Frame::Request { id: wire_id, body })) => {
                    done.push(*id);
                    if !finished {
                        self.ending.push(*id);
                    }
                    self.answering.insert(id.index(), (*id, wire_id));
                    self.counters.requests_in += 1;
                    self.counters.bytes_in += body.len() as u64;
                    self.last_active = now;
                    out.push(Outcome::Request {
                        handle: id.index(),
                        body,
                        early: *early,
                        trace: trace.take(),
                    });
                }
                Ok(Some(_)) => {
                    done.push(*id);
                    conn.reset(*id, codes.wire(app_code::PROTOCOL));
                    conn.stop(*id, codes.wire(app_code::PROTOCOL));
                }
                Err(e) => {
                    // Tell the requester why, then stop reading the rest of its body.
                    done.push(*id);
                    conn.stop(*id, codes.wire(app_code::for_stream_error(&e)));
                    answers.push((*id, e));
                }
            }
        }
        for id in done {
            self.requests_in.remove(&id);
        }
        for (id, e) in answers {
            let mut bytes = BytesMut::new();
            frame::put_error(&mut bytes, 0, e.code, &e.message);
            self.write(conn, id, bytes.freeze(), true);
        }
    }

    fn read_answers(&mut self, conn: &mut impl Streams, out: &mut Vec<Outcome>) {
        let codes = self.codes();
        let mut done = Vec::new();
        for (id, r) in self.requests_out.iter_mut() {
            let outcome = match read_into(conn, *id, &mut r.answer, codes) {
                Err(e) => Some(Err(e)),
                Ok(finished) => match r.answer.next_frame() {
                    Ok(Some(Frame::Response { id: wire, body })) if wire == r.wire_id => {
                        if !finished {
                            self.ending.push(*id);
                        }
                        Some(Ok(body))
                    }
                    Ok(Some(Frame::Error { code, text, .. })) => {
                        if !finished {
                            self.ending.push(*id);
                        }
                        Some(Err(Error::new(code, text)))
                    }
                    Ok(Some(other)) => Some(Err(Error::protocol(format!("answer was {other:?}")))),
                    Ok(None) if finished => Some(Err(Error::new(
                        ErrorCode::StreamReset,
                        "the peer closed the request's stream without answering",
                    ))),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                },
            };
            match outcome {
                Some(Ok(body)) => {
                    self.counters.bytes_in += body.len() as u64;
                    out.push(Outcome::Response { id: r.id, body })
                }
                Some(Err(error)) => out.push(Outcome::RequestFailed { id: r.id, error }),
                None => continue,
            }
            done.push(*id);
        }
        for id in done {
            self.requests_out.remove(&id);
        }
    }

    /// Reads the ends of streams whose frame came before their FIN (a browser's writer
    /// closes apart from its last write): quinn frees a stream, and gives the peer its
    /// credit back, only once its end is read.
    fn read_ends(&mut self, conn: &mut impl Streams) {
        let protocol = self.codes().wire(app_code::PROTOCOL);
        self.ending.retain(|&id| {
            let mut extra = false;
            match conn.read(id, 1, &mut |_| extra = true) {
                // Nothing may follow the one frame.
                _ if extra => {
                    conn.stop(id, protocol);
                    false
                }
                Read::Open => true,
                Read::Ended | Read::Reset(_) | Read::Gone => false,
            }
        });
    }

    /// Tells the peer its messages up to `delivered` on `stream` reached the application:
    /// at once when they include a MESSAGE, whose sender waits for it; within
    /// [`LAZY_ACK_DELAY`] when they are all LAZY_MESSAGE frames.
    pub fn acknowledge(
        &mut self,
        conn: &mut impl Streams,
        stream: u64,
        delivered: u64,
        now: Instant,
    ) {
        upsert(&mut self.acks_due, stream, delivered);
        let channel = self.channels_in.values_mut().find(|c| c.number == stream);
        let lazy = channel.is_some_and(|c| {
            let (first, last) = c.waiting;
            if first != 0 && first <= delivered {
                // Any MESSAGE after these comes with a later receipt, which covers `last`.
                c.waiting = if last > delivered {
                    (last, last)
                } else {
                    (0, 0)
                };
                return false;
            }
            true
        });
        if !lazy {
            self.write_acks(conn);
        } else if self.lazy_acks_at.is_none() {
            self.lazy_acks_at = Some(now + LAZY_ACK_DELAY);
        }
    }

    fn write_acks(&mut self, conn: &mut impl Streams) {
        self.lazy_acks_at = None;
        let Some(control) = self.control else { return };
        if self.acks_due.is_empty() {
            return;
        }
        let mut bytes = BytesMut::new();
        for (stream, count) in self.acks_due.drain(..) {
            frame::put_ack(&mut bytes, stream, count);
        }
        self.write(conn, control, bytes.freeze(), false);
    }

    /// Every request in flight fails with `error` (the connection is gone).
    pub fn fail_all(&mut self, error: &Error, out: &mut Vec<Outcome>) {
        for (_, r) in self.requests_out.drain() {
            out.push(Outcome::RequestFailed {
                id: r.id,
                error: error.clone(),
            });
        }
        for Waiting { id, .. } in self.requests_waiting.drain(..) {
            out.push(Outcome::RequestFailed {
                id,
                error: error.clone(),
            });
        }
    }

    fn fail(&mut self, conn: &mut impl Streams, now: Instant, e: Error) -> Outcome {
        let code = if e.code == ErrorCode::Negotiation {
            app_code::NEGOTIATION
        } else {
            app_code::PROTOCOL
        };
        conn.close(now, code, &e.message);
        Outcome::Failed(e)
    }

    /// Writes `bytes` on `id` now as far as flow control allows, the rest later (in order,
    /// after anything already waiting).
    fn write(&mut self, conn: &mut impl Streams, id: StreamId, bytes: Bytes, finish: bool) {
        self.write_chunks(conn, id, &mut [bytes], finish);
    }

    /// [`Self::write`] for several buffers, in order; quinn keeps them without a copy. What
    /// waits for flow control is taken out of `chunks`.
    fn write_chunks(
        &mut self,
        conn: &mut impl Streams,
        id: StreamId,
        chunks: &mut [Bytes],
        finish: bool,
    ) {
        if let Some(early) = &mut self.early {
            log_early(early, id, conn, chunks, finish);
        }
        if let Some(pending) = self.pending.get_mut(&id) {
            pending.chunks.extend(chunks.iter_mut().map(std::mem::take));
            pending.finish |= finish;
            self.flush(conn, id);
            return;
        }
        match conn.write(id, chunks) {
            Some(n) if n < chunks.len() => {
                let chunks = chunks[n..].iter_mut().map(std::mem::take).collect();
                self.pending.insert(id, Pending { chunks, finish });
            }
            Some(_) if finish => {
                conn.finish(id);
            }
            _ => {}
        }
    }

    fn flush(&mut self, conn: &mut impl Streams, id: StreamId) {
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        match conn.write(id, pending.chunks.make_contiguous()) {
            Some(n) => drop(pending.chunks.drain(..n)),
            None => {
                self.pending.remove(&id);
                return;
            }
        }
        if !pending.chunks.is_empty() {
            return;
        }
        if pending.finish {
            conn.finish(id);
        }
        self.pending.remove(&id);
    }

    fn flush_all(&mut self, conn: &mut impl Streams) {
        let ids: Vec<StreamId> = self.pending.keys().copied().collect();
        for id in ids {
            self.flush(conn, id);
        }
    }
}

/// Records a write on `id` while our data goes as 0-RTT (see [`EarlyStream`]).
fn log_early(
    early: &mut Vec<EarlyStream>,
    id: StreamId,
    conn: &mut impl Streams,
    chunks: &[Bytes],
    finish: bool,
) {
    let at = match early.iter().position(|e| e.id == id) {
        Some(at) => at,
        None => {
            let priority = conn.priority(id);
            early.push(EarlyStream {
                id,
                priority,
                chunks: Vec::new(),
                finish: false,
            });
            early.len() - 1
        }
    };
    early[at].chunks.extend(chunks.iter().cloned());
    early[at].finish |= finish;
}

fn too_many_lanes(priority: i32) -> Error {
    Error::invalid_argument(format!(
        "priority {priority} would open a lane past the {MAX_LANES} a connection may have \
         (one per message priority in use)"
    ))
}

fn timeout(id: u64, timeout: Duration) -> Outcome {
    Outcome::RequestFailed {
        id,
        error: Error::new(
            ErrorCode::Timeout,
            format!("no response within {} ms", timeout.as_millis()),
        ),
    }
}

fn upsert(list: &mut Vec<(u64, u64)>, stream: u64, count: u64) {
    match list.iter_mut().find(|(s, _)| *s == stream) {
        Some(entry) => entry.1 = count,
        None => list.push((stream, count)),
    }
}

/// Hands whatever `id` has buffered to `reader`; `Ok(true)` once the stream has ended.
/// How stream error codes go on the wire: as they are over QUIC; over a server's
/// WebTransport session, mapped into HTTP/3's space ([`webtransport::to_http3`]).
#[derive(Debug, Clone, Copy)]
enum Codes {
    Quic,
    WebTransport,
}

impl Codes {
    fn wire(self, code: u32) -> u64 {
        match self {
            Codes::Quic => code.into(),
            Codes::WebTransport => webtransport::to_http3(code),
        }
    }

    /// A code from the wire as quicwire's (an HTTP/3 one of its own stays as it is).
    fn app(self, wire: u64) -> u64 {
        match self {
            Codes::Quic => wire,
            Codes::WebTransport => webtransport::from_http3(wire).map_or(wire, u64::from),
        }
    }
}

fn read_into(
    conn: &mut impl Streams,
    id: StreamId,
    reader: &mut FrameReader,
    codes: Codes,
) -> Result<bool, Error> {
    match conn.read(id, usize::MAX, &mut |chunk| reader.push(chunk)) {
        Read::Open | Read::Gone => Ok(false),
        Read::Ended => Ok(true),
        Read::Reset(code) => Err(app_code::stream_error(codes.app(code), "the peer")),
    }
}
