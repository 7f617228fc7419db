//! Statistics types every binding reports. Counters are filled by the runtime; the shapes
//! live here so native and wasm report the same fields.

use crate::{Carrier, CongestionControl};

/// Traffic and path figures of one connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionStats {
    /// The peer's `host:port` (client side) or socket address (server side).
    pub peer: String,
    pub messages_out: u64,
    pub messages_in: u64,
    pub requests_out: u64,
    pub requests_in: u64,
    /// Payload bytes sent and received (frame bodies).
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Streams open now (channel streams and requests in flight).
    pub streams_open: u64,
    /// Smoothed round-trip time, milliseconds.
    pub rtt_ms: f64,
    /// The lowest round-trip time seen, milliseconds.
    pub min_rtt_ms: f64,
    /// Packets the QUIC stack declared lost, and their bytes.
    pub lost_packets: u64,
    pub lost_bytes: u64,
    /// UDP datagrams sent and received by QUIC.
    pub udp_tx: u64,
    pub udp_rx: u64,
    /// The congestion window (bytes that may be in flight), and how many times the
    /// controller cut it (loss or ECN).
    pub cwnd: u64,
    pub congestion_events: u64,
    /// The path's current maximum datagram size (bytes of UDP payload).
    pub mtu: u64,
    pub congestion_control: CongestionControl,
    /// Unreliable datagrams sent (handed to QUIC) and received; dropped from the send
    /// queue (full) before they went; the peer's that never arrived (gaps in their
    /// numbering). And the largest one this side may send, as of the connection's start
    /// or its last datagram sent (0: the peer takes none).
    pub datagrams_out: u64,
    pub datagrams_in: u64,
    pub datagrams_dropped: u64,
    pub datagrams_lost: u64,
    pub max_datagram_size: u64,
    /// 1 when this connection's 0-RTT data was taken (client), or it took the client's
    /// (server); 1 in `zero_rtt_rejected` when the server turned it down and it went again
    /// after the handshake. In totals, how many connections.
    pub zero_rtt_accepted: u64,
    pub zero_rtt_rejected: u64,
    /// What carries its datagrams (UDP, or TCP where UDP is blocked).
    pub carrier: Carrier,
}

impl ConnectionStats {
    /// Adds `other`'s counters into `self` (for totals); round-trip times and the MTU keep
    /// the maximum.
    pub fn accumulate(&mut self, other: &ConnectionStats) {
        self.messages_out += other.messages_out;
        self.messages_in += other.messages_in;
        self.requests_out += other.requests_out;
        self.requests_in += other.requests_in;
        self.bytes_out += other.bytes_out;
        self.bytes_in += other.bytes_in;
        self.streams_open += other.streams_open;
        self.rtt_ms = self.rtt_ms.max(other.rtt_ms);
        self.min_rtt_ms = self.min_rtt_ms.max(other.min_rtt_ms);
        self.lost_packets += other.lost_packets;
        self.lost_bytes += other.lost_bytes;
        self.udp_tx += other.udp_tx;
        self.udp_rx += other.udp_rx;
        self.cwnd += other.cwnd;
        self.congestion_events += other.congestion_events;
        self.mtu = self.mtu.max(other.mtu);
        self.congestion_control = other.congestion_control;
        self.datagrams_out += other.datagrams_out;
        self.datagrams_in += other.datagrams_in;
        self.datagrams_dropped += other.datagrams_dropped;
        self.datagrams_lost += other.datagrams_lost;
        self.max_datagram_size = self.max_datagram_size.max(other.max_datagram_size);
        self.zero_rtt_accepted += other.zero_rtt_accepted;
        self.zero_rtt_rejected += other.zero_rtt_rejected;
    }
}

/// A client pool at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolStats {
    /// Connections with work in flight.
    pub active: u64,
    /// Open connections with nothing in flight.
    pub idle: u64,
    pub created: u64,
    pub reused: u64,
    pub evicted: u64,
    pub failed: u64,
    /// Sum over every open connection.
    pub totals: ConnectionStats,
    /// One entry per open connection, keyed by `host:port`.
    pub connections: Vec<ConnectionStats>,
}
