//! Messages on their way to one connection's channel stream: framed against the peer's
//! limit, and placed by the send buffer. What fits the window goes out now, framed back to
//! back so that the stream gets one large write (quinn tracks one large write far more
//! cheaply than many small ones); what does not is held until the peer's ACKs make room;
//! and past the buffer's bound a message is refused with ERR_FLOW_CONTROL_PAUSED, so
//! memory stays bounded however slowly the peer reads.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quicwire_core::frame;
use quicwire_core::{Error, ErrorCode};

/// Bodies of this many bytes or more travel in buffers of their own: framed apart on the
/// way out (quinn sends a `Bytes` as it is), handed over apart on the way in.
pub const LARGE_BODY: usize = 16 * 1024;

/// The send buffer of one lane of a connection, as the session keeps it.
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
    /// Body sizes of the messages on the channel the peer has not acknowledged, oldest first.
    unacked: VecDeque<u64>,
    unacked_bytes: u64,
    /// Messages waiting for room, in order.
    held: VecDeque<Held>,
    held_bytes: u64,
}

/// A message waiting for room: its frame (head and body).
#[derive(Debug)]
struct Held {
    head: Bytes,
    body: Bytes,
}

impl SendBuffer {
    /// The peer acknowledged `n` more messages; returns the frames now let out, in order.
    pub fn acked(&mut self, n: u64, high: u64) -> Vec<Bytes> {
        for _ in 0..n {
            match self.unacked.pop_front() {
                Some(size) => self.unacked_bytes -= size,
                None => break,
            }
        }
        let mut chunks = Vec::new();
        let mut small = BytesMut::new();
        while let Some(next) = self.held.front() {
            let size = next.body.len() as u64;
            if !fits(self.unacked_bytes, size, high) {
                break;
            }
            let Some(held) = self.held.pop_front() else {
                break;
            };
            self.held_bytes -= size;
            self.unacked_bytes += size;
            self.unacked.push_back(size);
            // Small frames merge into one buffer, as when they were first framed.
            if held.body.len() >= LARGE_BODY {
                if !small.is_empty() {
                    chunks.push(small.split().freeze());
                }
                chunks.push(held.head);
                chunks.push(held.body);
            } else {
                small.extend_from_slice(&held.head);
                small.extend_from_slice(&held.body);
            }
        }
        if !small.is_empty() {
            chunks.push(small.freeze());
        }
        chunks
    }

    /// Messages held for room now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// The window rule, the same for every message: it goes now if nothing is in flight or it
/// fits under `high` with what is.
fn fits(unacked: u64, size: u64, high: u64) -> bool {
    unacked == 0 || unacked + size <= high
}

/// How messages are sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// The lane: each priority in use has its own channel stream at that stream priority
    /// (higher first), its own order and send buffer; a connection has at most
    /// [`quicwire_core::config::MAX_LANES`] (ERR_INVALID_ARGUMENT past them).
    pub priority: i32,
    /// Safe to repeat: on a connection resuming with 0-RTT they may go as 0-RTT data, which
    /// an attacker can replay (unless messages sent before them on the lane wait for the
    /// handshake: order holds).
    pub idempotent: bool,
    /// The sender does not wait for the peer's ACK: on a connection of protocol version 3
    /// they go as LAZY_MESSAGE, which the peer acknowledges late, in a later ACK (while the
    /// lane's window is at least half free; past that as MESSAGE, whose ACK frees it).
    pub unconfirmed: bool,
}

/// Messages for one connection, placed as they are pushed (see the module). Build it with
/// `Engine::outbox`, push the messages, and give it to `Engine::send` straight away: it
/// plans against the send buffer as it was when built.
#[derive(Debug)]
pub struct Outbox {
    peer: Arc<str>,
    /// The lane (send priority) the messages go on, and whether they may go as 0-RTT data.
    pub(crate) options: SendOptions,
    /// The largest body the peer accepts.
    limit: u64,
    /// The peer takes LAZY_MESSAGE frames (protocol version 3).
    lazy_frames: bool,
    high: u64,
    /// The send buffer as it will be once this is sent.
    unacked_bytes: u64,
    held_bytes: u64,
    holding: bool,
    /// Frames that go out now.
    pub(crate) chunks: Vec<Bytes>,
    open: BytesMut,
    pub(crate) sizes: Vec<u64>,
    /// Frames held for room.
    held: Vec<Held>,
    /// Body bytes in all, for the connection's stats.
    pub(crate) bytes: u64,
}

impl Outbox {
    pub(crate) fn new(
        peer: Arc<str>,
        options: SendOptions,
        limit: u64,
        lazy_frames: bool,
        high: u64,
        buffer: &SendBuffer,
    ) -> Outbox {
        Outbox {
            peer,
            options,
            limit,
            lazy_frames,
            high,
            unacked_bytes: buffer.unacked_bytes,
            held_bytes: buffer.held_bytes,
            holding: !buffer.held.is_empty(),
            chunks: Vec::new(),
            open: BytesMut::new(),
            sizes: Vec::new(),
            held: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds a message, copying its bytes.
    pub fn push(&mut self, body: &[u8]) -> Result<(), Error> {
        self.push_shared(body, |_| None)
    }

    /// Adds a message held as `Bytes` (a large one is sent from it without a copy).
    pub fn push_bytes(&mut self, body: Bytes) -> Result<(), Error> {
        let shared = body.clone();
        self.push_shared(&body, move |_| Some(shared))
    }

    /// Adds a message; a large body is copied unless `shared` has it as `Bytes` already
    /// (memory a shell lent out to be filled: quinn then sends from it as it is).
    pub fn push_shared(
        &mut self,
        body: &[u8],
        shared: impl FnOnce(&[u8]) -> Option<Bytes>,
    ) -> Result<(), Error> {
        let size = body.len() as u64;
        if size > self.limit {
            return Err(Error::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "message of {size} bytes exceeds {}'s maxMessageSize of {} bytes",
                    self.peer, self.limit
                ),
            ));
        }
        let now = !self.holding && fits(self.unacked_bytes, size, self.high);
        if !now && self.held_bytes + size > self.high {
            return Err(Error::new(
                ErrorCode::FlowControlPaused,
                format!(
                    "{} is not reading fast enough: {} bytes already wait (sendBufferHigh {})",
                    self.peer,
                    self.unacked_bytes + self.held_bytes,
                    self.high
                ),
            ));
        }
        let large = body.len() >= LARGE_BODY;
        let body_bytes = |body: &[u8]| {
            if large {
                shared(body).unwrap_or_else(|| Bytes::copy_from_slice(body))
            } else {
                Bytes::copy_from_slice(body)
            }
        };
        if now {
            // Lazy only while the window stays half free: a MESSAGE's ACK frees it in time.
            let lazy = self.options.unconfirmed
                && self.lazy_frames
                && self.unacked_bytes + size <= self.high / 2;
            frame::put_message_head(&mut self.open, body.len(), lazy, self.limit)?;
            if large {
                self.chunks.push(self.open.split().freeze());
                self.chunks.push(body_bytes(body));
            } else {
                self.open.extend_from_slice(body);
            }
            self.unacked_bytes += size;
            self.sizes.push(size);
        } else {
            let mut head = BytesMut::new();
            frame::put_message_head(&mut head, body.len(), false, self.limit)?;
            self.held.push(Held {
                head: head.freeze(),
                body: body_bytes(body),
            });
            self.holding = true;
            self.held_bytes += size;
        }
        self.bytes += size;
        Ok(())
    }

    /// Messages pushed.
    pub fn len(&self) -> usize {
        self.sizes.len() + self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the frames that go now, and hands the held ones to `buffer`, whose unacked
    /// list takes the sizes of the ones that go.
    pub(crate) fn commit(&mut self, buffer: &mut SendBuffer) {
        if !self.open.is_empty() {
            self.chunks.push(self.open.split().freeze());
        }
        for size in self.sizes.drain(..) {
            buffer.unacked.push_back(size);
            buffer.unacked_bytes += size;
        }
        for held in self.held.drain(..) {
            buffer.held_bytes += held.body.len() as u64;
            buffer.held.push_back(held);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn outbox(buffer: &SendBuffer, high: u64) -> Outbox {
        Outbox::new(
            "peer".into(),
            SendOptions::default(),
            1 << 20,
            true,
            high,
            buffer,
        )
    }

    #[test]
    fn the_window_holds_then_refuses_and_acks_release_in_order() {
        let mut buffer = SendBuffer::default();
        let mut out = outbox(&buffer, 100);
        out.push(&[1; 60]).unwrap(); // goes now: nothing in flight
        out.push(&[2; 60]).unwrap(); // 120 > 100: held
        out.push(&[3; 30]).unwrap(); // held behind it, in order
        let e = out.push(&[4; 20]).unwrap_err(); // 110 held > 100: refused
        assert_eq!(e.code, ErrorCode::FlowControlPaused);
        assert_eq!(out.len(), 3);
        out.commit(&mut buffer);
        assert_eq!((buffer.unacked_bytes, buffer.held_bytes), (60, 90));
        // The first is acknowledged: both held ones fit again, in order.
        let chunks = buffer.acked(1, 100);
        let bytes: Vec<u8> = chunks.concat();
        let mut reader = frame::FrameReader::new(1 << 20);
        reader.push(Bytes::from(bytes));
        for fill in [2u8, 3] {
            match reader.next_frame().unwrap() {
                Some(frame::Frame::Message(m)) => assert!(m.iter().all(|b| *b == fill)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((buffer.unacked_bytes, buffer.held()), (90, 0));
    }

    #[test]
    fn a_message_over_the_peers_limit_is_refused_alone() {
        let buffer = SendBuffer::default();
        let mut out = Outbox::new(
            "peer".into(),
            SendOptions::default(),
            10,
            true,
            100,
            &buffer,
        );
        assert_eq!(
            out.push(&[0; 11]).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        out.push(&[0; 10]).unwrap();
        assert_eq!(out.len(), 1);
    }
}
