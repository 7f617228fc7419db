//! Unreliable datagrams (QUIC DATAGRAM frames, RFC 9221): never retransmitted, never
//! waiting behind a lost packet. Each carries a varint sequence number ahead of the
//! application's bytes, so that the receiver can count the ones that never arrived.
//!
//! Sending never blocks: a datagram waits in a bounded queue while congestion control
//! holds the connection back, and when the queue is full the oldest is dropped (the fresh
//! reading of telemetry matters more than a stale one).
//!
//! Over WebTransport each datagram starts with the session's quarter stream id (an HTTP/3
//! datagram, RFC 9297): the `prefix` the calls here take.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use quicwire_core::{varint, Error, ErrorCode};
use quinn_proto::{Connection, SendDatagramError};

/// Where a connection's datagrams go and come from: quinn-proto's DATAGRAM frames, or a
/// browser's WebTransport datagrams.
pub(crate) trait DatagramPath {
    /// The largest datagram the path carries now; None when the peer takes none.
    fn max_datagram(&mut self) -> Option<usize>;
    /// Hands `d` over to send, or gives it back while there is no room (`Err(Some)`);
    /// `Err(None)` when it cannot go at all.
    fn send_datagram(&mut self, d: Bytes) -> Result<(), Option<Bytes>>;
    fn recv_datagram(&mut self) -> Option<Bytes>;
}

impl DatagramPath for Connection {
    fn max_datagram(&mut self) -> Option<usize> {
        self.datagrams().max_size()
    }

    fn send_datagram(&mut self, d: Bytes) -> Result<(), Option<Bytes>> {
        match self.datagrams().send(d, false) {
            Ok(()) => Ok(()),
            Err(SendDatagramError::Blocked(d)) => Err(Some(d)),
            Err(_) => Err(None),
        }
    }

    fn recv_datagram(&mut self) -> Option<Bytes> {
        self.datagrams().recv()
    }
}

/// Datagrams that may wait for the connection to send them (beyond the few kilobytes that
/// quinn-proto holds); past this the oldest is dropped.
pub const DATAGRAM_QUEUE: usize = 1024;

/// One connection's datagrams and their counters.
#[derive(Debug, Default)]
pub(crate) struct Datagrams {
    /// Encoded datagrams waiting for room in quinn-proto's send buffer, oldest first.
    queue: VecDeque<Bytes>,
    next_seq: u64,
    /// One past the highest sequence number received.
    seen: u64,
    /// The largest datagram the application could send when last looked at (0: none).
    pub max_size: u64,
    pub counters: DatagramCounters,
}

/// Counters of one connection's datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramCounters {
    /// Handed to QUIC to send.
    pub sent: u64,
    pub received: u64,
    /// Dropped from the send queue (it was full), or too large for the path when their
    /// turn came (it shrank).
    pub dropped: u64,
    /// The peer's datagrams that never arrived (gaps in their numbering, the peer's drops
    /// included), as far as seen.
    pub lost: u64,
}

impl Datagrams {
    /// Looks again at the largest datagram the application may send (the path's MTU may
    /// have moved); `None` when the peer takes none.
    pub fn update_max_size(
        &mut self,
        quic: &mut impl DatagramPath,
        prefix: Option<u64>,
    ) -> Option<usize> {
        // The sequence number takes up to 8 bytes: a bound that does not move with it.
        let head = 8 + prefix.map_or(0, varint::size);
        let max = quic.max_datagram().map(|m| m.saturating_sub(head));
        self.max_size = max.unwrap_or(0) as u64;
        max
    }

    /// Queues `body` and sends what the connection has room for.
    pub fn send(
        &mut self,
        quic: &mut impl DatagramPath,
        body: &[u8],
        prefix: Option<u64>,
    ) -> Result<(), Error> {
        let max = self
            .update_max_size(quic, prefix)
            .ok_or_else(|| Error::new(ErrorCode::Protocol, "the peer does not accept datagrams"))?;
        if body.len() > max {
            return Err(Error::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "datagram of {} bytes; this path carries at most {max}",
                    body.len()
                ),
            ));
        }
        let mut d = BytesMut::with_capacity(16 + body.len());
        if let Some(prefix) = prefix {
            varint::put(&mut d, prefix);
        }
        varint::put(&mut d, self.next_seq);
        d.put_slice(body);
        self.next_seq += 1;
        self.queue.push_back(d.freeze());
        if self.queue.len() > DATAGRAM_QUEUE {
            self.queue.pop_front();
            self.counters.dropped += 1;
        }
        self.flush(quic);
        Ok(())
    }

    /// Hands queued datagrams to quinn-proto while it has room.
    pub fn flush(&mut self, quic: &mut impl DatagramPath) {
        while let Some(d) = self.queue.pop_front() {
            match quic.send_datagram(d) {
                Ok(()) => self.counters.sent += 1,
                Err(Some(d)) => {
                    self.queue.push_front(d);
                    return;
                }
                Err(None) => self.counters.dropped += 1,
            }
        }
    }

    /// The peer's datagrams that arrived, their sequence numbers stripped.
    pub fn receive(
        &mut self,
        quic: &mut impl DatagramPath,
        out: &mut Vec<Bytes>,
        prefix: Option<u64>,
    ) {
        while let Some(mut d) = quic.recv_datagram() {
            if let Some(prefix) = prefix {
                // Another session's, or not an HTTP/3 datagram: not ours.
                match varint::get(&d) {
                    Some((p, used)) if p == prefix => drop(d.split_to(used)),
                    _ => continue,
                }
            }
            // A datagram without its number did not come from quicwire: not ours to report.
            let Some((seq, used)) = varint::get(&d) else {
                continue;
            };
            let _ = d.split_to(used);
            self.counters.received += 1;
            self.seen = self.seen.max(seq.saturating_add(1));
            out.push(d);
        }
        self.counters.lost = self.seen.saturating_sub(self.counters.received);
    }
}
