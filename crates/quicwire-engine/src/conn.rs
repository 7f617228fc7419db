//! One connection as the engine keeps it: quinn-proto's state machine, the quicwire session
//! on it, and the engine's bookkeeping (where it came from, whether a call moved it, when
//! it next needs the timer).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use quicwire_core::quic::connection_error;
use quicwire_core::{Carrier, Error, PoolKey};
use quinn_proto::{Connection, ConnectionHandle, Dir, Event as QuicEvent, StreamEvent, StreamId};
use web_time::Instant;

use crate::datagram::{DatagramPath, Datagrams};
use crate::qlog::QlogBuffer;
use crate::session::Session;
use crate::streams::{Read, Streams};
use crate::web::WebStreams;
use crate::ConnId;

/// What a session runs on: a QUIC connection of quinn-proto's, or a browser's
/// WebTransport session that its page moves (a client in a browser).
// Connections are boxed whole already: QUIC, the common case, stays inline in its box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Link {
    /// QUIC on our own sockets; `handle` is quinn-proto's for it (a slab slot, reused once
    /// the connection is gone).
    Quic {
        handle: ConnectionHandle,
        conn: Connection,
    },
    Web(Box<WebStreams>),
}

/// `$body` with `$l` bound to whichever link `$link` is.
macro_rules! each {
    ($link:expr, $l:ident => $body:expr) => {
        match $link {
            Link::Quic { conn: $l, .. } => $body,
            Link::Web(web) => {
                let $l = &mut **web;
                $body
            }
        }
    };
    (ref $link:expr, $l:ident => $body:expr) => {
        match $link {
            Link::Quic { conn: $l, .. } => $body,
            Link::Web(web) => {
                let $l = &**web;
                $body
            }
        }
    };
}

/// What happened on a link, for the engine's drive loop.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// The handshake (or the browser's session) is done.
    Connected,
    /// Streams have something new: data, ends, new streams, credit.
    Streams,
    /// All of a stream's data reached the peer.
    Finished(StreamId),
    /// The peer asked us to stop sending on a stream.
    Stopped(StreamId),
    DatagramIn,
    DatagramsUnblocked,
    /// The connection is gone.
    Lost(Error),
}

impl Link {
    /// What happened since the last call, oldest first.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        let quic = match self {
            Link::Quic { conn, .. } => conn,
            Link::Web(w) => return w.poll_event(),
        };
        loop {
            let event = match quic.poll()? {
                QuicEvent::Connected => LinkEvent::Connected,
                QuicEvent::Stream(StreamEvent::Finished { id }) => LinkEvent::Finished(id),
                QuicEvent::Stream(StreamEvent::Stopped { id, .. }) => LinkEvent::Stopped(id),
                QuicEvent::Stream(_) => LinkEvent::Streams,
                QuicEvent::ConnectionLost { reason } => LinkEvent::Lost(connection_error(
                    &reason,
                    &quic.remote_address().to_string(),
                )),
                QuicEvent::DatagramReceived => LinkEvent::DatagramIn,
                QuicEvent::DatagramsUnblocked => LinkEvent::DatagramsUnblocked,
                _ => continue,
            };
            return Some(event);
        }
    }

    pub fn quic(&mut self) -> Option<&mut Connection> {
        match self {
            Link::Quic { conn, .. } => Some(conn),
            Link::Web(_) => None,
        }
    }

    /// quinn-proto's handle, for QUIC on our own sockets.
    pub fn handle(&self) -> Option<ConnectionHandle> {
        match self {
            Link::Quic { handle, .. } => Some(*handle),
            Link::Web(_) => None,
        }
    }

    /// When quinn-proto next needs `handle_timeout` (a browser keeps its own timers).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.quic().and_then(|q| q.poll_timeout())
    }

    /// Nothing more will come or go: it can be forgotten.
    pub fn is_drained(&self) -> bool {
        match self {
            Link::Quic { conn, .. } => conn.is_drained(),
            Link::Web(w) => w.is_closed(),
        }
    }

    /// The peer's address; a browser's session shows none.
    pub fn remote_address(&self) -> SocketAddr {
        match self {
            Link::Quic { conn, .. } => conn.remote_address(),
            Link::Web(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        }
    }

    pub fn carrier(&self) -> Carrier {
        match self {
            Link::Quic { conn, .. } => Carrier::of(&conn.remote_address()),
            Link::Web(_) => Carrier::WebTransport,
        }
    }
}

impl Streams for Link {
    fn open(&mut self, dir: Dir) -> Option<StreamId> {
        each!(self, l => l.open(dir))
    }
    fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        each!(self, l => l.accept(dir))
    }
    fn write(&mut self, id: StreamId, chunks: &mut [Bytes]) -> Option<usize> {
        each!(self, l => l.write(id, chunks))
    }
    fn finish(&mut self, id: StreamId) {
        each!(self, l => l.finish(id))
    }
    fn reset(&mut self, id: StreamId, code: u64) {
        each!(self, l => l.reset(id, code))
    }
    fn stop(&mut self, id: StreamId, code: u64) {
        each!(self, l => l.stop(id, code))
    }
    fn stopped(&mut self, id: StreamId) -> Option<u64> {
        each!(self, l => l.stopped(id))
    }
    fn priority(&mut self, id: StreamId) -> i32 {
        each!(self, l => l.priority(id))
    }
    fn set_priority(&mut self, id: StreamId, priority: i32) {
        each!(self, l => l.set_priority(id, priority))
    }
    fn read(&mut self, id: StreamId, max: usize, sink: &mut dyn FnMut(Bytes)) -> Read {
        each!(self, l => l.read(id, max, sink))
    }
    fn close(&mut self, now: Instant, code: u32, reason: &str) {
        each!(self, l => Streams::close(l, now, code, reason))
    }
    fn is_handshaking(&self) -> bool {
        each!(ref self, l => Streams::is_handshaking(l))
    }
    fn accepted_0rtt(&self) -> bool {
        each!(ref self, l => Streams::accepted_0rtt(l))
    }
    fn alpn(&self) -> Option<Vec<u8>> {
        each!(ref self, l => l.alpn())
    }
    fn peer(&self) -> String {
        each!(ref self, l => l.peer())
    }
    fn set_max_concurrent_streams(&mut self, dir: Dir, count: u32) {
        each!(self, l => Streams::set_max_concurrent_streams(l, dir, count))
    }
}

impl DatagramPath for Link {
    fn max_datagram(&mut self) -> Option<usize> {
        each!(self, l => l.max_datagram())
    }
    fn send_datagram(&mut self, d: Bytes) -> Result<(), Option<Bytes>> {
        each!(self, l => l.send_datagram(d))
    }
    fn recv_datagram(&mut self) -> Option<Bytes> {
        each!(self, l => l.recv_datagram())
    }
}

/// How a connection came to be: dialed by this client (its pool key), or accepted by this
/// server from an address (which admission counts it under).
#[derive(Debug)]
pub(crate) enum Origin {
    Dialed(PoolKey),
    Accepted(IpAddr),
}

/// A connection and its quicwire session.
pub(crate) struct Conn {
    pub link: Link,
    pub session: Session,
    pub datagrams: Datagrams,
    /// quinn-proto holds datagrams from the peer not taken yet (they wait for negotiation).
    pub datagrams_in: bool,
    /// Its qlog trace, when the engine traces.
    pub qlog: Option<QlogBuffer>,
    /// `host:port` as dialed (client side) or the peer's address (server side).
    pub peer: Arc<str>,
    pub origin: Origin,
    /// Its close was already reported (a failed negotiation says why itself).
    pub reported: bool,
    /// In `Engine::touched` (a call moved it since the last `drive`).
    pub touched: bool,
    /// In `Engine::sending` (it may have datagrams to send).
    pub sending: bool,
    /// Its entry in `Engine::timers`: when it next needs `on_timeout`.
    pub deadline: Option<Instant>,
}

impl Conn {
    /// Its pool key, on a client.
    pub fn key(&self) -> Option<&PoolKey> {
        match &self.origin {
            Origin::Dialed(key) => Some(key),
            Origin::Accepted(_) => None,
        }
    }

    /// Open for traffic: negotiated, and neither closed nor closing.
    pub fn is_open(&self) -> bool {
        !self.reported && self.session.is_ready()
    }
}

/// Files a connection's next deadline (its QUIC timers, its request timeouts) in `timers`.
pub(crate) fn schedule(timers: &mut BTreeSet<(Instant, ConnId)>, id: ConnId, conn: &mut Conn) {
    let deadline = [conn.link.poll_timeout(), conn.session.next_deadline()]
        .into_iter()
        .flatten()
        .min();
    if deadline != conn.deadline {
        if let Some(old) = conn.deadline {
            timers.remove(&(old, id));
        }
        if let Some(new) = deadline {
            timers.insert((new, id));
        }
        conn.deadline = deadline;
    }
}

/// Marks a connection a call moved, for the next `drive` to look at.
pub(crate) fn touch(touched: &mut Vec<ConnId>, id: ConnId, conn: &mut Conn) {
    if !conn.touched {
        conn.touched = true;
        touched.push(id);
    }
}
