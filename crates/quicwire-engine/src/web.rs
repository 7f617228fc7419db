//! A client's connection over a browser's WebTransport session (`new WebTransport(url)`):
//! the browser runs QUIC, HTTP/3 and the WebTransport framing, and its page moves the bytes
//! of the session's streams and datagrams in and out of the engine. [`WebStreams`] are those
//! streams as the session sees them ([`Streams`]), so the quicwire session on them is the
//! same code as on QUIC.
//!
//! The driver (the page) carries out the [`WebCommand`]s the engine hands out, in order, and
//! reports what the browser did through the engine's `web_*` calls. Streams are named by a
//! key: for ours, the id the engine gave them; for the server's, the key `web_incoming`
//! returned. Only the channel number at the start of each unidirectional stream (see
//! docs/PROTOCOL.md, section 1b) is read and written here; the browser adds and strips the
//! WebTransport stream header itself.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use quicwire_core::{varint, Error};
use quinn_proto::{Dir, Side, StreamId, VarInt};
use web_time::Instant;

use crate::conn::LinkEvent;
use crate::datagram::DatagramPath;
use crate::streams::{Read, Streams};

/// Keys of the server's unidirectional streams until their channel number is read (then
/// the stream's id for that number): apart from every stream id.
const UNNUMBERED: u64 = 1 << 52;

/// What the driver does for the engine, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebCommand {
    /// Open the WebTransport session to `url` (the connection's first command).
    Connect {
        url: String,
    },
    /// Open a stream (`createBidirectionalStream` or `createUnidirectionalStream`) for
    /// `stream`; its writes follow. A browser that refuses it for want of stream credit
    /// takes it again later.
    Open {
        stream: u64,
        bidi: bool,
    },
    Write {
        stream: u64,
        data: Bytes,
    },
    /// End the stream (close its writer).
    Finish {
        stream: u64,
    },
    /// Abort the stream's writer with this application error code.
    Reset {
        stream: u64,
        code: u32,
    },
    /// Cancel the stream's reader with this application error code.
    Stop {
        stream: u64,
        code: u32,
    },
    /// Its send order (higher first), where the browser has `sendOrder`.
    Priority {
        stream: u64,
        priority: i32,
    },
    Datagram {
        data: Bytes,
    },
    /// Close the session with this code and reason.
    Close {
        code: u32,
        reason: String,
    },
}

#[derive(Debug)]
struct Inbound {
    /// The key the page names the stream by.
    page: u64,
    chunks: VecDeque<Bytes>,
    /// Its end, once the driver reported it: `Ended` or `Reset`.
    end: Option<Read>,
}

impl Inbound {
    fn new(page: u64) -> Inbound {
        Inbound {
            page,
            chunks: VecDeque::new(),
            end: None,
        }
    }
}

/// The sending side of a stream we may still write on.
#[derive(Debug, Default)]
struct Outbound {
    /// The code the server gave when it asked us to stop sending.
    stopped: Option<u64>,
    priority: i32,
}

/// One WebTransport session's streams and datagrams, between the session and the page.
#[derive(Debug)]
pub(crate) struct WebStreams {
    peer: String,
    ready: bool,
    closed: bool,
    /// Our streams opened so far: unidirectional, bidirectional.
    opened: [u64; 2],
    /// The server's bidirectional streams so far, and its unidirectional streams whose
    /// channel number is not whole yet (by key).
    peer_bi: u64,
    next_unnumbered: u64,
    unnumbered: HashMap<u64, Vec<u8>>,
    /// Keys the server's unidirectional streams keep after their number was read, while
    /// they are read.
    aliases: HashMap<u64, StreamId>,
    inbound: HashMap<StreamId, Inbound>,
    /// The server's unidirectional streams, handed to the session in the order of their
    /// numbers (its control stream first), as quinn-proto does.
    uni: BTreeMap<u64, StreamId>,
    next_uni: u64,
    bi: VecDeque<StreamId>,
    /// Streams we may still write on (ours, and the server's bidirectional ones), until
    /// finished or reset: with `inbound`, a stream is forgotten once both its sides are
    /// done, as quinn-proto does.
    outbound: HashMap<StreamId, Outbound>,
    commands: VecDeque<WebCommand>,
    events: VecDeque<LinkEvent>,
    datagrams: VecDeque<Bytes>,
    /// The largest datagram the session carries (the browser's `maxDatagramSize`).
    max_datagram: usize,
}

/// A stream error code as a page gives it to the browser, which maps it into HTTP/3's space
/// itself: quicwire's codes are small (an unknown one goes as PROTOCOL).
fn browser_code(code: u64) -> u32 {
    u32::try_from(code).unwrap_or(quicwire_core::app_code::PROTOCOL)
}

fn key(id: StreamId) -> u64 {
    VarInt::from(id).into_inner()
}

impl WebStreams {
    pub fn new(peer: String, url: String) -> WebStreams {
        WebStreams {
            peer,
            ready: false,
            closed: false,
            opened: [0, 0],
            peer_bi: 0,
            next_unnumbered: 0,
            unnumbered: HashMap::new(),
            aliases: HashMap::new(),
            inbound: HashMap::new(),
            uni: BTreeMap::new(),
            next_uni: 0,
            bi: VecDeque::new(),
            outbound: HashMap::new(),
            commands: VecDeque::from([WebCommand::Connect { url }]),
            events: VecDeque::new(),
            datagrams: VecDeque::new(),
            max_datagram: 0,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn take_commands(&mut self) -> impl Iterator<Item = WebCommand> + '_ {
        self.commands.drain(..)
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// The session is open.
    pub fn on_ready(&mut self, max_datagram: usize) {
        if self.ready || self.closed {
            return;
        }
        self.ready = true;
        self.max_datagram = max_datagram;
        self.events.push_back(LinkEvent::Connected);
    }

    /// The session ended (the server closed it, or it never opened).
    pub fn on_closed(&mut self, error: Error) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.events.push_back(LinkEvent::Lost(error));
    }

    /// A new stream of the server's: the key the driver names it by from now on.
    pub fn on_incoming(&mut self, bidi: bool) -> u64 {
        if bidi {
            let id = StreamId::new(Side::Server, Dir::Bi, self.peer_bi);
            self.peer_bi += 1;
            self.inbound.insert(id, Inbound::new(key(id)));
            self.outbound.insert(id, Outbound::default());
            self.bi.push_back(id);
            self.events.push_back(LinkEvent::Streams);
            key(id)
        } else {
            let at = UNNUMBERED + self.next_unnumbered;
            self.next_unnumbered += 1;
            self.unnumbered.insert(at, Vec::new());
            at
        }
    }

    /// Bytes of stream `stream`, and whether it ended after them.
    pub fn on_data(&mut self, stream: u64, data: &[u8], fin: bool) {
        let id = match self.unnumbered.get_mut(&stream) {
            Some(head) => {
                head.extend_from_slice(data);
                let Some((number, used)) = varint::get(head) else {
                    if fin {
                        self.unnumbered.remove(&stream);
                    }
                    return;
                };
                let rest = Bytes::copy_from_slice(&head[used..]);
                self.unnumbered.remove(&stream);
                let id = StreamId::new(Side::Server, Dir::Uni, number);
                if self.inbound.contains_key(&id) || number < self.next_uni {
                    // A number used twice: not a stream the session can read.
                    return;
                }
                self.aliases.insert(stream, id);
                self.inbound.insert(id, Inbound::new(stream));
                self.uni.insert(number, id);
                self.push(id, rest, fin);
                return;
            }
            None => self.id_of(stream),
        };
        self.push(id, Bytes::copy_from_slice(data), fin);
    }

    fn push(&mut self, id: StreamId, data: Bytes, fin: bool) {
        let Some(inbound) = self.inbound.get_mut(&id) else {
            return;
        };
        if inbound.end.is_some() {
            return;
        }
        if !data.is_empty() {
            inbound.chunks.push_back(data);
        }
        if fin {
            inbound.end = Some(Read::Ended);
        }
        self.events.push_back(LinkEvent::Streams);
    }

    /// The server reset stream `stream` (its sending side) with `code`.
    pub fn on_reset(&mut self, stream: u64, code: u64) {
        if self.unnumbered.remove(&stream).is_some() {
            return;
        }
        let id = self.id_of(stream);
        if let Some(inbound) = self.inbound.get_mut(&id) {
            inbound.end.get_or_insert(Read::Reset(code));
            self.events.push_back(LinkEvent::Streams);
        }
    }

    /// The server asked us to stop sending on stream `stream`, with `code`.
    pub fn on_stopped(&mut self, stream: u64, code: u64) {
        let id = self.id_of(stream);
        if let Some(outbound) = self.outbound.get_mut(&id) {
            if outbound.stopped.is_none() {
                outbound.stopped = Some(code);
                self.events.push_back(LinkEvent::Stopped(id));
            }
        }
    }

    pub fn on_datagram(&mut self, data: &[u8]) {
        self.datagrams.push_back(Bytes::copy_from_slice(data));
        self.events.push_back(LinkEvent::DatagramIn);
    }

    /// Stops tracking what we receive on `id` (read to its end, or stopped).
    fn forget_inbound(&mut self, id: StreamId) -> Option<Inbound> {
        let inbound = self.inbound.remove(&id)?;
        self.aliases.remove(&inbound.page);
        Some(inbound)
    }

    fn id_of(&self, stream: u64) -> StreamId {
        match self.aliases.get(&stream) {
            Some(&id) => id,
            None => StreamId::from(VarInt::from_u64(stream).unwrap_or_default()),
        }
    }
}

impl Streams for WebStreams {
    fn open(&mut self, dir: Dir) -> Option<StreamId> {
        if self.closed {
            return None;
        }
        let at = usize::from(dir == Dir::Bi);
        let index = self.opened[at];
        self.opened[at] += 1;
        let id = StreamId::new(Side::Client, dir, index);
        let stream = key(id);
        self.outbound.insert(id, Outbound::default());
        self.commands.push_back(WebCommand::Open {
            stream,
            bidi: dir == Dir::Bi,
        });
        if dir == Dir::Uni {
            // Its channel number: its index among ours (0, the control stream, first).
            let mut number = BytesMut::with_capacity(8);
            varint::put(&mut number, index);
            let data = number.freeze();
            self.commands.push_back(WebCommand::Write { stream, data });
        }
        if dir == Dir::Bi {
            self.inbound.insert(id, Inbound::new(stream));
        }
        Some(id)
    }

    fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        match dir {
            Dir::Bi => self.bi.pop_front(),
            Dir::Uni => {
                let id = self.uni.remove(&self.next_uni)?;
                self.next_uni += 1;
                Some(id)
            }
        }
    }

    fn write(&mut self, id: StreamId, chunks: &mut [Bytes]) -> Option<usize> {
        let writable = self.outbound.get(&id).is_some_and(|o| o.stopped.is_none());
        if self.closed || !writable {
            return None;
        }
        // One write into the browser for all of them: each crosses into its network process.
        let data = match chunks {
            [one] => std::mem::take(one),
            _ => {
                let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
                chunks.iter().for_each(|c| all.extend_from_slice(c));
                all.freeze()
            }
        };
        if !data.is_empty() {
            let stream = key(id);
            self.commands.push_back(WebCommand::Write { stream, data });
        }
        Some(chunks.len())
    }

    fn finish(&mut self, id: StreamId) {
        if self.outbound.remove(&id).is_some() && !self.closed {
            self.commands
                .push_back(WebCommand::Finish { stream: key(id) });
            // The browser's writer has it; nothing tells the page when the server acknowledged it.
            self.events.push_back(LinkEvent::Finished(id));
        }
    }

    fn reset(&mut self, id: StreamId, code: u64) {
        if self.outbound.remove(&id).is_some() && !self.closed {
            let stream = key(id);
            let code = browser_code(code);
            self.commands.push_back(WebCommand::Reset { stream, code });
        }
    }

    fn stop(&mut self, id: StreamId, code: u64) {
        match self.forget_inbound(id) {
            Some(inbound) if !self.closed => {
                let code = browser_code(code);
                self.commands.push_back(WebCommand::Stop {
                    stream: inbound.page,
                    code,
                });
            }
            _ => {}
        }
    }

    fn stopped(&mut self, id: StreamId) -> Option<u64> {
        self.outbound.get(&id).and_then(|o| o.stopped)
    }

    fn priority(&mut self, id: StreamId) -> i32 {
        self.outbound.get(&id).map_or(0, |o| o.priority)
    }

    fn set_priority(&mut self, id: StreamId, priority: i32) {
        let Some(outbound) = self.outbound.get_mut(&id) else {
            return;
        };
        outbound.priority = priority;
        let stream = key(id);
        self.commands
            .push_back(WebCommand::Priority { stream, priority });
    }

    fn read(&mut self, id: StreamId, max: usize, sink: &mut dyn FnMut(Bytes)) -> Read {
        let Some(inbound) = self.inbound.get_mut(&id) else {
            return Read::Gone;
        };
        let mut left = max;
        while left > 0 {
            let Some(mut chunk) = inbound.chunks.pop_front() else {
                break;
            };
            if chunk.len() > left {
                inbound.chunks.push_front(chunk.split_off(left));
            }
            left -= chunk.len();
            sink(chunk);
        }
        if !inbound.chunks.is_empty() {
            return Read::Open;
        }
        match inbound.end {
            Some(end) => {
                self.forget_inbound(id);
                end
            }
            None => Read::Open,
        }
    }

    fn close(&mut self, _now: Instant, code: u32, reason: &str) {
        if !self.closed {
            self.closed = true;
            let reason = reason.to_owned();
            self.commands.push_back(WebCommand::Close { code, reason });
        }
    }

    fn is_handshaking(&self) -> bool {
        !self.ready
    }

    fn accepted_0rtt(&self) -> bool {
        false
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        Some(crate::webtransport::ALPN_H3.to_vec())
    }

    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn set_max_concurrent_streams(&mut self, _dir: Dir, _count: u32) {
        // The browser grants the server's stream credit itself.
    }
}

impl DatagramPath for WebStreams {
    fn max_datagram(&mut self) -> Option<usize> {
        (self.max_datagram > 0).then_some(self.max_datagram)
    }

    fn send_datagram(&mut self, data: Bytes) -> Result<(), Option<Bytes>> {
        if self.closed {
            return Err(None);
        }
        self.commands.push_back(WebCommand::Datagram { data });
        Ok(())
    }

    fn recv_datagram(&mut self) -> Option<Bytes> {
        self.datagrams.pop_front()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn streams() -> WebStreams {
        let mut w = WebStreams::new("host:1".into(), "https://host:1/".into());
        w.on_ready(1200);
        w.take_commands().for_each(drop);
        w
    }

    fn read_all(w: &mut WebStreams, id: StreamId) -> (Vec<u8>, Read) {
        let mut out = Vec::new();
        let read = w.read(id, usize::MAX, &mut |b| out.extend_from_slice(&b));
        (out, read)
    }

    #[test]
    fn our_unidirectional_streams_start_with_their_channel_number() {
        let mut w = streams();
        let control = w.open(Dir::Uni).unwrap();
        let channel = w.open(Dir::Uni).unwrap();
        assert_eq!((control.index(), channel.index()), (0, 1));
        let request = w.open(Dir::Bi).unwrap();
        let commands: Vec<_> = w.take_commands().collect();
        assert_eq!(
            commands,
            [
                WebCommand::Open {
                    stream: key(control),
                    bidi: false
                },
                WebCommand::Write {
                    stream: key(control),
                    data: Bytes::from_static(&[0])
                },
                WebCommand::Open {
                    stream: key(channel),
                    bidi: false
                },
                WebCommand::Write {
                    stream: key(channel),
                    data: Bytes::from_static(&[1])
                },
                WebCommand::Open {
                    stream: key(request),
                    bidi: true
                },
            ]
        );
    }

    #[test]
    fn the_servers_streams_go_to_the_session_in_the_order_of_their_numbers() {
        let mut w = streams();
        let first = w.on_incoming(false);
        let second = w.on_incoming(false);
        // Channel 1 comes first, its number split over two reads (a two-byte varint: 0x40 0x01).
        w.on_data(second, &[0x40], false);
        w.on_data(second, &[0x01, b'b'], false);
        assert_eq!(
            w.accept(Dir::Uni),
            None,
            "channel 0 (control) has not come yet"
        );
        w.on_data(first, &[0x00, b'a'], true);
        let control = w.accept(Dir::Uni).unwrap();
        let channel = w.accept(Dir::Uni).unwrap();
        assert_eq!((control.index(), channel.index()), (0, 1));
        assert_eq!(read_all(&mut w, control), (b"a".to_vec(), Read::Ended));
        assert_eq!(read_all(&mut w, control).1, Read::Gone);
        assert_eq!(read_all(&mut w, channel), (b"b".to_vec(), Read::Open));
        // Later bytes come under the key the driver knows the stream by.
        w.on_data(second, b"cd", false);
        assert_eq!(read_all(&mut w, channel), (b"cd".to_vec(), Read::Open));
        w.on_reset(second, 7);
        assert_eq!(read_all(&mut w, channel).1, Read::Reset(7));
    }

    #[test]
    fn reads_stop_at_their_budget_and_keep_the_rest() {
        let mut w = streams();
        let key = w.on_incoming(true);
        let id = w.accept(Dir::Bi).unwrap();
        w.on_data(key, b"hello", true);
        let mut out = Vec::new();
        assert_eq!(
            w.read(id, 2, &mut |b| out.extend_from_slice(&b)),
            Read::Open
        );
        assert_eq!(out, b"he");
        assert_eq!(read_all(&mut w, id), (b"llo".to_vec(), Read::Ended));
    }

    #[test]
    fn stopping_a_stream_names_it_as_the_page_does() {
        let mut w = streams();
        let uni = w.on_incoming(false);
        w.on_data(uni, &[0x00], false);
        let control = w.accept(Dir::Uni).unwrap();
        let bi = w.on_incoming(true);
        let request = w.accept(Dir::Bi).unwrap();
        w.stop(control, 5);
        w.stop(request, 6);
        w.stop(request, 6); // Stopped already: said once.
        let commands: Vec<_> = w.take_commands().collect();
        assert_eq!(
            commands,
            [
                WebCommand::Stop {
                    stream: uni,
                    code: 5
                },
                WebCommand::Stop {
                    stream: bi,
                    code: 6
                },
            ]
        );
    }

    /// Entries kept for streams, over every table of them.
    fn tracked(w: &WebStreams) -> usize {
        w.inbound.len() + w.aliases.len() + w.outbound.len()
    }

    #[test]
    fn streams_done_on_both_sides_are_forgotten() {
        let mut w = streams();
        for _ in 0..100 {
            // A request of ours: written and finished, answered, read to its end.
            let request = w.open(Dir::Bi).unwrap();
            w.set_priority(request, 3);
            assert_eq!(w.write(request, &mut [Bytes::from_static(b"q")]), Some(1));
            w.finish(request);
            w.on_data(key(request), b"a", true);
            assert_eq!(read_all(&mut w, request), (b"a".to_vec(), Read::Ended));
            // The server's request: read, then answered and finished.
            let page = w.on_incoming(true);
            let answering = w.accept(Dir::Bi).unwrap();
            w.on_data(page, b"q", true);
            assert_eq!(read_all(&mut w, answering), (b"q".to_vec(), Read::Ended));
            w.write(answering, &mut [Bytes::from_static(b"a")]).unwrap();
            w.finish(answering);
            // A request whose requester stopped waiting: reset in reply.
            let page = w.on_incoming(true);
            let stopped = w.accept(Dir::Bi).unwrap();
            w.on_data(page, b"q", true);
            read_all(&mut w, stopped);
            w.on_stopped(page, 4);
            assert_eq!(w.stopped(stopped), Some(4));
            w.reset(stopped, 4);
            assert_eq!(w.stopped(stopped), None);
        }
        // A channel of the server's, stopped.
        let page = w.on_incoming(false);
        w.on_data(page, &[0x00], false);
        let channel = w.accept(Dir::Uni).unwrap();
        w.stop(channel, 5);
        assert_eq!(tracked(&w), 0, "nothing is kept of 301 finished streams");
        // What the page says of a forgotten stream changes nothing.
        w.on_data(page, b"late", true);
        w.on_stopped(page, 6);
        assert_eq!(tracked(&w), 0);
        // Nor does the session finishing or resetting one again.
        let commands = w.take_commands().count();
        let request = w.open(Dir::Bi).unwrap();
        w.finish(request);
        w.finish(request);
        w.reset(request, 1);
        assert_eq!(w.write(request, &mut [Bytes::from_static(b"x")]), None);
        assert_eq!(
            w.take_commands().count(),
            2,
            "open and one finish (after {commands})"
        );
    }

    #[test]
    fn a_stopped_stream_takes_no_more_writes_and_a_closed_session_nothing() {
        let mut w = streams();
        let id = w.open(Dir::Bi).unwrap();
        w.on_stopped(key(id), 4);
        assert_eq!(w.stopped(id), Some(4));
        assert_eq!(w.write(id, &mut [Bytes::from_static(b"x")]), None);
        w.close(Instant::now(), 0, "done");
        assert!(w.is_closed());
        assert_eq!(w.open(Dir::Uni), None);
        assert_eq!(w.send_datagram(Bytes::from_static(b"d")), Err(None));
    }
}
