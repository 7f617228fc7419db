//! Wire framing: `varint length | u8 kind | payload`, where the length counts the kind byte
//! and the payload. The decoder reads the length first and rejects an oversized frame before
//! it allocates or waits for a single byte of the body.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, ErrorCode, Result};
use crate::hello::{Encoding, Hello};
use crate::varint;

/// Frame kinds. Numbers are wire format: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    // 2 was WELCOME, the server's answer before both sides sent HELLO at once.
    Message = 3,
    Request = 4,
    Response = 5,
    Error = 6,
    /// Receiver to sender on the control stream: "I have handed `count` messages of channel
    /// stream `stream` to the application". Lets `send` resolve on delivery, not on write.
    Ack = 7,
    GoAway = 8,
    /// Protocol version 2: the trace context of the request that follows on its stream.
    Trace = 9,
    /// Protocol version 3: a MESSAGE whose sender does not wait for its ACK, so the
    /// receiver may acknowledge it late, with a later ACK.
    LazyMessage = 10,
}

impl Kind {
    fn from_wire(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            3 => Kind::Message,
            4 => Kind::Request,
            5 => Kind::Response,
            6 => Kind::Error,
            7 => Kind::Ack,
            8 => Kind::GoAway,
            9 => Kind::Trace,
            10 => Kind::LazyMessage,
            _ => return None,
        })
    }
}

/// A decoded frame. Bodies are `Bytes` cut out of the receive buffer without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    Message(Bytes),
    Request {
        id: u64,
        body: Bytes,
    },
    Response {
        id: u64,
        body: Bytes,
    },
    Error {
        id: u64,
        code: ErrorCode,
        text: String,
    },
    Ack {
        stream: u64,
        count: u64,
    },
    GoAway,
    /// A trace context (see [`put_trace`]), as the application wrote it.
    Trace(Bytes),
    /// A message whose ACK may wait (see [`put_message_head`]).
    LazyMessage(Bytes),
}

/// The longest trace context a TRACE frame carries: W3C `traceparent` in 26 bytes and a
/// `tracestate` of at most 512.
pub const MAX_TRACE_CONTEXT: usize = 26 + 512;

/// Error texts are cut to this many bytes so an ERROR frame stays small whatever the limit.
pub const MAX_ERROR_TEXT: usize = 1024;
/// Bytes a frame may add around its body: kind byte and one varint id.
const BODY_OVERHEAD: u64 = 1 + 8;
/// Control frames (HELLO, ERROR, ACK, GOAWAY) always fit in this many bytes.
const MAX_CONTROL_FRAME: u64 = MAX_ERROR_TEXT as u64 + 64;

/// Appends a MESSAGE frame. `limit` is the receiver's maxMessageSize.
pub fn put_message(out: &mut BytesMut, body: &[u8], limit: u64) -> Result<()> {
    put_message_head(out, body.len(), false, limit)?;
    out.put_slice(body);
    Ok(())
}

/// Appends the start of a MESSAGE frame whose `len` body bytes the caller sends next; a
/// LAZY_MESSAGE when `lazy` (protocol version 3): the receiver may acknowledge it late.
pub fn put_message_head(out: &mut BytesMut, len: usize, lazy: bool, limit: u64) -> Result<()> {
    check_size(len, limit)?;
    let kind = if lazy {
        Kind::LazyMessage
    } else {
        Kind::Message
    };
    put_header(out, kind, None, len);
    Ok(())
}

/// Appends a REQUEST frame.
pub fn put_request(out: &mut BytesMut, id: u64, body: &[u8], limit: u64) -> Result<()> {
    put_request_head(out, id, body.len(), limit)?;
    out.put_slice(body);
    Ok(())
}

/// Appends the start of a REQUEST frame whose `len` body bytes the caller sends next.
pub fn put_request_head(out: &mut BytesMut, id: u64, len: usize, limit: u64) -> Result<()> {
    check_size(len, limit)?;
    put_header(out, Kind::Request, Some(id), len);
    Ok(())
}

/// Appends a RESPONSE frame.
pub fn put_response(out: &mut BytesMut, id: u64, body: &[u8], limit: u64) -> Result<()> {
    check_size(body.len(), limit)?;
    put_header(out, Kind::Response, Some(id), body.len());
    out.put_slice(body);
    Ok(())
}

/// Appends an ERROR frame answering request `id`; the text is cut to [`MAX_ERROR_TEXT`].
pub fn put_error(out: &mut BytesMut, id: u64, code: ErrorCode, text: &str) {
    let text = truncate_utf8(text, MAX_ERROR_TEXT);
    let code = code.to_wire();
    put_header(out, Kind::Error, Some(id), varint::size(code) + text.len());
    varint::put(out, code);
    out.put_slice(text.as_bytes());
}

pub fn put_ack(out: &mut BytesMut, stream: u64, count: u64) {
    let len = varint::size(stream) + varint::size(count);
    put_header(out, Kind::Ack, None, len);
    varint::put(out, stream);
    varint::put(out, count);
}

/// Appends a TRACE frame: the trace context of the request frame after it, in W3C Trace
/// Context's terms `version:u8 trace-id:16 parent-id:8 trace-flags:u8` then `tracestate`
/// as text (docs/PROTOCOL.md, section 6b). ERR_INVALID_ARGUMENT past [`MAX_TRACE_CONTEXT`].
pub fn put_trace(out: &mut BytesMut, context: &[u8]) -> Result<()> {
    if context.len() > MAX_TRACE_CONTEXT {
        return Err(Error::invalid_argument(format!(
            "a trace context of {} bytes is over the {MAX_TRACE_CONTEXT} a TRACE frame carries",
            context.len()
        )));
    }
    put_header(out, Kind::Trace, None, context.len());
    out.put_slice(context);
    Ok(())
}

pub fn put_goaway(out: &mut BytesMut) {
    put_header(out, Kind::GoAway, None, 0);
}

pub fn put_hello(out: &mut BytesMut, hello: &Hello) {
    let n = hello.encodings.len().min(u8::MAX as usize);
    let len = varint::size(hello.version) + varint::size(hello.max_message_size) + 1 + n;
    put_header(out, Kind::Hello, None, len);
    varint::put(out, hello.version);
    varint::put(out, hello.max_message_size);
    out.put_u8(n as u8);
    for e in &hello.encodings[..n] {
        out.put_u8(*e as u8);
    }
}

fn check_size(len: usize, limit: u64) -> Result<()> {
    if len as u64 > limit {
        return Err(Error::too_large(len as u64, limit));
    }
    Ok(())
}

fn put_header(out: &mut BytesMut, kind: Kind, id: Option<u64>, body_len: usize) {
    let id_len = id.map_or(0, varint::size);
    let len = 1 + id_len + body_len;
    out.reserve(varint::size(len as u64) + len);
    varint::put(out, len as u64);
    out.put_u8(kind as u8);
    if let Some(id) = id {
        varint::put(out, id);
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Incremental decoder for one stream: feed it bytes as they arrive, take frames out.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_message_size: u64,
}

impl FrameDecoder {
    /// `max_message_size` is this receiver's limit on message, request and response bodies.
    pub fn new(max_message_size: u64) -> Self {
        FrameDecoder { max_message_size }
    }

    /// Takes the next whole frame off the front of `buf`; `Ok(None)` when more bytes are
    /// needed. An error means the stream is broken: the caller resets it and reads no more.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        let Some(total) = self.frame_len(buf)? else {
            return Ok(None);
        };
        if buf.len() < total {
            // `total` is bounded by the limit (`frame_len`), so this reservation is too.
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        self.decode_whole(buf.split_to(total).freeze()).map(Some)
    }

    /// The whole length of the frame `buf` starts with, once its length prefix is there:
    /// checked against the limit before a byte of the body is waited for.
    fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>> {
        let Some((len, len_size)) = varint::get(buf) else {
            return Ok(None);
        };
        let limit = (self.max_message_size + BODY_OVERHEAD).max(MAX_CONTROL_FRAME);
        if len > limit {
            return Err(Error::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "incoming frame of {len} bytes exceeds maxMessageSize of {} bytes",
                    self.max_message_size
                ),
            ));
        }
        if len == 0 {
            return Err(Error::protocol("empty frame (length 0)"));
        }
        Ok(Some(len_size + len as usize))
    }

    /// Decodes one whole frame (as `frame_len` measured it).
    fn decode_whole(&self, mut frame: Bytes) -> Result<Frame> {
        let len_size = varint::get(&frame).map_or(0, |(_, n)| n);
        let kind_byte = frame[len_size];
        let kind = Kind::from_wire(kind_byte)
            .ok_or_else(|| Error::protocol(format!("unknown frame kind {kind_byte:#04x}")))?;
        frame.advance(len_size + 1);
        self.parse(kind, frame)
    }

    fn parse(&self, kind: Kind, mut p: Bytes) -> Result<Frame> {
        let body_frame = |p: Bytes| -> Result<Bytes> {
            if p.len() as u64 > self.max_message_size {
                return Err(Error::too_large(p.len() as u64, self.max_message_size));
            }
            Ok(p)
        };
        Ok(match kind {
            Kind::Message => Frame::Message(body_frame(p)?),
            Kind::LazyMessage => Frame::LazyMessage(body_frame(p)?),
            Kind::Request => {
                let id = take_varint(&mut p, "request id")?;
                Frame::Request {
                    id,
                    body: body_frame(p)?,
                }
            }
            Kind::Response => {
                let id = take_varint(&mut p, "response id")?;
                Frame::Response {
                    id,
                    body: body_frame(p)?,
                }
            }
            Kind::Error => {
                let id = take_varint(&mut p, "error id")?;
                let code = ErrorCode::from_wire(take_varint(&mut p, "error code")?);
                // Invalid UTF-8 grows when replaced (1 byte -> 3): cut again, so a peer's
                // text is never longer than one we could send. (Found by fuzzing.)
                let text = truncate_utf8(&String::from_utf8_lossy(&p), MAX_ERROR_TEXT).to_owned();
                Frame::Error { id, code, text }
            }
            Kind::Ack => {
                let stream = take_varint(&mut p, "ack stream")?;
                let count = take_varint(&mut p, "ack count")?;
                expect_end(&p, "ACK")?;
                Frame::Ack { stream, count }
            }
            Kind::GoAway => {
                expect_end(&p, "GOAWAY")?;
                Frame::GoAway
            }
            Kind::Trace => {
                if p.len() > MAX_TRACE_CONTEXT {
                    return Err(Error::protocol(format!(
                        "TRACE of {} bytes (at most {MAX_TRACE_CONTEXT})",
                        p.len()
                    )));
                }
                Frame::Trace(p)
            }
            Kind::Hello => {
                let version = take_varint(&mut p, "hello version")?;
                let max_message_size = take_varint(&mut p, "hello maxMessageSize")?;
                let n = take_u8(&mut p, "hello encoding count")? as usize;
                if p.len() != n {
                    return Err(Error::protocol(format!(
                        "HELLO lists {n} encodings but carries {} bytes",
                        p.len()
                    )));
                }
                // Unknown encodings from a newer peer are skipped, not fatal.
                let encodings = p.iter().filter_map(|b| Encoding::from_wire(*b)).collect();
                Frame::Hello(Hello {
                    version,
                    encodings,
                    max_message_size,
                })
            }
        })
    }
}

/// One inbound stream's frames, from the chunks its transport hands over, with one copy at
/// most: a frame inside one chunk is a slice of it, and a frame spread over several is
/// gathered into a buffer of exactly its size. That buffer is the frame's alone, so a large
/// body can be handed on as it is (gathering into one buffer with the next frame's start
/// copied each large body twice).
#[derive(Debug)]
pub struct FrameReader {
    decoder: FrameDecoder,
    /// The start of a frame the next chunks complete.
    partial: BytesMut,
    /// Whole frames, not decoded yet.
    whole: VecDeque<Bytes>,
    /// Why the stream broke: given after the frames before it.
    broken: Option<Error>,
}

impl FrameReader {
    /// `max_message_size` is this receiver's limit on message, request and response bodies.
    pub fn new(max_message_size: u64) -> Self {
        FrameReader {
            decoder: FrameDecoder::new(max_message_size),
            partial: BytesMut::new(),
            whole: VecDeque::new(),
            broken: None,
        }
    }

    /// Takes the stream's next bytes.
    pub fn push(&mut self, mut chunk: Bytes) {
        while !chunk.is_empty() && self.broken.is_none() {
            if let Err(e) = self.take(&mut chunk) {
                self.broken = Some(e);
            }
        }
    }

    /// Takes from the front of `chunk`: whole frames, or what the partial frame lacks.
    fn take(&mut self, chunk: &mut Bytes) -> Result<()> {
        if self.partial.is_empty() {
            match self.decoder.frame_len(chunk)? {
                Some(total) if total <= chunk.len() => {
                    self.whole.push_back(chunk.split_to(total));
                    return Ok(());
                }
                Some(total) => self.partial = BytesMut::with_capacity(total),
                None => {}
            }
        }
        // Up to the end of the frame, or of its length prefix while that is incomplete.
        let need = match self.decoder.frame_len(&self.partial)? {
            Some(total) => {
                self.partial.reserve(total - self.partial.len());
                total - self.partial.len()
            }
            None => {
                let first = self.partial.first().or(chunk.first()).copied().unwrap_or(0);
                (1usize << (first >> 6)) - self.partial.len()
            }
        };
        let part = chunk.split_to(need.min(chunk.len()));
        self.partial.extend_from_slice(&part);
        if self.decoder.frame_len(&self.partial)? == Some(self.partial.len()) {
            self.whole
                .push_back(std::mem::take(&mut self.partial).freeze());
        }
        Ok(())
    }

    /// The next whole frame, `Ok(None)` until more bytes come. An error means the stream is
    /// broken: the caller resets it and reads no more.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some(frame) = self.whole.pop_front() else {
            return self.broken.clone().map_or(Ok(None), Err);
        };
        self.decoder.decode_whole(frame).map(Some).inspect_err(|e| {
            self.whole.clear();
            self.partial.clear();
            self.broken = Some(e.clone());
        })
    }
}

fn take_varint(p: &mut Bytes, what: &str) -> Result<u64> {
    let (v, n) = varint::get(p).ok_or_else(|| Error::protocol(format!("truncated {what}")))?;
    p.advance(n);
    Ok(v)
}

fn take_u8(p: &mut Bytes, what: &str) -> Result<u8> {
    if p.is_empty() {
        return Err(Error::protocol(format!("truncated {what}")));
    }
    Ok(p.get_u8())
}

fn expect_end(p: &Bytes, what: &str) -> Result<()> {
    if !p.is_empty() {
        return Err(Error::protocol(format!(
            "{what} frame has {} trailing bytes",
            p.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hello::PROTOCOL_VERSION;

    fn decode_all(bytes: &[u8], limit: u64) -> Result<Vec<Frame>> {
        let d = FrameDecoder::new(limit);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf)? {
            out.push(f);
        }
        assert!(buf.is_empty(), "left {} bytes", buf.len());
        Ok(out)
    }

    #[test]
    fn every_kind_round_trips() {
        let mut out = BytesMut::new();
        let hello = Hello {
            version: PROTOCOL_VERSION,
            encodings: vec![Encoding::Raw, Encoding::Msgpack],
            max_message_size: 1 << 20,
        };
        put_hello(&mut out, &hello);
        put_message(&mut out, b"hi", 10).unwrap();
        put_message(&mut out, b"", 10).unwrap();
        put_message_head(&mut out, 4, true, 10).unwrap();
        out.extend_from_slice(b"lazy");
        put_request(&mut out, 7, b"req", 10).unwrap();
        put_response(&mut out, 1 << 40, b"res", 10).unwrap();
        put_error(&mut out, 9, ErrorCode::Remote, "boom");
        put_ack(&mut out, 3, 100_000);
        put_goaway(&mut out);
        let frames = decode_all(&out, 10).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Hello(hello),
                Frame::Message(Bytes::from_static(b"hi")),
                Frame::Message(Bytes::new()),
                Frame::LazyMessage(Bytes::from_static(b"lazy")),
                Frame::Request {
                    id: 7,
                    body: Bytes::from_static(b"req")
                },
                Frame::Response {
                    id: 1 << 40,
                    body: Bytes::from_static(b"res")
                },
                Frame::Error {
                    id: 9,
                    code: ErrorCode::Remote,
                    text: "boom".into()
                },
                Frame::Ack {
                    stream: 3,
                    count: 100_000
                },
                Frame::GoAway,
            ]
        );
    }

    #[test]
    fn decodes_byte_by_byte() {
        let mut wire = BytesMut::new();
        let body = vec![0xAB; 300];
        put_message(&mut wire, &body, 1000).unwrap();
        put_request(&mut wire, 5, b"x", 1000).unwrap();
        let d = FrameDecoder::new(1000);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], Frame::Message(Bytes::from(body)));
    }

    #[test]
    fn reader_gives_the_same_frames_however_the_stream_is_cut() {
        let mut wire = BytesMut::new();
        put_message(&mut wire, b"a", 1 << 20).unwrap();
        put_message(&mut wire, &vec![5; 70_000], 1 << 20).unwrap();
        put_request(&mut wire, 1 << 20, &vec![6; 300], 1 << 20).unwrap();
        put_ack(&mut wire, 3, 4);
        put_message(&mut wire, &vec![7; 20_000], 1 << 20).unwrap();
        let expected = decode_all(&wire, 1 << 20).unwrap();
        for cut in [1, 2, 3, 5, 64, 1000, 65_000, wire.len()] {
            let mut reader = FrameReader::new(1 << 20);
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                reader.push(Bytes::copy_from_slice(chunk));
                while let Some(f) = reader.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, expected, "cut every {cut} bytes");
            assert!(reader.partial.is_empty());
        }
    }

    #[test]
    fn reader_gives_the_frames_before_a_broken_one_then_its_error() {
        let mut wire = BytesMut::new();
        put_message(&mut wire, b"ok", 1000).unwrap();
        put_message(&mut wire, &[1; 100], 1000).unwrap();
        put_message(&mut wire, b"never", 1000).unwrap();
        let mut reader = FrameReader::new(50);
        reader.push(wire.freeze());
        assert_eq!(
            reader.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(b"ok")))
        );
        assert_eq!(
            reader.next_frame().unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        assert!(reader.next_frame().is_err(), "still broken");
    }

    #[test]
    fn sender_rejects_bodies_over_the_limit() {
        let mut out = BytesMut::new();
        let err = put_message(&mut out, &[0; 11], 10).unwrap_err();
        assert_eq!(err.code, ErrorCode::MessageTooLarge);
        assert!(err.message.contains("11") && err.message.contains("10"));
        assert!(out.is_empty(), "nothing written on error");
        assert!(put_request(&mut out, 1, &[0; 11], 10).is_err());
        assert!(put_response(&mut out, 1, &[0; 11], 10).is_err());
    }

    #[test]
    fn huge_length_prefix_is_rejected_before_allocation() {
        // A 4 GiB claim, then nothing: must fail at once, not wait for (or reserve) 4 GiB.
        let mut buf = BytesMut::new();
        varint::put(&mut buf, 4 << 30);
        buf.put_u8(Kind::Message as u8);
        let err = FrameDecoder::new(1 << 20).decode(&mut buf).unwrap_err();
        assert_eq!(err.code, ErrorCode::MessageTooLarge);
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn receiver_rejects_bodies_over_its_limit() {
        let mut out = BytesMut::new();
        put_message(&mut out, &[1; 100], 1000).unwrap();
        let err = decode_all(&out, 50).unwrap_err();
        assert_eq!(err.code, ErrorCode::MessageTooLarge);
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        let cases: &[&[u8]] = &[
            &[0x00],                                            // empty frame
            &[0x01, 0xEE],                                      // unknown kind
            &[0x01, Kind::Request as u8],                       // request without id
            &[0x02, Kind::GoAway as u8, 0x00],                  // trailing bytes
            &[0x03, Kind::Ack as u8, 0x01, 0x40],               // truncated varint
            &[0x03, Kind::Hello as u8, 0x01, 0x01],             // missing encoding count
            &[0x05, Kind::Hello as u8, 0x01, 0x01, 0x03, 0x01], // count says 3, has 1
            &[0x01, 0x02],                                      // retired kind (WELCOME)
        ];
        for case in cases {
            let err = decode_all(case, 1000).unwrap_err();
            assert_eq!(err.code, ErrorCode::Protocol, "{case:?}: {err}");
        }
    }

    #[test]
    fn error_text_is_cut_on_a_char_boundary() {
        let mut out = BytesMut::new();
        let long = "é".repeat(MAX_ERROR_TEXT);
        put_error(&mut out, 1, ErrorCode::Remote, &long);
        let Frame::Error { text, .. } = &decode_all(&out, 10).unwrap()[0] else {
            panic!("not an error frame");
        };
        assert!(text.len() <= MAX_ERROR_TEXT && text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_received_error_text_with_invalid_utf8_stays_within_the_cap() {
        // Regression (fuzz/regressions/frame_decoder): 1,000 invalid bytes became 3,000.
        let mut out = BytesMut::new();
        varint::put(&mut out, 1 + 1 + 1 + 1000);
        out.put_u8(Kind::Error as u8);
        out.put_slice(&[0, 14]);
        out.put_slice(&[0xFF; 1000]);
        let Frame::Error { text, .. } = &decode_all(&out, 10).unwrap()[0] else {
            panic!("not an error frame");
        };
        assert!(text.len() <= MAX_ERROR_TEXT, "{} bytes", text.len());
        assert!(text.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
    }
}
