//! WebTransport over HTTP/3 (ALPN `h3`) around a quicwire session, on the server: a browser's
//! `new WebTransport(url)` reaches the same session that a quicwire client gets over
//! `quicwire/2` (its version: [`quicwire_core::WEBTRANSPORT_VERSION`]), only its streams are
//! wrapped.
//!
//! - Each side opens an HTTP/3 control stream with its SETTINGS; the client's QPACK streams
//!   and control stream are read and set aside (QPACK here uses the static table only).
//! - The client's extended CONNECT (`:protocol webtransport`) on its first bidirectional
//!   stream opens the session when its `:path` is the server's; the stream's id is the
//!   session's id, and the stream stays open for the session's life.
//! - Every stream of the quicwire session starts with the WebTransport stream header
//!   (unidirectional `0x54`, bidirectional `0x41`, then the session id). A unidirectional
//!   one then carries its channel number (a varint): 0 for the sender's control stream, then
//!   1, 2, ... in the order it opened its channels, the number ACK frames name. A browser
//!   cannot see QUIC stream ids, and its streams may surface in any order.
//!
//! The HTTP/3 and WebTransport encodings come from `wtransport-proto`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quicwire_core::varint;
use quinn_proto::{Dir, StreamId, VarInt};

use crate::config::WebTransportConfig;
use crate::streams::{Read, Streams};
use web_time::Instant;
use wtransport_proto::bytes::BufferReader;
use wtransport_proto::frame::{Frame, FrameKind};
use wtransport_proto::headers::Headers;
use wtransport_proto::ids::StatusCode;
use wtransport_proto::session::{SessionRequest, SessionResponse};
use wtransport_proto::settings::Settings;
use wtransport_proto::stream_header::StreamHeader;
use wtransport_proto::varint::VarInt as WtVarInt;

/// The ALPN of HTTP/3, which WebTransport sessions ride.
pub const ALPN_H3: &[u8] = b"h3";

/// HTTP/3 error codes (RFC 9114, 8.1) this side uses.
const H3_NO_ERROR: u32 = 0x100;
const H3_STREAM_CREATION_ERROR: u32 = 0x103;
const H3_REQUEST_REJECTED: u32 = 0x10b;

/// The longest stream head or CONNECT request read before the stream is turned down.
const MAX_HEAD: usize = 16 * 1024;

/// What happened to the WebTransport session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The CONNECT was accepted: the quicwire session may start.
    Opened,
    /// The client ended the session (its CONNECT stream ended).
    Closed,
}

/// Bytes to write on a stream, and whether it ends there.
pub(crate) type Write = (StreamId, Bytes, bool);

/// One connection's WebTransport state.
#[derive(Debug)]
pub(crate) struct WebTransport {
    /// When the connection began: its session must open within a request timeout.
    pub started: Instant,
    /// The sessions accepted: their path and origins.
    accepts: Arc<WebTransportConfig>,
    /// The session: its CONNECT stream, once accepted.
    session: Option<StreamId>,
    /// Client streams whose heads are still being read, with what arrived of them.
    heads: HashMap<StreamId, Vec<u8>>,
    /// Client streams read only to be set aside (HTTP/3 control, QPACK, the CONNECT
    /// stream after its request).
    drained: Vec<StreamId>,
    /// Streams of the quicwire session with their heads read: unidirectional ones with
    /// their channel numbers.
    uni: VecDeque<(StreamId, u64)>,
    bi: VecDeque<StreamId>,
    /// Unidirectional streams this side opened for the session, for the next one's number.
    opened: u64,
}

/// Why a stream's head is not read: more bytes are to come, or the stream is gone
/// (ended, reset, or turned down).
enum Unread {
    Waiting,
    Gone,
}

type Head<T> = Result<T, Unread>;

impl WebTransport {
    /// Starts WebTransport on a server connection that chose `h3`: our HTTP/3 control
    /// stream with its SETTINGS goes in `writes`.
    pub fn start(
        conn: &mut impl Streams,
        accepts: Arc<WebTransportConfig>,
        now: Instant,
        writes: &mut Vec<Write>,
    ) -> Self {
        if let Some(control) = conn.open(Dir::Uni) {
            let settings = Settings::builder()
                .qpack_max_table_capacity(WtVarInt::from_u32(0))
                .qpack_blocked_streams(WtVarInt::from_u32(0))
                .enable_connect_protocol()
                .enable_webtransport()
                .enable_h3_datagrams()
                .webtransport_max_sessions(WtVarInt::from_u32(1))
                .build();
            let mut out = Vec::new();
            // Writing to a Vec cannot run out of room.
            let _ = StreamHeader::new_control().write(&mut out);
            let _ = settings.generate_frame().write(&mut out);
            writes.push((control, out.into(), false));
        }
        WebTransport {
            started: now,
            accepts,
            session: None,
            heads: HashMap::new(),
            drained: Vec::new(),
            uni: VecDeque::new(),
            bi: VecDeque::new(),
            opened: 0,
        }
    }

    pub fn is_open(&self) -> bool {
        self.session.is_some()
    }

    /// The session's quarter stream id, which its datagrams start with.
    pub fn datagram_prefix(&self) -> Option<u64> {
        self.session.map(|s| u64::from(VarInt::from(s)) / 4)
    }

    /// Reads what the client's streams brought: new streams' heads, its CONNECT request
    /// (answered in `writes`), the streams set aside.
    pub fn poll(&mut self, conn: &mut impl Streams, writes: &mut Vec<Write>) -> Option<Change> {
        let mut change = None;
        for dir in [Dir::Uni, Dir::Bi] {
            while let Some(id) = conn.accept(dir) {
                self.heads.insert(id, Vec::new());
            }
        }
        self.read_heads(conn, writes, &mut change);
        if change == Some(Change::Opened) {
            // Streams of the session that came before its CONNECT was read.
            self.read_heads(conn, writes, &mut change);
        }
        let session = self.session;
        self.drained.retain(|&id| {
            let ended = drain(conn, id);
            if ended && Some(id) == session {
                change = Some(Change::Closed);
            }
            !ended
        });
        change
    }

    fn read_heads(
        &mut self,
        conn: &mut impl Streams,
        writes: &mut Vec<Write>,
        change: &mut Option<Change>,
    ) {
        let heads: Vec<StreamId> = self.heads.keys().copied().collect();
        for id in heads {
            let Some(mut buf) = self.heads.remove(&id) else {
                continue;
            };
            let read = match id.dir() {
                Dir::Uni => self.uni_head(conn, id, &mut buf),
                Dir::Bi => self.bi_head(conn, id, &mut buf, writes, change),
            };
            if matches!(read, Err(Unread::Waiting)) {
                self.heads.insert(id, buf);
            }
        }
    }

    /// Whether a stream of session `session` (its id on the wire) may go on: it waits
    /// while no session is open (it may have overtaken its CONNECT), and is turned down
    /// when it names another.
    fn check_session(&self, conn: &mut impl Streams, id: StreamId, session: u64) -> Head<()> {
        match self.session {
            None => Err(Unread::Waiting),
            Some(ours) if ours.index() == session >> 2 => Ok(()),
            Some(_) => {
                refuse(conn, id, H3_REQUEST_REJECTED);
                Err(Unread::Gone)
            }
        }
    }

    /// The head of a client's unidirectional stream: its HTTP/3 stream type, and for a
    /// stream of the session, the session id and its channel number.
    fn uni_head(&mut self, conn: &mut impl Streams, id: StreamId, buf: &mut Vec<u8>) -> Head<()> {
        let kind = read_varint(conn, id, buf, 0)?;
        match kind {
            (CONTROL_STREAM | QPACK_ENCODER_STREAM | QPACK_DECODER_STREAM, _) => {
                self.drained.push(id);
                Ok(())
            }
            (WEBTRANSPORT_UNI_STREAM, at) => {
                let (session, at) = read_varint(conn, id, buf, at)?;
                let (number, _) = read_varint(conn, id, buf, at)?;
                self.check_session(conn, id, session)?;
                self.uni.push_back((id, number));
                Ok(())
            }
            _ => {
                // Unknown stream types are turned down, not fatal (RFC 9114, 6.2).
                refuse(conn, id, H3_STREAM_CREATION_ERROR);
                Err(Unread::Gone)
            }
        }
    }

    /// The head of a client's bidirectional stream: a WebTransport stream of the session,
    /// or an HTTP/3 request, of which only the CONNECT that opens the session is served.
    fn bi_head(
        &mut self,
        conn: &mut impl Streams,
        id: StreamId,
        buf: &mut Vec<u8>,
        writes: &mut Vec<Write>,
        change: &mut Option<Change>,
    ) -> Head<()> {
        let (first, at) = read_varint(conn, id, buf, 0)?;
        if first == WEBTRANSPORT_BI_STREAM {
            let (session, _) = read_varint(conn, id, buf, at)?;
            self.check_session(conn, id, session)?;
            self.bi.push_back(id);
            return Ok(());
        }
        // An HTTP/3 request: its HEADERS frame, whole.
        let ended = match read_all(conn, id, buf, MAX_HEAD) {
            Some(ended) => ended,
            None => return Err(Unread::Gone),
        };
        let status = match request_status(buf, &self.accepts, self.session.is_some()) {
            Some(status) => status,
            None if !ended && buf.len() < MAX_HEAD => return Err(Unread::Waiting),
            None => {
                refuse(conn, id, H3_REQUEST_REJECTED);
                return Err(Unread::Gone);
            }
        };
        let status = StatusCode::try_from_u32(u32::from(status)).unwrap_or(StatusCode::NOT_FOUND);
        let mut response = SessionResponse::with_status_code(status);
        // Chromium before the WebTransport drafts settled asked for this.
        response.add("sec-webtransport-http3-draft", "draft02");
        let mut out = Vec::new();
        let _ = response.headers().generate_frame().write(&mut out);
        let ok = status == StatusCode::OK;
        writes.push((id, out.into(), !ok));
        if ok {
            self.session = Some(id);
            self.drained.push(id);
            *change = Some(Change::Opened);
        } else {
            conn.stop(id, H3_NO_ERROR.into());
        }
        Ok(())
    }

    /// A unidirectional stream of the session from the client, with its channel number.
    pub fn accept_uni(&mut self) -> Option<(StreamId, u64)> {
        self.uni.pop_front()
    }

    /// The client's stream of channel `number`, if it came.
    pub fn take_uni(&mut self, number: u64) -> Option<StreamId> {
        let at = self.uni.iter().position(|&(_, n)| n == number)?;
        self.uni.remove(at).map(|(id, _)| id)
    }

    pub fn accept_bi(&mut self) -> Option<StreamId> {
        self.bi.pop_front()
    }

    /// The head our new stream of the session starts with; for a unidirectional one, its
    /// channel number is the next.
    pub fn head(&mut self, dir: Dir) -> (Bytes, u64) {
        let session = self.session.map_or(0, |s| u64::from(VarInt::from(s)));
        let mut out = BytesMut::with_capacity(12);
        let number = match dir {
            Dir::Uni => {
                varint::put(&mut out, WEBTRANSPORT_UNI_STREAM);
                varint::put(&mut out, session);
                let number = self.opened;
                self.opened += 1;
                varint::put(&mut out, number);
                number
            }
            Dir::Bi => {
                varint::put(&mut out, WEBTRANSPORT_BI_STREAM);
                varint::put(&mut out, session);
                0
            }
        };
        (out.freeze(), number)
    }
}

/// The status an HTTP/3 request on a client's bidirectional stream gets, from the first
/// bytes of the stream (`buf`); None until they hold a whole frame. Only the extended
/// CONNECT that opens a session on the path and from an origin `accepts` allows gets 200,
/// and only while no session is `open`. Public for the fuzzer: `buf` is the peer's.
pub fn request_status(buf: &[u8], accepts: &WebTransportConfig, open: bool) -> Option<u16> {
    let mut reader = BufferReader::new(buf);
    let frame = match Frame::read_from_buffer(&mut reader) {
        Ok(Some(frame)) => frame,
        Ok(None) => return None,
        // Not HTTP/3 framing at all.
        Err(_) => return Some(400),
    };
    let request = match frame.kind() {
        FrameKind::Headers if qpack_integers_fit(frame.payload()) => Headers::with_frame(&frame)
            .ok()
            .and_then(|h| SessionRequest::try_from(h).ok()),
        _ => None,
    };
    let origin_allowed = |origin: Option<&str>| {
        let origins = &accepts.origins;
        origins.is_empty() || origin.is_some_and(|o| origins.iter().any(|a| a == o))
    };
    Some(match request {
        None => 400,
        Some(_) if open => 429,
        Some(r) if r.path() != accepts.path => 404,
        Some(r) if !origin_allowed(r.origin()) => 403,
        Some(_) => 200,
    })
}

/// Whether every integer of a QPACK field section (RFC 9204, 4.5) fits in four bytes
/// after its prefix, and every string in what is left: walked as wtransport-proto's decoder
/// walks it, whose integer decoding overflows (a panic where overflow is checked) on longer
/// ones. A CONNECT request has no use for larger numbers.
fn qpack_integers_fit(mut block: &[u8]) -> bool {
    /// Takes an integer with an `n`-bit prefix off the front of `block` (RFC 7541, 5.1).
    fn integer(block: &mut &[u8], n: u32) -> Option<usize> {
        let (&first, rest) = block.split_first()?;
        *block = rest;
        let mask = (1usize << n) - 1;
        let mut value = usize::from(first) & mask;
        if value < mask {
            return Some(value);
        }
        for shift in [0, 7, 14, 21] {
            let (&byte, rest) = block.split_first()?;
            *block = rest;
            value += usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn string(block: &mut &[u8], n: u32) -> Option<()> {
        let len = integer(block, n)?;
        *block = block.get(len..)?;
        Some(())
    }
    let walk = |block: &mut &[u8]| -> Option<()> {
        integer(block, 8)?;
        integer(block, 7)?;
        while let Some(&first) = block.first() {
            match first {
                // Indexed field line: an index.
                0x80.. => drop(integer(block, 6)?),
                // Literal with a name reference: an index, then the value.
                0x40..=0x7f => {
                    integer(block, 4)?;
                    string(block, 7)?;
                }
                // Literal with a literal name: the name, then the value.
                0x20..=0x3f => {
                    string(block, 3)?;
                    string(block, 7)?;
                }
                // Post-base forms need the dynamic table, which the decoder refuses.
                _ => return Some(()),
            }
        }
        Some(())
    };
    walk(&mut block).is_some()
}

const CONTROL_STREAM: u64 = 0x00;
const QPACK_ENCODER_STREAM: u64 = 0x02;
const QPACK_DECODER_STREAM: u64 = 0x03;
const WEBTRANSPORT_UNI_STREAM: u64 = 0x54;
const WEBTRANSPORT_BI_STREAM: u64 = 0x41;

/// The first HTTP/3 error code of WebTransport's application codes (draft-ietf-webtrans-
/// http3, 4.3): code n is this plus n plus one for every 0x1e before it, which skips the
/// reserved codes of the form 0x1f * N + 0x21.
const FIRST_APPLICATION_CODE: u64 = 0x52e4_a40f_a8db;

/// A stream error code of the session's, as HTTP/3 carries it.
pub fn to_http3(code: u32) -> u64 {
    let code = u64::from(code);
    FIRST_APPLICATION_CODE + code + code / 0x1e
}

/// An HTTP/3 stream error code as the session's: None for one outside WebTransport's
/// range (HTTP/3's own, or reserved).
pub fn from_http3(wire: u64) -> Option<u32> {
    let shifted = wire.checked_sub(FIRST_APPLICATION_CODE)?;
    if shifted % 0x1f == 0x1e {
        return None;
    }
    u32::try_from(shifted - shifted / 0x1f).ok()
}

fn refuse(conn: &mut impl Streams, id: StreamId, code: u32) {
    conn.stop(id, code.into());
    if id.dir() == Dir::Bi {
        conn.reset(id, code.into());
    }
}

/// The varint at `at` of a stream's head, reading no further than its last byte (what
/// follows the head is the session's): its value and where the next field starts.
fn read_varint(
    conn: &mut impl Streams,
    id: StreamId,
    buf: &mut Vec<u8>,
    at: usize,
) -> Head<(u64, usize)> {
    if !read_to(conn, id, buf, at + 1) {
        return Err(Unread::Gone);
    }
    let first = *buf.get(at).ok_or(Unread::Waiting)?;
    let len = 1usize << (first >> 6);
    if !read_to(conn, id, buf, at + len) {
        return Err(Unread::Gone);
    }
    let (v, n) = varint::get(&buf[at..]).ok_or(Unread::Waiting)?;
    Ok((v, at + n))
}

/// Reads `id` until `buf` holds `want` bytes or nothing more has come; false when the
/// stream ended or was reset before its head was whole.
fn read_to(conn: &mut impl Streams, id: StreamId, buf: &mut Vec<u8>, want: usize) -> bool {
    if buf.len() >= want {
        return true;
    }
    let read = conn.read(id, want - buf.len(), &mut |chunk| {
        buf.extend_from_slice(&chunk)
    });
    read == Read::Open
}

/// Reads what `id` has into `buf`, up to `max` bytes in all: whether the stream ended, or
/// None when it was reset.
fn read_all(conn: &mut impl Streams, id: StreamId, buf: &mut Vec<u8>, max: usize) -> Option<bool> {
    let left = max.saturating_sub(buf.len());
    match conn.read(id, left, &mut |chunk| buf.extend_from_slice(&chunk)) {
        Read::Open => Some(false),
        Read::Ended => Some(true),
        Read::Reset(_) | Read::Gone => None,
    }
}

/// Reads and drops what `id` has; true once it ended or was reset.
fn drain(conn: &mut impl Streams, id: StreamId) -> bool {
    conn.read(id, usize::MAX, &mut drop) != Read::Open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_codes_map_into_http3_and_back() {
        assert_eq!(to_http3(0), 0x52e4_a40f_a8db);
        assert_eq!(to_http3(0x1d), 0x52e4_a40f_a8db + 0x1d);
        // 0x1e skips the reserved code before it.
        assert_eq!(to_http3(0x1e), 0x52e4_a40f_a8db + 0x1f);
        for code in (0..2000).chain([u32::MAX - 1, u32::MAX]) {
            assert_eq!(from_http3(to_http3(code)), Some(code));
        }
        assert_eq!(from_http3(0x52e4_a40f_a8db + 0x1e), None, "reserved");
        assert_eq!(from_http3(u64::from(H3_NO_ERROR)), None, "HTTP/3's own");
    }

    fn connect(url: &str, origin: Option<&str>) -> Vec<u8> {
        let mut request = SessionRequest::new(url).expect("a URL");
        if let Some(origin) = origin {
            request.insert("origin", origin).expect("not reserved");
        }
        let mut out = Vec::new();
        request
            .headers()
            .generate_frame()
            .write(&mut out)
            .expect("a Vec has room");
        out
    }

    #[test]
    fn a_connect_is_answered_by_path_origin_and_open_session() {
        let any = WebTransportConfig {
            path: "/wt".into(),
            origins: Vec::new(),
        };
        let one = WebTransportConfig {
            path: "/wt".into(),
            origins: vec!["https://app.example".into()],
        };
        let ok = connect("https://localhost/wt", Some("https://app.example"));
        assert_eq!(request_status(&ok, &any, false), Some(200));
        assert_eq!(request_status(&ok, &one, false), Some(200));
        assert_eq!(request_status(&ok, &one, true), Some(429));
        let elsewhere = connect("https://localhost/other", None);
        assert_eq!(request_status(&elsewhere, &any, false), Some(404));
        let stranger = connect("https://localhost/wt", Some("https://evil.example"));
        assert_eq!(request_status(&stranger, &one, false), Some(403));
        let anonymous = connect("https://localhost/wt", None);
        assert_eq!(request_status(&anonymous, &one, false), Some(403));
        // A frame in part waits; bytes that are no HTTP/3 request are a 400.
        assert_eq!(request_status(&ok[..ok.len() - 1], &any, false), None);
        assert_eq!(
            request_status(&[0x01, 0x02, 0xff, 0xff], &any, false),
            Some(400)
        );
        assert_eq!(request_status(&[0x21, 0x00], &any, false), Some(400));
    }

    #[test]
    fn a_qpack_integer_too_long_for_the_decoder_is_a_400() {
        // A HEADERS frame whose field line's integer runs on for 36 bytes (the fuzzer's).
        let mut frame = vec![0x01, 0x2a, 0xfc, 0x05, 0x5f];
        frame.extend([0x8f; 36]);
        frame.extend([0x01, 0xf9, 0xa0, 0xa0, 0xa0, 0xa0, 0x01, 0x04, 0xa1]);
        let any = WebTransportConfig {
            path: "/".into(),
            origins: Vec::new(),
        };
        assert_eq!(request_status(&frame, &any, false), Some(400));
    }
}
