//! What an engine reports to its driver: the typed events of [`Engine::poll_event`].
//!
//! [`Engine::poll_event`]: crate::Engine::poll_event

use std::sync::Arc;

use bytes::Bytes;
use quicwire_core::{Carrier, Encoding, Error};

use crate::ConnId;

/// A negotiated connection, as `Event::Connected` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The encoding both sides agreed on for bodies.
    pub encoding: Encoding,
    /// `host:port` as dialed (client side) or the peer's socket address (server side).
    pub peer: Arc<str>,
    /// The largest body the peer accepts.
    pub peer_max_message_size: u64,
    /// The largest datagram this side may send now (0: the peer takes none).
    pub max_datagram_size: u64,
    /// What carries its packets (UDP, or a stream tunnel).
    pub carrier: Carrier,
}

/// Proof that the peer's messages on one channel stream, up to a count, were handed to the
/// application: [`Engine::acknowledge`] it once the application has them, and the peer's
/// `send` resolves.
///
/// [`Engine::acknowledge`]: crate::Engine::acknowledge
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The channel stream's index.
    pub stream: u64,
    /// Messages delivered on it so far.
    pub delivered: u64,
    /// The messages came as 0-RTT data, before the client finished its handshake, so an
    /// attacker may have replayed them (`TransportConfig::early_data`). Not needed to
    /// acknowledge them.
    pub early: bool,
}

/// One thing that happened on a connection.
#[derive(Debug, Clone)]
pub enum Event {
    /// The handshake and the HELLO exchange are done: the connection is ready. A client's
    /// `connect` waits for this; a server counts the connection from here.
    Connected { conn: ConnId, info: ConnectionInfo },
    /// A message from the peer, in the order sent. A `Receipt` follows each run of them.
    Message {
        conn: ConnId,
        body: Bytes,
        /// It came as 0-RTT data (see [`Receipt::early`]).
        early: bool,
    },
    /// An unreliable datagram from the peer (`Engine::send_datagram`).
    Datagram { conn: ConnId, body: Bytes },
    /// A TLS secret of the connection as a key log line (`TransportConfig::key_log`).
    KeyLog { conn: ConnId, line: String },
    /// qlog records of the connection (JSON-SEQ, whole records; `TransportConfig::qlog`).
    /// The last may come after its `Closed`.
    Qlog { conn: ConnId, records: Bytes },
    /// The messages before it were handed over; acknowledge once the application has them.
    Receipt { conn: ConnId, receipt: Receipt },
    /// A request from the peer: answer it with `Engine::respond` and this handle (unique
    /// on its connection). `early`: it came as 0-RTT data, before the client finished its
    /// handshake, so an attacker may have replayed it; act on it only if that is harmless.
    Request {
        conn: ConnId,
        handle: u64,
        body: Bytes,
        early: bool,
        /// The requester's trace context, when it sent one (protocol version 2).
        trace: Option<Bytes>,
    },
    /// The answer to our request `id`.
    Response { conn: ConnId, id: u64, body: Bytes },
    /// Our request `id` failed: the peer's handler failed (ERR_REMOTE), it timed out,
    /// its stream was reset, or the connection closed.
    RequestFailed { conn: ConnId, id: u64, error: Error },
    /// The requester of the peer's request with this handle stopped waiting (it gave up,
    /// or its timeout passed) before it was answered. An answer still given is reported
    /// as not sent (`Engine::respond` fails with ERR_STREAM_RESET).
    RequestCancelled { conn: ConnId, handle: u64 },
    /// The peer's application has this many of the messages we sent on this connection's
    /// lane of `priority` (the sequence numbers `Engine::send` returns for that lane).
    Acked {
        conn: ConnId,
        priority: i32,
        delivered: u64,
    },
    /// The connection is closed (or failed to open), for this reason. The last event of
    /// the connection.
    Closed { conn: ConnId, error: Error },
}

impl Event {
    /// The connection the event is about.
    pub fn conn(&self) -> ConnId {
        match self {
            Event::Connected { conn, .. }
            | Event::Message { conn, .. }
            | Event::Datagram { conn, .. }
            | Event::KeyLog { conn, .. }
            | Event::Qlog { conn, .. }
            | Event::Receipt { conn, .. }
            | Event::Request { conn, .. }
            | Event::Response { conn, .. }
            | Event::RequestFailed { conn, .. }
            | Event::RequestCancelled { conn, .. }
            | Event::Acked { conn, .. }
            | Event::Closed { conn, .. } => *conn,
        }
    }
}
