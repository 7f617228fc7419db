//! What an engine reports of itself: its pool's and admission's counters, and each
//! connection's traffic and path figures.

use std::net::SocketAddr;

use quicwire_core::{ConnectionStats, PoolCounters};

use crate::ConnId;

/// An engine at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    /// A client's pool counters (all zero on a server).
    pub pool: PoolCounters,
    /// A server's connections that completed their handshake since start.
    pub accepted: u64,
    /// A server's handshakes that failed (TLS, negotiation, protocol).
    pub rejected: u64,
    /// A server's connections refused at a connection limit.
    pub refused: u64,
    /// A server's clients sent to prove their address with a retry token.
    pub retried: u64,
    /// Every open connection.
    pub connections: Vec<ConnectionEntry>,
    /// The figures of every connection that is no longer open (closing, or gone), added
    /// up: with those of the open ones, what the endpoint did since it started.
    pub ended: ConnectionStats,
}

/// One open connection in [`EngineStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionEntry {
    pub id: ConnId,
    /// Nothing in flight: no request either way, every message acknowledged.
    pub idle: bool,
    pub stats: ConnectionStats,
}

/// Where one connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionState {
    /// Negotiated, and neither closed nor closing.
    pub open: bool,
    /// The peer sent GOAWAY: nothing new may start on it.
    pub going_away: bool,
    /// Nothing in flight either way.
    pub idle: bool,
    /// The peer's requests still being read or answered.
    pub serving: usize,
    /// The peer's address now (it may migrate).
    pub remote: SocketAddr,
}
