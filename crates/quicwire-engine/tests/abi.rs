//! The engine as the JavaScript shells drive it (`abi`): positional options, op batches in,
//! event batches out, on a virtual clock. A shell hands datagrams over itself here, one at
//! a time when it plays a full socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use quicwire_core::tls::generate_dev_cert;
use quicwire_core::ErrorCode;
use quicwire_engine::abi::{
    event, op, JsEngine, EVENT_WORDS, LARGE_BODY, OP_WORDS, TRANSPORT_OPTIONS,
};
use quicwire_engine::Instant;

thread_local! {
    /// Each test's virtual clock (tests run on threads of their own).
    static CLOCK: Cell<Instant> = Cell::new(Instant::now());
}

fn now() -> Instant {
    CLOCK.get()
}

/// One step of virtual time: a millisecond.
fn tick() {
    CLOCK.set(CLOCK.get() + Duration::from_millis(1));
}

const PATIENCE: Duration = Duration::from_secs(30);
const CLIENT: &str = "127.0.0.1:40000";
const SERVER: &str = "127.0.0.1:4433";

fn pair() -> (JsEngine, JsEngine) {
    let cert = generate_dev_cert(&["localhost".into()], None).unwrap();
    let server = JsEngine::server(now(), cert.cert.clone(), cert.key, &[], &[], &[], None).unwrap();
    let client = JsEngine::client(now(), Some(cert.cert), false, &["raw".into()], &[]).unwrap();
    (client, server)
}

/// What `from` has to send now; with `full`, a socket that takes one datagram per call.
fn transmits(from: &mut JsEngine, from_addr: &str, full: bool) -> Vec<(SocketAddr, BytesMut)> {
    let from_addr: SocketAddr = from_addr.parse().unwrap();
    let mut datagrams = Vec::new();
    from.engine_mut().poll_transmits(now(), 1, |data, _, _| {
        datagrams.push((from_addr, BytesMut::from(data)));
        !full
    });
    datagrams
}

fn carry(from: &mut JsEngine, from_addr: &str, to: &mut JsEngine, full: bool) -> usize {
    let datagrams = transmits(from, from_addr, full);
    let n = datagrams.len();
    to.engine_mut().receive(now(), datagrams);
    n
}

fn timers(js: &mut JsEngine) {
    let engine = js.engine_mut();
    if engine.next_timeout().is_some_and(|t| t <= now()) {
        engine.on_timeout(now());
    }
}

/// An event as the application gets it: its numbers and its body.
#[derive(Debug)]
struct Seen {
    words: Vec<f64>,
    body: Vec<u8>,
}

/// The engine's events, each with its body from wherever the batch keeps it.
fn seen(js: &mut JsEngine) -> Vec<Seen> {
    let Some((words, data)) = js.take_events().map(|(w, d)| (w.to_vec(), d.to_vec())) else {
        return Vec::new();
    };
    let bodies = js.take_event_bodies();
    words
        .chunks_exact(EVENT_WORDS)
        .map(|w| {
            let (offset, len) = (w[5], w[6] as usize);
            let body = if offset < 0.0 {
                bodies[(-offset) as usize - 1].to_vec()
            } else {
                data[offset as usize..offset as usize + len].to_vec()
            };
            assert_eq!(body.len(), len);
            Seen {
                words: w.to_vec(),
                body,
            }
        })
        .collect()
}

/// Carries datagrams both ways (and runs due timers) until `done` holds for the events.
fn pump(
    client: &mut JsEngine,
    server: &mut JsEngine,
    full: bool,
    mut done: impl FnMut(&[Seen], &[Seen]) -> bool,
) -> (Vec<Seen>, Vec<Seen>) {
    let (mut c_events, mut s_events) = (Vec::new(), Vec::new());
    let deadline = now() + PATIENCE;
    while now() < deadline {
        carry(client, CLIENT, server, full);
        carry(server, SERVER, client, full);
        timers(client);
        timers(server);
        c_events.extend(seen(client));
        s_events.extend(seen(server));
        if done(&c_events, &s_events) {
            return (c_events, s_events);
        }
        tick();
    }
    panic!("no progress: client {c_events:?}, server {s_events:?}");
}

fn has(events: &[Seen], kind: f64) -> Option<&[f64]> {
    events.iter().map(|e| &e.words[..]).find(|e| e[0] == kind)
}

fn connected(client: &mut JsEngine, server: &mut JsEngine, full: bool) -> f64 {
    let id = client
        .connect(now(), "localhost", 4433.0, SERVER, 0.0)
        .unwrap();
    pump(client, server, full, |c, s| {
        has(c, event::CONNECTION).is_some() && has(s, event::CONNECTION).is_some()
    });
    id
}

/// One op with `body` as its bytes.
fn one_op(code: u32, target: f64, id: f64, body: &[u8]) -> [f64; OP_WORDS] {
    [f64::from(code), target, id, body.len() as f64, 0.0, 0.0]
}

fn write(js: &mut JsEngine, data: &[u8], ops: &[f64]) -> Vec<ErrorCode> {
    js.write(now(), data, ops, |_| None)
        .into_iter()
        .map(|f| f.error.code)
        .collect()
}

#[test]
fn a_tag_dials_a_connection_of_its_own() {
    let (mut client, mut server) = pair();
    let pooled = connected(&mut client, &mut server, false);
    let again = client
        .connect(now(), "localhost", 4433.0, SERVER, 0.0)
        .unwrap();
    assert_eq!(again, pooled, "the same key: the pooled connection");
    let own = client
        .connect(now(), "localhost", 4433.0, SERVER, 1.0)
        .unwrap();
    let other = client
        .connect(now(), "localhost", 4433.0, SERVER, 2.0)
        .unwrap();
    assert!(own != pooled && other != pooled && own != other);
    assert_eq!(
        client
            .connect(now(), "localhost", 4433.0, SERVER, 1.0)
            .unwrap(),
        own
    );
    let (c, _) = pump(&mut client, &mut server, false, |c, _| {
        c.iter().filter(|e| e.words[0] == event::CONNECTION).count() == 2
    });
    let ids: Vec<f64> = c
        .iter()
        .filter(|e| e.words[0] == event::CONNECTION)
        .map(|e| e.words[1])
        .collect();
    assert!(ids.contains(&own) && ids.contains(&other));
}

#[test]
fn ops_in_events_out() {
    let (mut client, mut server) = pair();
    let id = connected(&mut client, &mut server, false);
    assert!(write(&mut client, b"ping", &one_op(op::REQUEST, id, 7.0, b"ping")).is_empty());
    let (_, s) = pump(&mut client, &mut server, false, |_, s| {
        has(s, event::REQUEST).is_some()
    });
    let request = has(&s, event::REQUEST).unwrap();
    let (peer, handle) = (request[1], request[2]);
    let answer = one_op(op::RESPOND, peer, handle, b"pong");
    assert!(write(&mut server, b"pong", &answer).is_empty());
    let (c, _) = pump(&mut client, &mut server, false, |c, _| {
        has(c, event::RESPONSE).is_some()
    });
    let response = has(&c, event::RESPONSE).unwrap();
    assert_eq!(
        (response[1], response[2]),
        (id, 7.0),
        "the request id comes back"
    );
    assert_eq!(response[6], 4.0);
    // Failures name their op, with a code.
    assert_eq!(
        write(&mut server, b"pong", &answer),
        vec![ErrorCode::InvalidArgument]
    );
    let mut ops = one_op(op::MESSAGE, 12345.0, 0.0, b"x").to_vec();
    ops.extend(one_op(op::MESSAGE, id, 0.0, b"y"));
    let failed = client.write(now(), b"xy", &ops, |_| None);
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].op, failed[0].error.code),
        (0, ErrorCode::ConnectionClosed)
    );
}

#[test]
fn acks_go_first_only_when_traffic_streams_in() {
    let (mut client, mut server) = pair();
    let id = connected(&mut client, &mut server, false);
    // Settle what the handshake left (ACKs, HELLO) so that a request travels alone.
    for _ in 0..10 {
        if carry(&mut client, CLIENT, &mut server, false)
            + carry(&mut server, SERVER, &mut client, false)
            == 0
        {
            break;
        }
    }
    // A request, one datagram: the application goes first, so its answer takes the ACK along.
    assert!(write(&mut client, b"ping", &one_op(op::REQUEST, id, 1.0, b"ping")).is_empty());
    let one = transmits(&mut client, CLIENT, false);
    assert_eq!(one.len(), 1);
    assert!(!server.engine_mut().receive(now(), one));
    // Half a MiB of messages, several datagrams: their ACKs go first, as the sender waits.
    let body = vec![1u8; 512 * 1024];
    assert!(write(&mut client, &body, &one_op(op::MESSAGE, id, 0.0, &body)).is_empty());
    let many = transmits(&mut client, CLIENT, false);
    assert!(many.len() > 1, "{} datagrams", many.len());
    assert!(server.engine_mut().receive(now(), many));
}

#[test]
fn a_batch_is_handed_out_once() {
    let (mut client, mut server) = pair();
    let id = connected(&mut client, &mut server, false);
    assert!(write(&mut client, b"once", &one_op(op::MESSAGE, id, 0.0, b"once")).is_empty());
    let mut small = None;
    for _ in 0..20 {
        carry(&mut client, CLIENT, &mut server, false);
        if let Some((_, data)) = server.take_events().filter(|(_, d)| !d.is_empty()) {
            small = Some(data.to_vec());
            break;
        }
        carry(&mut server, SERVER, &mut client, false);
    }
    assert_eq!(small.as_deref(), Some(&b"once"[..]));
    // Nothing new: what a shell asks for now is empty, not the old batch again.
    assert!(server.take_events().is_none());
    assert!(server.take_event_data().is_empty());
    assert!(server.take_event_bodies().is_empty());
}

#[test]
fn a_full_socket_loses_nothing() {
    let (mut client, mut server) = pair();
    let id = connected(&mut client, &mut server, true);
    // Half a MiB: several 64 KiB datagrams, each call of poll_transmits taking only one.
    let body = vec![7u8; 512 * 1024];
    assert!(write(&mut client, &body, &one_op(op::MESSAGE, id, 0.0, &body)).is_empty());
    let (_, s) = pump(&mut client, &mut server, true, |_, s| {
        has(s, event::MESSAGE).is_some()
    });
    let got = s.iter().find(|e| e.words[0] == event::MESSAGE).unwrap();
    assert_eq!(got.body, body);
    // Not recovered by retransmission either: no packet was ever missing.
    let stats = client.stats_json();
    assert!(stats.contains("\"lostPackets\":0,"), "{stats}");
}

#[test]
fn large_bodies_copy_into_a_buffer_whole_or_not_at_all() {
    let (mut client, mut server) = pair();
    let id = connected(&mut client, &mut server, false);
    let bodies: Vec<Vec<u8>> = (0..3u8)
        .map(|k| vec![k; LARGE_BODY + 4_000 + usize::from(k)])
        .collect();
    let data = bodies.concat();
    let ops: Vec<f64> = bodies
        .iter()
        .flat_map(|b| one_op(op::MESSAGE, id, 0.0, b))
        .collect();
    assert!(write(&mut client, &data, &ops).is_empty());
    // Until a batch holds large bodies (none of them small, so none in `data`).
    let mut lengths = Vec::new();
    for _ in 0..50 {
        carry(&mut client, CLIENT, &mut server, false);
        carry(&mut server, SERVER, &mut client, false);
        if let Some((words, _)) = server.take_events() {
            lengths.extend(
                words
                    .chunks_exact(EVENT_WORDS)
                    .filter(|w| w[0] == event::MESSAGE && w[5] < 0.0)
                    .map(|w| w[6] as usize),
            );
            if !lengths.is_empty() {
                break;
            }
        }
    }
    let need: usize = lengths.iter().sum();
    assert!(need > 0, "no large bodies arrived");
    // Too little room: nothing is copied, and the bodies stay.
    let mut calls = 0;
    assert_eq!(server.copy_event_bodies(need - 1, |_, _| calls += 1), need);
    assert_eq!(calls, 0);
    // Room enough: one after another, in event order, and then they are gone.
    let mut into = vec![0xee; need + 7];
    let room = into.len();
    assert_eq!(
        server.copy_event_bodies(room, |at, b| into[at..at + b.len()].copy_from_slice(b)),
        need
    );
    assert_eq!(&into[..need], &data[..need]);
    assert!(into[need..].iter().all(|&b| b == 0xee));
    assert!(server.take_event_bodies().is_empty());
}

#[test]
fn bad_options_are_invalid_arguments_naming_the_option() {
    let cert = generate_dev_cert(&["localhost".into()], None).unwrap();
    let mut options = [f64::NAN; TRANSPORT_OPTIONS.len()];
    options[2] = 0.0; // idleTimeoutMs
    let e = JsEngine::client(now(), None, false, &[], &options).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("idleTimeoutMs"), "{e}");
    let e =
        JsEngine::server(now(), cert.cert, cert.key, &["yaml".into()], &[], &[], None).unwrap_err();
    assert!(e.message.contains("yaml"), "{e}");
}
