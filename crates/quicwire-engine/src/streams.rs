//! The streams a quicwire session runs on. A session only opens, accepts, writes and reads
//! streams; [`Streams`] is that much of a connection, so that one session implementation
//! serves every kind: quinn-proto's connections (QUIC, and WebTransport on a server), and a
//! browser's WebTransport session, whose streams the page moves (`crate::web`).

use bytes::Bytes;
use quinn_proto::{Connection, Dir, ReadError, StreamId, VarInt, WriteError};
use web_time::Instant;

/// The largest chunk one read of quinn-proto's hands over.
const READ_CHUNK: usize = 64 * 1024;

/// How a read left a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// More may come.
    Open,
    /// Its end (FIN) was read.
    Ended,
    /// The peer reset it with this code.
    Reset(u64),
    /// It cannot be read (never opened, or read to its end already).
    Gone,
}

/// A connection's streams, as a session uses them.
pub(crate) trait Streams {
    /// Opens a stream, or None while the peer's stream limit is reached.
    fn open(&mut self, dir: Dir) -> Option<StreamId>;
    /// The peer's next new stream.
    fn accept(&mut self, dir: Dir) -> Option<StreamId>;
    /// Writes as much of `chunks` as flow control takes now: how many whole chunks (a chunk
    /// written in part is cut to its rest), or None when the stream is gone (stopped or
    /// reset).
    fn write(&mut self, id: StreamId, chunks: &mut [Bytes]) -> Option<usize>;
    fn finish(&mut self, id: StreamId);
    /// Resets our side of `id` with `code` (as it goes on the wire).
    fn reset(&mut self, id: StreamId, code: u64);
    /// Asks the peer to stop sending on `id`, with `code` (as it goes on the wire).
    fn stop(&mut self, id: StreamId, code: u64);
    /// The peer asked us to stop sending on `id`: its code.
    fn stopped(&mut self, id: StreamId) -> Option<u64>;
    fn priority(&mut self, id: StreamId) -> i32;
    fn set_priority(&mut self, id: StreamId, priority: i32);
    /// Hands what `id` has buffered to `sink`, at most `max` bytes in all.
    fn read(&mut self, id: StreamId, max: usize, sink: &mut dyn FnMut(Bytes)) -> Read;
    /// Closes the connection with an application error code.
    fn close(&mut self, now: Instant, code: u32, reason: &str);
    /// A server whose client has not finished its handshake (what comes is 0-RTT data).
    fn is_handshaking(&self) -> bool;
    /// A client whose 0-RTT data the server took.
    fn accepted_0rtt(&self) -> bool;
    /// The ALPN the handshake chose, once known.
    fn alpn(&self) -> Option<Vec<u8>>;
    /// The peer, as errors name it.
    fn peer(&self) -> String;
    /// How many streams of `dir` the peer may have open at once.
    fn set_max_concurrent_streams(&mut self, dir: Dir, count: u32);
}

/// A code as QUIC carries it (every code here is far below the varint's limit).
fn wire_code(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

impl Streams for Connection {
    fn open(&mut self, dir: Dir) -> Option<StreamId> {
        self.streams().open(dir)
    }

    fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        self.streams().accept(dir)
    }

    fn write(&mut self, id: StreamId, chunks: &mut [Bytes]) -> Option<usize> {
        if chunks.is_empty() {
            return Some(0);
        }
        match self.send_stream(id).write_chunks(chunks) {
            Ok(written) => Some(written.chunks),
            Err(WriteError::Blocked) => Some(0),
            Err(_) => None,
        }
    }

    fn finish(&mut self, id: StreamId) {
        let _ = self.send_stream(id).finish();
    }

    fn reset(&mut self, id: StreamId, code: u64) {
        let _ = self.send_stream(id).reset(wire_code(code));
    }

    fn stop(&mut self, id: StreamId, code: u64) {
        let _ = self.recv_stream(id).stop(wire_code(code));
    }

    fn stopped(&mut self, id: StreamId) -> Option<u64> {
        self.send_stream(id).stopped().ok().flatten().map(u64::from)
    }

    fn priority(&mut self, id: StreamId) -> i32 {
        self.send_stream(id).priority().unwrap_or(0)
    }

    fn set_priority(&mut self, id: StreamId, priority: i32) {
        let _ = self.send_stream(id).set_priority(priority);
    }

    fn read(&mut self, id: StreamId, max: usize, sink: &mut dyn FnMut(Bytes)) -> Read {
        let mut stream = self.recv_stream(id);
        let Ok(mut chunks) = stream.read(true) else {
            return Read::Gone;
        };
        let mut left = max;
        let read = loop {
            if left == 0 {
                break Read::Open;
            }
            match chunks.next(left.min(READ_CHUNK)) {
                Ok(Some(chunk)) => {
                    left -= chunk.bytes.len();
                    sink(chunk.bytes);
                }
                Ok(None) => break Read::Ended,
                Err(ReadError::Blocked) => break Read::Open,
                Err(ReadError::Reset(code)) => break Read::Reset(code.into_inner()),
            }
        };
        let _ = chunks.finalize();
        read
    }

    fn close(&mut self, now: Instant, code: u32, reason: &str) {
        Connection::close(
            self,
            now,
            VarInt::from_u32(code),
            reason.as_bytes().to_vec().into(),
        );
    }

    fn is_handshaking(&self) -> bool {
        Connection::is_handshaking(self)
    }

    fn accepted_0rtt(&self) -> bool {
        Connection::accepted_0rtt(self)
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        self.crypto_session()
            .handshake_data()?
            .downcast::<quinn_proto::crypto::rustls::HandshakeData>()
            .ok()?
            .protocol
    }

    fn peer(&self) -> String {
        self.remote_address().to_string()
    }

    fn set_max_concurrent_streams(&mut self, dir: Dir, count: u32) {
        Connection::set_max_concurrent_streams(self, dir, VarInt::from_u32(count));
    }
}
