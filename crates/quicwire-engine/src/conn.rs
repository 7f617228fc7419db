//! One connection as the engine keeps it: quinn-proto's state machine, the quicwire session
//! on it, and the engine's bookkeeping (where it came from, whether a call moved it, when
//! it next needs the timer).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use quicwire_core::PoolKey;
use quinn_proto::{Connection, ConnectionHandle};
use web_time::Instant;

use crate::datagram::Datagrams;
use crate::qlog::QlogBuffer;
use crate::session::Session;
use crate::ConnId;

/// How a connection came to be: dialed by this client (its pool key), or accepted by this
/// server from an address (which admission counts it under).
#[derive(Debug)]
pub(crate) enum Origin {
    Dialed(PoolKey),
    Accepted(IpAddr),
}

/// A connection and its quicwire session.
pub(crate) struct Conn {
    /// quinn-proto's handle (a slab slot, reused once the connection is gone).
    pub handle: ConnectionHandle,
    pub quic: Connection,
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
    let deadline = [conn.quic.poll_timeout(), conn.session.next_deadline()]
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
