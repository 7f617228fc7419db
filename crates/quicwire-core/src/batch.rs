//! The batched boundary between an engine and JavaScript, the same for every binding: JS
//! hands over many ops in one call (`data` holds their bodies back to back, `words` five
//! numbers per op), and the engine hands back many events in one call (seven numbers each:
//! `[kind, connection, b, c, d, offset, length]`, offset/length into a data buffer; a
//! negative offset `-k` names the batch's k-th body handed over on its own).

use bytes::{Bytes, BytesMut};

use crate::error::{Error, ErrorCode};
use crate::frame;

pub const OP_WORDS: usize = 5;
pub const EVENT_WORDS: usize = 7;

/// Bodies of this many bytes or more travel in buffers of their own, copied once between
/// JavaScript and the transport: not framed into a batch's shared buffer on the way out,
/// nor gathered into an event batch's data on the way in (where the native engine lends
/// them to JavaScript without a copy).
pub const LARGE_BODY: usize = 16 * 1024;

/// Op codes: `[op, target, id, length, extra]`.
pub mod op {
    /// target = connection; body = message.
    pub const MESSAGE: u32 = 1;
    /// target = connection, id = request id, extra = timeout ms (0: the default).
    pub const REQUEST: u32 = 2;
    /// target = connection, id = request handle; body = answer.
    pub const RESPOND: u32 = 3;
    /// target = connection, id = request handle, extra = error code number; body = error
    /// text.
    pub const RESPOND_ERROR: u32 = 4;
}

/// Event kinds (mirrored in ts/engine.ts).
pub mod event {
    /// b = owner (client or server handle), d = peer maxMessageSize; data = "encoding peer".
    pub const CONNECTION: f64 = 1.0;
    /// data = body.
    pub const MESSAGE: f64 = 2.0;
    /// b = request handle; data = body.
    pub const REQUEST: f64 = 3.0;
    /// b = request id; data = body.
    pub const RESPONSE: f64 = 4.0;
    /// b = request id, c = error code number; data = text.
    pub const REQUEST_FAILED: f64 = 5.0;
    /// b = messages delivered so far.
    pub const ACKED: f64 = 6.0;
    /// c = error code number; data = reason.
    pub const CLOSED: f64 = 7.0;
    /// b = channel stream, c = its messages in this batch and before (wasm engine only: the
    /// host acknowledges it once the application has them).
    pub const RECEIPT: f64 = 8.0;
}

/// One op of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// Position in the batch (failures name it).
    pub index: usize,
    pub code: u32,
    pub target: f64,
    pub id: f64,
    pub body: &'a [u8],
    pub extra: f64,
}

/// The ops of a batch, in order; an op whose body overruns `data` ends it with an error.
pub fn ops<'a>(
    data: &'a [u8],
    words: &'a [f64],
) -> impl Iterator<Item = Result<Op<'a>, (usize, Error)>> + 'a {
    let mut offset = 0usize;
    let mut broken = false;
    words
        .chunks_exact(OP_WORDS)
        .enumerate()
        .map_while(move |(index, w)| {
            if broken {
                return None;
            }
            let len = w[3] as usize;
            let Some(body) = offset
                .checked_add(len)
                .and_then(|end| data.get(offset..end))
            else {
                broken = true;
                return Some(Err((
                    index,
                    Error::new(ErrorCode::Internal, "op list overruns its data"),
                )));
            };
            offset += len;
            Some(Ok(Op {
                index,
                code: w[0] as u32,
                target: w[1],
                id: w[2],
                body,
                extra: w[4],
            }))
        })
}

/// One batch's MESSAGE ops, framed per connection in op order, so that each connection's
/// channel stream gets one write: quinn tracks and packs one large write far more cheaply
/// than many small ones (one write per 64 B message cost the wasm engine 41 % of its CPU).
#[derive(Debug, Default)]
pub struct Messages {
    groups: Vec<MessageGroup>,
}

/// One connection's share of [`Messages`].
#[derive(Debug)]
pub struct MessageGroup {
    /// The connection (the ops' target).
    pub target: f64,
    /// The frames in order, as buffers to write: small ones framed back to back, each
    /// [`LARGE_BODY`] in a buffer of its own (quinn takes `Bytes` without copying them).
    pub chunks: Vec<Bytes>,
    /// Frames not yet in `chunks`.
    open: BytesMut,
    /// Body bytes, for the connection's stats.
    pub bytes: u64,
    /// The indexes of the ops framed here, one message each.
    pub ops: Vec<usize>,
}

impl Messages {
    /// Frames `op`'s body for its connection, whose peer accepts bodies up to `limit`. A
    /// large body is copied unless `shared` has it as `Bytes` already (memory the shell
    /// lent to JS to fill: quinn then sends from it as it is).
    pub fn add(
        &mut self,
        op: &Op<'_>,
        limit: u64,
        shared: impl FnOnce(&[u8]) -> Option<Bytes>,
    ) -> Result<(), Error> {
        let at = match self.groups.iter().position(|g| g.target == op.target) {
            Some(at) => at,
            None => {
                self.groups.push(MessageGroup {
                    target: op.target,
                    chunks: Vec::new(),
                    open: BytesMut::new(),
                    bytes: 0,
                    ops: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[at];
        if op.body.len() >= LARGE_BODY {
            frame::put_message_head(&mut group.open, op.body.len(), limit)?;
            group.chunks.push(group.open.split().freeze());
            let body = shared(op.body).unwrap_or_else(|| Bytes::copy_from_slice(op.body));
            group.chunks.push(body);
        } else {
            frame::put_message(&mut group.open, op.body, limit)?;
        }
        group.bytes += op.body.len() as u64;
        group.ops.push(op.index);
        Ok(())
    }
}

impl IntoIterator for Messages {
    type Item = MessageGroup;
    type IntoIter = std::vec::IntoIter<MessageGroup>;

    fn into_iter(mut self) -> Self::IntoIter {
        for group in &mut self.groups {
            if !group.open.is_empty() {
                group.chunks.push(group.open.split().freeze());
            }
        }
        self.groups.into_iter()
    }
}

/// `"<CODE>: <message>"`: how an error crosses into JS, where the facade reads the code.
pub fn error_text(e: &Error) -> String {
    format!("{}: {}", e.code.as_str(), e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bodies_and_stops_at_an_overrun() {
        let data = b"abcdef";
        let words = [
            1.0, 7.0, 0.0, 2.0, 0.0, 2.0, 7.0, 9.0, 4.0, 5.0, 1.0, 7.0, 0.0, 99.0, 0.0,
        ];
        let got: Vec<_> = ops(data, &words).collect();
        assert_eq!(got.len(), 3);
        let a = got[0].as_ref().unwrap();
        assert_eq!((a.code, a.body), (op::MESSAGE, &b"ab"[..]));
        let b = got[1].as_ref().unwrap();
        assert_eq!(
            (b.code, b.id, b.body, b.extra),
            (op::REQUEST, 9.0, &b"cdef"[..], 5.0)
        );
        assert_eq!(got[2].as_ref().unwrap_err().0, 2);
    }

    #[test]
    fn messages_are_framed_per_connection_in_order() {
        let words = [
            1.0, 7.0, 0.0, 1.0, 0.0, 1.0, 8.0, 0.0, 1.0, 0.0, 1.0, 7.0, 0.0, 1.0, 0.0, 1.0, 7.0,
            0.0, 3.0, 0.0,
        ];
        let mut messages = Messages::default();
        for op in ops(b"abcdef", &words) {
            let op = op.unwrap();
            let added = messages.add(&op, 2, |_| None);
            assert_eq!(
                added.is_err(),
                op.index == 3,
                "only the 3-byte body is over the limit"
            );
        }
        let groups: Vec<_> = messages.into_iter().collect();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            (groups[0].target, &groups[0].ops[..], groups[0].bytes),
            (7.0, &[0, 2][..], 2)
        );
        assert_eq!((groups[1].target, &groups[1].ops[..]), (8.0, &[1][..]));
        let decoder = crate::frame::FrameDecoder::new(2);
        let mut frames = BytesMut::from(&groups[0].chunks.concat()[..]);
        for body in [b"a", b"c"] {
            match decoder.decode(&mut frames).unwrap() {
                Some(crate::frame::Frame::Message(m)) => assert_eq!(&m[..], body),
                other => panic!("expected a message, got {other:?}"),
            }
        }
        assert!(frames.is_empty());
    }
}
