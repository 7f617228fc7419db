//! One quicwire session over one QUIC connection, the same on client and server.
//!
//! Streams: each side's first unidirectional stream is its control stream: HELLO first (sent
//! at once, without waiting for the peer's), then ACK and GOAWAY frames. Each side sends its
//! messages on one long-lived
//! unidirectional "channel" stream, written in large batches; every request gets a fresh
//! bidirectional stream. The receiver ACKs messages once they are handed to its
//! application, which is when a `send` counts as delivered.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quicwire_core::config::{grown_stream_credit, initial_stream_credit};
use quicwire_core::frame::{self, Frame, FrameDecoder};
pub(crate) use quicwire_core::quic::connection_error;
use quicwire_core::{
    app_code, ConnectionStats, Encoding, Error, ErrorCode, Hello, Negotiated, Result,
};
use tokio::sync::{mpsc, watch, Notify};

/// What the application gets from its connections. Calls come from runtime tasks and must
/// not block; hand work off (a channel, a batch buffer) and return.
pub trait Handler: Send + Sync + 'static {
    /// A connection finished its handshake (either side). Comes before any other call
    /// for that connection.
    fn on_connection(&self, _conn: &Connection) {}
    /// Messages read off a channel stream, in order. Called once per received batch. The
    /// sender's `send` resolves only once the handler passes `receipt` to
    /// [`Connection::acknowledge`]: do so when the application has the messages.
    fn on_messages(&self, conn: &Connection, messages: Vec<Bytes>, receipt: Receipt);
    /// A request to answer with [`IncomingRequest::respond`].
    fn on_request(&self, request: IncomingRequest);
    /// The peer has now received `delivered` of the messages this side sent.
    fn on_acked(&self, _conn: &Connection, _delivered: u64) {}
    /// The connection closed; every later call on it fails with `reason`'s code.
    fn on_closed(&self, _conn: &Connection, _reason: &Error) {}
}

/// Proof of a received batch: acknowledging it tells the sender that every message of its
/// channel up to this batch was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    stream: u64,
    delivered: u64,
}

/// Chunks read from a stream at once.
const READ_CHUNK: usize = 256 * 1024;
/// Batches the channel writer merges into one write.
const MAX_COALESCE: usize = 64;
/// How long the peer's HELLO may take once QUIC is up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the process's first use of quicwire (a monotonic clock).
pub(crate) fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// Negotiated parameters a side brings to a connection.
#[derive(Debug, Clone)]
pub(crate) struct SessionParams {
    /// The largest body this side accepts.
    pub max_message_size: u64,
    /// Encodings this side speaks, preferred first.
    pub encodings: Vec<Encoding>,
    pub request_timeout: Duration,
    /// The most requests the peer may have in progress at once (stream credit grows to it).
    pub max_streams: u32,
}

/// A negotiated quicwire connection. Cheap to clone; all clones are the same connection.
#[derive(Clone)]
pub struct Connection(Arc<Shared>);

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.0.id)
            .field("peer", &self.0.peer)
            .field("encoding", &self.0.encoding)
            .finish()
    }
}

struct Shared {
    id: u64,
    quic: quinn::Connection,
    peer: String,
    encoding: Encoding,
    /// Largest body we accept.
    local_limit: u64,
    /// Largest body the peer accepts: the limit for everything we send.
    peer_limit: u64,
    request_timeout: Duration,
    handler: Arc<dyn Handler>,
    outbox: mpsc::UnboundedSender<Bytes>,
    /// Messages queued for sending so far (the sequence number of the last one).
    queued: AtomicU64,
    /// Messages the peer has acknowledged.
    acked: watch::Sender<u64>,
    /// Our channel stream's id, once opened (ACKs name it).
    channel_id: AtomicU64,
    /// (channel stream id, messages delivered) per peer channel, not yet ACKed.
    acks_due: Mutex<Vec<(u64, u64)>>,
    control_wake: Notify,
    goaway_sent: AtomicBool,
    goaway_received: AtomicBool,
    next_request: AtomicU64,
    in_flight: AtomicU64,
    /// Request streams the peer may open now, and the most it may ever get.
    stream_limit: AtomicU32,
    max_streams: u32,
    /// Signalled when `in_flight` drops to zero (graceful shutdown waits on it).
    quiet: Notify,
    last_active_ms: AtomicU64,
    closed: OnceLock<Error>,
    closed_notify: Notify,
    messages_out: AtomicU64,
    messages_in: AtomicU64,
    requests_out: AtomicU64,
    requests_in: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
}

impl Connection {
    /// Client side, once TLS is done: sends HELLO and reads the server's, which came with
    /// the server's handshake flight, so this costs no round trip of its own.
    pub(crate) async fn client_handshake(
        quic: quinn::Connection,
        peer: String,
        params: SessionParams,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection> {
        let hello = Hello::new(params.encodings.clone(), params.max_message_size);
        let exchange = exchange_hellos(&quic, &hello, None, &peer);
        let (send, recv, buf, theirs) = match tokio::time::timeout(HELLO_TIMEOUT, exchange).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                // A server that refuses us closes the connection with its reason.
                let e = match quic.close_reason() {
                    Some(reason) => connection_error(&reason, &peer),
                    None => e,
                };
                quic.close(app_code::PROTOCOL.into(), b"handshake failed");
                return Err(e);
            }
            Err(_) => {
                quic.close(app_code::PROTOCOL.into(), b"no HELLO");
                return Err(Error::new(
                    ErrorCode::ConnectTimeout,
                    format!("{peer} sent no HELLO"),
                ));
            }
        };
        let negotiated = agree(&quic, &hello, &theirs, true)?;
        Ok(Self::start(
            quic, peer, &params, negotiated, handler, send, recv, buf,
        ))
    }

    /// Server side, right after accepting: sends HELLO as 0.5-RTT data (it leaves with
    /// the TLS flight), then waits for the handshake and the client's HELLO. A refused
    /// negotiation closes the connection with ERR_NEGOTIATION and the reason.
    pub(crate) async fn server_handshake(
        quic: quinn::Connection,
        handshake: quinn::ZeroRttAccepted,
        params: SessionParams,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection> {
        let peer = quic.remote_address().to_string();
        let hello = Hello::new(params.encodings.clone(), params.max_message_size);
        let exchange = exchange_hellos(&quic, &hello, Some(handshake), &peer);
        let (send, recv, buf, theirs) = match tokio::time::timeout(HELLO_TIMEOUT, exchange).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                let e = match quic.close_reason() {
                    Some(reason) => connection_error(&reason, &peer),
                    None => e,
                };
                quic.close(app_code::PROTOCOL.into(), e.message.as_bytes());
                return Err(e);
            }
            Err(_) => {
                quic.close(app_code::PROTOCOL.into(), b"no HELLO");
                return Err(Error::protocol(format!("{peer} sent no HELLO")));
            }
        };
        let negotiated = agree(&quic, &hello, &theirs, false)?;
        Ok(Self::start(
            quic, peer, &params, negotiated, handler, send, recv, buf,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        quic: quinn::Connection,
        peer: String,
        params: &SessionParams,
        negotiated: Negotiated,
        handler: Arc<dyn Handler>,
        control_send: quinn::SendStream,
        control_recv: quinn::RecvStream,
        control_buf: BytesMut,
    ) -> Connection {
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let conn = Connection(Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            quic,
            peer,
            encoding: negotiated.encoding,
            local_limit: params.max_message_size,
            peer_limit: negotiated.peer_max_message_size,
            request_timeout: params.request_timeout,
            handler,
            outbox,
            queued: AtomicU64::new(0),
            acked: watch::Sender::new(0),
            channel_id: AtomicU64::new(u64::MAX),
            acks_due: Mutex::new(Vec::new()),
            control_wake: Notify::new(),
            goaway_sent: AtomicBool::new(false),
            goaway_received: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
            in_flight: AtomicU64::new(0),
            stream_limit: AtomicU32::new(initial_stream_credit(params.max_streams)),
            max_streams: params.max_streams,
            quiet: Notify::new(),
            last_active_ms: AtomicU64::new(now_ms()),
            closed: OnceLock::new(),
            closed_notify: Notify::new(),
            messages_out: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            requests_out: AtomicU64::new(0),
            requests_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
        }));
        conn.0.handler.on_connection(&conn);
        tokio::spawn(conn.clone().write_channel(outbox_rx));
        tokio::spawn(conn.clone().write_control(control_send));
        tokio::spawn(conn.clone().serve(control_recv, control_buf));
        conn
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The peer: `host:port` as dialed (client side) or its socket address (server side).
    pub fn peer(&self) -> &str {
        &self.0.peer
    }

    pub fn remote_address(&self) -> std::net::SocketAddr {
        self.0.quic.remote_address()
    }

    /// The negotiated encoding of message bodies.
    pub fn encoding(&self) -> Encoding {
        self.0.encoding
    }

    /// The largest body the peer accepts (bodies we send must fit).
    pub fn peer_max_message_size(&self) -> u64 {
        self.0.peer_limit
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&Error> {
        self.0.closed.get()
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.get().is_some()
    }

    /// The peer sent GOAWAY: finish what is in flight, start nothing new here.
    pub fn is_going_away(&self) -> bool {
        self.0.goaway_received.load(Ordering::Relaxed)
    }

    /// Nothing in flight: no open request, no unacknowledged message.
    pub fn is_idle(&self) -> bool {
        self.0.in_flight.load(Ordering::Relaxed) == 0
            && *self.0.acked.borrow() >= self.0.queued.load(Ordering::Relaxed)
    }

    /// Milliseconds (on [`now_ms`]'s clock) of the last send, request or receipt.
    pub(crate) fn last_active_ms(&self) -> u64 {
        self.0.last_active_ms.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        self.0.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn check_usable(&self) -> Result<()> {
        if let Some(e) = self.0.closed.get() {
            return Err(e.clone());
        }
        if self.is_going_away() {
            return Err(Error::closed(format!(
                "{} is going away (GOAWAY received)",
                self.0.peer
            )));
        }
        Ok(())
    }

    /// Queues a batch of MESSAGE frames (built with `frame::put_message` against
    /// [`Self::peer_max_message_size`]) holding `count` messages. Returns the sequence
    /// number of the batch's last message: it is delivered once `acked` reaches it.
    pub fn enqueue_frames(&self, frames: Bytes, count: u64, payload_bytes: u64) -> Result<u64> {
        self.check_usable()?;
        let seq = self.0.queued.fetch_add(count, Ordering::Relaxed) + count;
        self.0.messages_out.fetch_add(count, Ordering::Relaxed);
        self.0.bytes_out.fetch_add(payload_bytes, Ordering::Relaxed);
        self.touch();
        self.0
            .outbox
            .send(frames)
            .map_err(|_| Error::closed(format!("connection to {} is closed", self.0.peer)))?;
        Ok(seq)
    }

    /// Sends one message and waits until the peer has received it.
    pub async fn send(&self, body: &[u8]) -> Result<()> {
        self.send_batch(&[body]).await
    }

    /// Sends messages in order on the channel stream; resolves when all were delivered.
    pub async fn send_batch(&self, bodies: &[&[u8]]) -> Result<()> {
        let mut out = BytesMut::new();
        let mut bytes = 0;
        for body in bodies {
            frame::put_message(&mut out, body, self.0.peer_limit)?;
            bytes += body.len() as u64;
        }
        let seq = self.enqueue_frames(out.freeze(), bodies.len() as u64, bytes)?;
        self.delivered(seq).await
    }

    /// Waits until the peer acknowledged message `seq`, or fails when the connection closes
    /// first (the message may or may not have arrived).
    pub async fn delivered(&self, seq: u64) -> Result<()> {
        let mut acked = self.0.acked.subscribe();
        tokio::select! {
            r = acked.wait_for(|a| *a >= seq) => r.map(|_| ()).map_err(|_| self.closed_error()),
            e = self.closed() => Err(Error::closed(format!(
                "{}; message {seq} may not have been delivered", e.message
            ))),
        }
    }

    /// Messages the peer has acknowledged so far.
    pub fn acked(&self) -> u64 {
        *self.0.acked.borrow()
    }

    /// Sends a request on a fresh stream and waits for the answer (up to the configured
    /// request timeout). A handler error on the peer comes back as ERR_REMOTE.
    pub async fn request(&self, body: &[u8]) -> Result<Bytes> {
        self.request_with_timeout(body, self.0.request_timeout)
            .await
    }

    pub async fn request_with_timeout(&self, body: &[u8], timeout: Duration) -> Result<Bytes> {
        match tokio::time::timeout(timeout, self.request_untimed(body)).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorCode::Timeout,
                format!(
                    "no response from {} within {} ms",
                    self.0.peer,
                    timeout.as_millis()
                ),
            )),
        }
    }

    /// The request without a deadline (dropping the future cancels it: the stream is reset).
    pub async fn request_untimed(&self, body: &[u8]) -> Result<Bytes> {
        self.check_usable()?;
        let id = self.0.next_request.fetch_add(1, Ordering::Relaxed);
        let mut out = BytesMut::new();
        frame::put_request(&mut out, id, body, self.0.peer_limit)?;
        let _guard = InFlight::new(self);
        self.0.requests_out.fetch_add(1, Ordering::Relaxed);
        self.0
            .bytes_out
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        self.touch();
        let peer = &self.0.peer;
        let (mut send, mut recv) = self
            .0
            .quic
            .open_bi()
            .await
            .map_err(|e| connection_error(&e, peer))?;
        let mut stream = CancelOnDrop(Some(send.id()), &mut send);
        stream
            .1
            .write_chunk(out.freeze())
            .await
            .map_err(|e| write_error(&e, peer))?;
        let _ = stream.1.finish();
        let decoder = FrameDecoder::new(self.0.local_limit);
        let mut buf = BytesMut::new();
        let answer = read_frame(&mut recv, &decoder, &mut buf, peer).await;
        stream.0 = None;
        match answer {
            Ok(Some(Frame::Response { id: rid, body })) if rid == id => {
                self.0
                    .bytes_in
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                self.touch();
                Ok(body)
            }
            Ok(Some(Frame::Error { code, text, .. })) => Err(Error::new(code, text)),
            Ok(Some(other)) => Err(Error::protocol(format!(
                "{peer} answered request {id} with {other:?}"
            ))),
            Ok(None) => Err(Error::new(
                ErrorCode::StreamReset,
                format!("{peer} closed request {id}'s stream without answering"),
            )),
            Err(e) => {
                let _ = recv.stop(app_code::PROTOCOL.into());
                Err(e)
            }
        }
    }

    /// Asks the peer to stop starting work here (sent by a server that is closing).
    pub fn go_away(&self) {
        if !self.0.goaway_sent.swap(true, Ordering::Relaxed) {
            self.0.control_wake.notify_one();
        }
    }

    /// Open requests (both directions).
    pub fn in_flight(&self) -> u64 {
        self.0.in_flight.load(Ordering::Relaxed)
    }

    /// Resolves once no request is open on this connection (or it is closed).
    pub async fn quiet(&self) {
        loop {
            let notified = self.0.quiet.notified();
            if self.in_flight() == 0 || self.is_closed() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.closed() => return,
            }
        }
    }

    /// Closes the connection now; everything pending on it fails with ERR_CONNECTION_CLOSED.
    pub fn close(&self, code: u32, reason: &str) {
        self.0.quic.close(code.into(), reason.as_bytes());
    }

    /// Resolves once the connection is closed, with the reason.
    pub async fn closed(&self) -> Error {
        loop {
            let notified = self.0.closed_notify.notified();
            if let Some(e) = self.0.closed.get() {
                return e.clone();
            }
            notified.await;
        }
    }

    fn closed_error(&self) -> Error {
        self.0
            .closed
            .get()
            .cloned()
            .unwrap_or_else(|| Error::closed(format!("connection to {} is closed", self.0.peer)))
    }

    pub fn stats(&self) -> ConnectionStats {
        let s = &self.0;
        let q = s.quic.stats();
        let channels = u64::from(s.channel_id.load(Ordering::Relaxed) != u64::MAX);
        ConnectionStats {
            peer: s.peer.clone(),
            messages_out: s.messages_out.load(Ordering::Relaxed),
            messages_in: s.messages_in.load(Ordering::Relaxed),
            requests_out: s.requests_out.load(Ordering::Relaxed),
            requests_in: s.requests_in.load(Ordering::Relaxed),
            bytes_out: s.bytes_out.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            streams_open: channels + s.in_flight.load(Ordering::Relaxed),
            rtt_ms: q.path.rtt.as_secs_f64() * 1000.0,
            lost_packets: q.path.lost_packets,
            udp_tx: q.udp_tx.datagrams,
            udp_rx: q.udp_rx.datagrams,
        }
    }

    /// Drains the outbox into our channel stream, merging queued batches into one write.
    async fn write_channel(self, mut outbox: mpsc::UnboundedReceiver<Bytes>) {
        let mut stream: Option<quinn::SendStream> = None;
        let mut chunks: Vec<Bytes> = Vec::with_capacity(MAX_COALESCE);
        loop {
            // Our own Shared holds the outbox's sender, so recv() alone would wait forever
            // on a closed connection, and keep it (and its UDP socket) alive with it.
            let first = tokio::select! {
                b = outbox.recv() => match b {
                    Some(b) => b,
                    None => return,
                },
                _ = self.closed() => return,
            };
            chunks.push(first);
            while chunks.len() < MAX_COALESCE {
                match outbox.try_recv() {
                    Ok(b) => chunks.push(b),
                    Err(_) => break,
                }
            }
            if stream.is_none() {
                match self.0.quic.open_uni().await {
                    Ok(s) => {
                        self.0.channel_id.store(s.id().index(), Ordering::Relaxed);
                        stream = Some(s);
                    }
                    Err(_) => return,
                }
            }
            let Some(s) = stream.as_mut() else { return };
            if let Err(e) = s.write_all_chunks(&mut chunks).await {
                // Our channel broke (the peer stopped it): we cannot know which of its
                // unacknowledged messages arrived, so close rather than lose them silently.
                tracing::debug!(peer = %self.0.peer, error = %e, "channel stream failed");
                self.close(app_code::PROTOCOL, "channel stream failed");
                return;
            }
            chunks.clear();
        }
    }

    /// Writes ACKs (coalesced: only the latest count per stream) and GOAWAY.
    async fn write_control(self, mut send: quinn::SendStream) {
        let mut goaway_written = false;
        let mut out = BytesMut::new();
        loop {
            tokio::select! {
                _ = self.0.control_wake.notified() => {}
                _ = self.closed() => return,
            }
            let due = std::mem::take(&mut *lock(&self.0.acks_due));
            for (stream, count) in due {
                frame::put_ack(&mut out, stream, count);
            }
            if self.0.goaway_sent.load(Ordering::Relaxed) && !goaway_written {
                frame::put_goaway(&mut out);
                goaway_written = true;
            }
            if !out.is_empty() && send.write_chunk(out.split().freeze()).await.is_err() {
                return;
            }
        }
    }

    /// Accepts the peer's streams and reads its control stream until the connection ends.
    async fn serve(self, mut control: quinn::RecvStream, mut control_buf: BytesMut) {
        let decoder = FrameDecoder::new(self.0.local_limit);
        let mut control_open = true;
        let reason = loop {
            tokio::select! {
                e = self.0.quic.closed() => break connection_error(&e, &self.0.peer),
                r = self.0.quic.accept_uni() => match r {
                    Ok(recv) => { tokio::spawn(self.clone().read_channel(recv)); }
                    Err(e) => break connection_error(&e, &self.0.peer),
                },
                r = self.0.quic.accept_bi() => match r {
                    Ok((send, recv)) => {
                        // Counted from here, so a burst of requests still being read grows the credit.
                        let guard = InFlight::new(&self);
                        self.grow_stream_credit();
                        crate::eagerly(self.clone().read_request(send, recv, guard));
                    }
                    Err(e) => break connection_error(&e, &self.0.peer),
                },
                r = read_frame(&mut control, &decoder, &mut control_buf, &self.0.peer), if control_open => {
                    match r {
                        Ok(Some(Frame::Ack { stream, count })) => self.on_ack(stream, count),
                        Ok(Some(Frame::GoAway)) => {
                            self.0.goaway_received.store(true, Ordering::Relaxed);
                        }
                        Ok(None) => control_open = false,
                        Ok(Some(other)) => {
                            self.close(app_code::PROTOCOL, "unexpected frame on the control stream");
                            tracing::debug!(peer = %self.0.peer, frame = ?other, "protocol violation");
                            control_open = false;
                        }
                        Err(e) => {
                            self.close(app_code::PROTOCOL, &e.message);
                            control_open = false;
                        }
                    }
                }
            }
        };
        if self.0.closed.set(reason.clone()).is_ok() {
            self.0.closed_notify.notify_waiters();
            self.0.handler.on_closed(&self, &reason);
        }
    }

    /// Raises the peer's request-stream credit once half of it is in use.
    fn grow_stream_credit(&self) {
        let limit = self.0.stream_limit.load(Ordering::Relaxed);
        if let Some(next) = grown_stream_credit(limit, self.in_flight(), self.0.max_streams) {
            self.0.stream_limit.store(next, Ordering::Relaxed);
            self.0
                .quic
                .set_max_concurrent_bi_streams(quinn::VarInt::from_u32(next));
        }
    }

    fn on_ack(&self, stream: u64, count: u64) {
        if stream != self.0.channel_id.load(Ordering::Relaxed) {
            return;
        }
        let advanced = self.0.acked.send_if_modified(|a| {
            let grew = count > *a;
            if grew {
                *a = count;
            }
            grew
        });
        if advanced {
            self.0.handler.on_acked(self, count);
        }
    }

    /// Reads one of the peer's channel streams: MESSAGE frames, in order, in batches.
    async fn read_channel(self, mut recv: quinn::RecvStream) {
        let stream = recv.id().index();
        let decoder = FrameDecoder::new(self.0.local_limit);
        let mut buf = BytesMut::new();
        let mut delivered = 0u64;
        // Several received pieces per read: one lock of the connection instead of one each.
        let mut chunks: [Bytes; 32] = Default::default();
        loop {
            let n = match recv.read_chunks(&mut chunks).await {
                Ok(Some(n)) => n,
                Ok(None) | Err(_) => return,
            };
            for chunk in &mut chunks[..n] {
                buf.extend_from_slice(&std::mem::take(chunk));
            }
            let mut batch = Vec::new();
            let mut bytes = 0u64;
            let failure = loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(Frame::Message(body))) => {
                        bytes += body.len() as u64;
                        batch.push(body);
                    }
                    Ok(None) => break None,
                    Ok(Some(other)) => {
                        break Some(Error::protocol(format!(
                            "{other:?} is not allowed on a channel stream"
                        )))
                    }
                    Err(e) => break Some(e),
                }
            };
            if !batch.is_empty() {
                let n = batch.len() as u64;
                delivered += n;
                self.0.messages_in.fetch_add(n, Ordering::Relaxed);
                self.0.bytes_in.fetch_add(bytes, Ordering::Relaxed);
                self.touch();
                let receipt = Receipt { stream, delivered };
                self.0.handler.on_messages(&self, batch, receipt);
            }
            if let Some(e) = failure {
                // Only this stream is broken: stop it, keep the connection.
                tracing::debug!(peer = %self.0.peer, error = %e, "rejecting channel stream");
                let _ = recv.stop(app_code::for_stream_error(&e).into());
                return;
            }
        }
    }

    /// Tells the peer that the messages up to `receipt` reached the application.
    pub fn acknowledge(&self, receipt: Receipt) {
        let Receipt { stream, delivered } = receipt;
        let mut due = lock(&self.0.acks_due);
        match due.iter_mut().find(|(s, _)| *s == stream) {
            Some(entry) => entry.1 = delivered,
            None => due.push((stream, delivered)),
        }
        drop(due);
        self.0.control_wake.notify_one();
    }

    /// Reads one REQUEST off a fresh bidi stream and hands it to the handler.
    async fn read_request(
        self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        guard: InFlight,
    ) {
        let decoder = FrameDecoder::new(self.0.local_limit);
        let mut buf = BytesMut::new();
        // A stream that never finishes its request must not hold a slot forever.
        let read = tokio::time::timeout(
            self.0.request_timeout,
            read_frame(&mut recv, &decoder, &mut buf, &self.0.peer),
        );
        let frame = read.await.unwrap_or_else(|_| {
            let ms = self.0.request_timeout.as_millis();
            Err(Error::request_not_received(&self.0.peer, ms))
        });
        match frame {
            Ok(Some(Frame::Request { id, body })) => {
                self.0.requests_in.fetch_add(1, Ordering::Relaxed);
                self.0
                    .bytes_in
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                self.touch();
                let handler = self.0.handler.clone();
                handler.on_request(IncomingRequest {
                    conn: self,
                    id,
                    body,
                    send: Some(send),
                    _guard: guard,
                });
            }
            Ok(_) => {
                let _ = send.reset(app_code::PROTOCOL.into());
                let _ = recv.stop(app_code::PROTOCOL.into());
            }
            Err(e) => {
                // Tell the requester why, then stop reading the rest of its body.
                let mut out = BytesMut::new();
                frame::put_error(&mut out, 0, e.code, &e.message);
                let _ = send.write_chunk(out.freeze()).await;
                let _ = send.finish();
                let _ = recv.stop(app_code::for_stream_error(&e).into());
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts an open request for `is_idle`, `in_flight` and graceful shutdown.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(conn: &Connection) -> Self {
        conn.0.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(conn.0.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

/// Resets a request stream if the request is abandoned (timeout or drop) before its answer.
struct CancelOnDrop<'a>(Option<quinn::StreamId>, &'a mut quinn::SendStream);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.is_some() {
            let _ = self.1.reset(app_code::CANCELLED.into());
        }
    }
}

/// A request from the peer. Answer it with [`respond`](Self::respond); dropping it unanswered
/// resets its stream, so the requester gets ERR_STREAM_RESET instead of waiting.
pub struct IncomingRequest {
    conn: Connection,
    id: u64,
    body: Bytes,
    send: Option<quinn::SendStream>,
    _guard: InFlight,
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("conn", &self.conn)
            .field("id", &self.id)
            .field("len", &self.body.len())
            .finish()
    }
}

impl IncomingRequest {
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Sends the answer: a RESPONSE, or for `Err` an ERROR frame with its code and text.
    /// A response over the requester's limit is replaced by ERR_MESSAGE_TOO_LARGE.
    pub async fn respond(mut self, answer: std::result::Result<&[u8], Error>) -> Result<()> {
        let mut out = BytesMut::new();
        let limit = self.conn.0.peer_limit;
        match answer {
            Ok(body) => {
                if let Err(e) = frame::put_response(&mut out, self.id, body, limit) {
                    frame::put_error(
                        &mut out,
                        self.id,
                        e.code,
                        &format!("response: {}", e.message),
                    );
                } else {
                    self.conn
                        .0
                        .bytes_out
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                }
            }
            Err(e) => frame::put_error(&mut out, self.id, e.code, &e.message),
        }
        let Some(mut send) = self.send.take() else {
            return Ok(());
        };
        let peer = self.conn.0.peer.clone();
        send.write_chunk(out.freeze())
            .await
            .map_err(|e| write_error(&e, &peer))?;
        let _ = send.finish();
        // Stay in flight until the peer has the whole answer, so a graceful close that
        // waits for in-flight requests never cuts an answer off.
        let _ = send.stopped().await;
        Ok(())
    }
}

impl Drop for IncomingRequest {
    fn drop(&mut self) {
        if let Some(mut send) = self.send.take() {
            let _ = send.reset(app_code::CANCELLED.into());
        }
    }
}

/// Reads until one whole frame is decoded (or the stream ends cleanly: `None`).
/// Sends our HELLO on our control stream (our first uni stream) and reads the peer's off
/// theirs; neither side waits for the other before sending. A server passes its handshake
/// future: it sends before the handshake completes and reads only after.
async fn exchange_hellos(
    quic: &quinn::Connection,
    ours: &Hello,
    handshake: Option<quinn::ZeroRttAccepted>,
    peer: &str,
) -> Result<(quinn::SendStream, quinn::RecvStream, BytesMut, Hello)> {
    let mut send = quic
        .open_uni()
        .await
        .map_err(|e| connection_error(&e, peer))?;
    let mut out = BytesMut::new();
    frame::put_hello(&mut out, ours);
    send.write_all(&out)
        .await
        .map_err(|e| write_error(&e, peer))?;
    if let Some(handshake) = handshake {
        handshake.await;
    }
    let mut recv = quic
        .accept_uni()
        .await
        .map_err(|e| connection_error(&e, peer))?;
    let mut buf = BytesMut::new();
    let decoder = FrameDecoder::new(ours.max_message_size);
    match read_frame(&mut recv, &decoder, &mut buf, peer).await? {
        Some(Frame::Hello(theirs)) => Ok((send, recv, buf, theirs)),
        other => Err(Error::protocol(format!(
            "expected HELLO from {peer}, got {other:?}"
        ))),
    }
}

/// Runs the negotiation on both HELLOs; a refusal closes the connection with its reason.
fn agree(
    quic: &quinn::Connection,
    ours: &Hello,
    theirs: &Hello,
    is_client: bool,
) -> Result<Negotiated> {
    ours.agree(theirs, is_client).inspect_err(|e| {
        quic.close(app_code::NEGOTIATION.into(), e.message.as_bytes());
    })
}

async fn read_frame(
    recv: &mut quinn::RecvStream,
    decoder: &FrameDecoder,
    buf: &mut BytesMut,
    peer: &str,
) -> Result<Option<Frame>> {
    loop {
        if let Some(frame) = decoder.decode(buf)? {
            return Ok(Some(frame));
        }
        match recv.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) if buf.is_empty() => return Ok(None),
            Ok(None) => return Err(Error::protocol(format!("{peer} ended a stream mid-frame"))),
            Err(e) => return Err(read_error(&e, peer)),
        }
    }
}

fn read_error(e: &quinn::ReadError, peer: &str) -> Error {
    match e {
        quinn::ReadError::Reset(code) => app_code::stream_error(code.into_inner(), peer),
        quinn::ReadError::ConnectionLost(c) => connection_error(c, peer),
        other => Error::new(ErrorCode::StreamReset, format!("stream to {peer}: {other}")),
    }
}

fn write_error(e: &quinn::WriteError, peer: &str) -> Error {
    match e {
        quinn::WriteError::Stopped(code) => app_code::stream_error(code.into_inner(), peer),
        quinn::WriteError::ConnectionLost(c) => connection_error(c, peer),
        other => Error::new(ErrorCode::StreamReset, format!("stream to {peer}: {other}")),
    }
}
