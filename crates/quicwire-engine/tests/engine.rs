//! The engine without sockets or a clock: a client and a server engine exchange their
//! datagrams in memory (real QUIC, real TLS 1.3 with the certificate verified), as a shell
//! would carry them, on a virtual clock that moves a millisecond a step, so timeouts take
//! no wall-clock time and every run is the same. The shells' own tests (vitest, on both
//! backends) run the same over UDP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use quicwire_core::batch::{event, op, EVENT_WORDS};
use quicwire_core::tls::generate_dev_cert;
use quicwire_core::ErrorCode;
use quicwire_engine::{ConnId, Engine, Instant};

thread_local! {
    /// Each test's virtual clock (tests run on threads of their own).
    static CLOCK: Cell<Instant> = Cell::new(Instant::now());
}

/// The virtual time.
fn now() -> Instant {
    CLOCK.get()
}

/// One step of virtual time: a millisecond.
fn tick() {
    CLOCK.set(CLOCK.get() + Duration::from_millis(1));
}

/// Runs an engine's timers if they are due.
fn timers(engine: &mut Engine) {
    if engine.next_timeout().is_some_and(|t| t <= now()) {
        engine.on_timeout(now());
    }
}

/// Virtual time enough for anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

const CLIENT: &str = "127.0.0.1:40000";
const SERVER: &str = "127.0.0.1:4433";

fn pair() -> (Engine, Engine) {
    let cert = generate_dev_cert(&["localhost".into()]).unwrap();
    let server = Engine::server(now(), cert.cert.clone(), cert.key, &[], &[], &[]).unwrap();
    let client = Engine::client(now(), Some(cert.cert), false, &["raw".into()], &[]).unwrap();
    (client, server)
}

/// Everything one engine sends now, as the other would receive it. With `full`, the socket
/// is full after every datagram: the shell keeps that one and asks again next time.
fn transmits(from: &mut Engine, from_addr: &str, full: bool) -> Vec<(SocketAddr, BytesMut)> {
    let from_addr: SocketAddr = from_addr.parse().unwrap();
    let mut datagrams = Vec::new();
    from.poll_transmits(now(), 1, |data, _, _| {
        datagrams.push((from_addr, BytesMut::from(data)));
        !full
    });
    datagrams
}

/// Carries what one engine sends now to the other; how many datagrams.
fn carry(from: &mut Engine, from_addr: &str, to: &mut Engine, full: bool) -> usize {
    let datagrams = transmits(from, from_addr, full);
    let n = datagrams.len();
    to.receive(now(), datagrams);
    n
}

/// Carries datagrams both ways (and runs due timers) until `done` holds for the events.
fn pump(
    client: &mut Engine,
    server: &mut Engine,
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

/// An event as the application gets it: its numbers and its body.
#[derive(Debug)]
struct Seen {
    words: Vec<f64>,
    body: Vec<u8>,
}

/// The engine's events, each with its body from wherever the batch keeps it.
fn seen(engine: &mut Engine) -> Vec<Seen> {
    let Some((words, data)) = engine.take_events().map(|(w, d)| (w.to_vec(), d.to_vec())) else {
        return Vec::new();
    };
    let bodies = engine.take_event_bodies();
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

/// Connects the client and carries the handshake until both sides report the connection;
/// returns its id on the client and the client's events so far.
fn connected(client: &mut Engine, server: &mut Engine, full: bool) -> (f64, Vec<Seen>) {
    let id = client
        .connect(now(), "localhost", 4433.0, SERVER)
        .unwrap()
        .to_f64();
    let (c, _) = pump(client, server, full, |c, s| {
        has(c, event::CONNECTION).is_some() && has(s, event::CONNECTION).is_some()
    });
    (id, c)
}

/// One op (`quicwire_core::batch` layout) with `body` as its bytes.
fn one_op(code: u32, target: f64, id: f64, body: &[u8]) -> [f64; 5] {
    [f64::from(code), target, id, body.len() as f64, 0.0]
}

fn has(events: &[Seen], kind: f64) -> Option<&[f64]> {
    events.iter().map(|e| &e.words[..]).find(|e| e[0] == kind)
}

#[test]
fn connects_and_answers_a_request_in_memory() {
    let (mut client, mut server) = pair();
    let (id, c) = connected(&mut client, &mut server, false);
    assert_eq!(has(&c, event::CONNECTION).unwrap()[1], id);

    let body = b"ping";
    let ops = one_op(op::REQUEST, id, 7.0, body);
    assert!(client.write(now(), body, &ops).is_empty());
    let (_, s) = pump(&mut client, &mut server, false, |_, s| {
        has(s, event::REQUEST).is_some()
    });
    let request = has(&s, event::REQUEST).unwrap();
    let (peer, handle) = (request[1], request[2]);

    let answer = b"pong";
    let ops = one_op(op::RESPOND, peer, handle, answer);
    assert!(server.write(now(), answer, &ops).is_empty());
    let (c, _) = pump(&mut client, &mut server, false, |c, _| {
        has(c, event::RESPONSE).is_some()
    });
    let response = has(&c, event::RESPONSE).unwrap();
    assert_eq!(response[2], 7.0, "the request id comes back");
    assert_eq!(response[6], answer.len() as f64);

    // An answer goes once: a second one is an error, not dropped without a word.
    let failed = server.write(now(), answer, &ops);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1.code, ErrorCode::InvalidArgument);
}

/// The first error of a write of one op (None: it went).
fn write_error(engine: &mut Engine, ops: &[f64; 5], body: &[u8]) -> Option<ErrorCode> {
    engine.write(now(), body, ops).first().map(|(_, e)| e.code)
}

#[test]
fn an_answer_that_cannot_go_is_an_error() {
    let (mut client, mut server) = pair();
    let (id, _) = connected(&mut client, &mut server, false);
    // A request the client stops waiting for (10 ms): its stream is reset.
    let mut ops = one_op(op::REQUEST, id, 1.0, b"slow");
    ops[4] = 10.0;
    assert!(client.write(now(), b"slow", &ops).is_empty());
    let (_, s) = pump(&mut client, &mut server, false, |_, s| {
        has(s, event::REQUEST).is_some()
    });
    let request = has(&s, event::REQUEST).unwrap().to_vec();
    pump(&mut client, &mut server, false, |c, _| {
        has(c, event::REQUEST_FAILED).is_some()
    });
    // Let the STOP_SENDING reach the server.
    for _ in 0..20 {
        carry(&mut client, CLIENT, &mut server, false);
        carry(&mut server, SERVER, &mut client, false);
        tick();
    }
    let answer = one_op(op::RESPOND, request[1], request[2], b"late");
    assert_eq!(
        write_error(&mut server, &answer, b"late"),
        Some(ErrorCode::StreamReset)
    );

    // A request whose connection closes before it is answered.
    assert!(client
        .write(now(), b"ping", &one_op(op::REQUEST, id, 2.0, b"ping"))
        .is_empty());
    let (_, s) = pump(&mut client, &mut server, false, |_, s| {
        has(s, event::REQUEST).is_some()
    });
    let request = has(&s, event::REQUEST).unwrap().to_vec();
    client.disconnect(now(), ConnId::from_f64(id).unwrap());
    pump(&mut client, &mut server, false, |_, s| {
        has(s, event::CLOSED).is_some()
    });
    let answer = one_op(op::RESPOND, request[1], request[2], b"gone");
    assert_eq!(
        write_error(&mut server, &answer, b"gone"),
        Some(ErrorCode::ConnectionClosed)
    );
}

#[test]
fn connection_ids_are_never_reused() {
    // quinn-proto reuses a drained connection's slot; the engine's ids must not follow it,
    // or a message queued for a closed connection would reach the next one.
    let (mut client, mut server) = pair();
    let mut ids = std::collections::HashSet::new();
    let mut last = None;
    for _ in 0..5 {
        let (id, _) = connected(&mut client, &mut server, false);
        assert!(ids.insert(id.to_bits()), "id {id} came twice");
        if let Some(old) = last {
            assert_eq!(
                write_error(&mut client, &one_op(op::MESSAGE, old, 0.0, b"x"), b"x"),
                Some(ErrorCode::ConnectionClosed)
            );
        }
        client.disconnect(now(), ConnId::from_f64(id).unwrap());
        // Until quinn-proto has let go of it (draining), so its slot is free for the next.
        let deadline = now() + PATIENCE;
        while client.connection_count() > 0 {
            assert!(now() < deadline, "the closed connection never drained");
            carry(&mut client, CLIENT, &mut server, false);
            carry(&mut server, SERVER, &mut client, false);
            for engine in [&mut client, &mut server] {
                timers(engine);
                seen(engine);
            }
            tick();
        }
        last = Some(id);
    }
}

#[test]
fn acks_go_first_only_when_traffic_streams_in() {
    let (mut client, mut server) = pair();
    let (id, _) = connected(&mut client, &mut server, false);
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
    let ops = one_op(op::REQUEST, id, 1.0, b"ping");
    assert!(client.write(now(), b"ping", &ops).is_empty());
    let one = transmits(&mut client, CLIENT, false);
    assert_eq!(one.len(), 1);
    assert!(!server.receive(now(), one));
    // Half a MiB of messages, several datagrams: their ACKs go first, as the sender waits.
    let body = vec![1u8; 512 * 1024];
    let ops = one_op(op::MESSAGE, id, 0.0, &body);
    assert!(client.write(now(), &body, &ops).is_empty());
    let many = transmits(&mut client, CLIENT, false);
    assert!(many.len() > 1, "{} datagrams", many.len());
    assert!(server.receive(now(), many));
}

#[test]
fn a_batch_is_handed_out_once() {
    let (mut client, mut server) = pair();
    let (id, _) = connected(&mut client, &mut server, false);
    let ops = one_op(op::MESSAGE, id, 0.0, b"once");
    assert!(client.write(now(), b"once", &ops).is_empty());
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
fn timers_run_on_connections_no_call_moves() {
    // A server with two clients: one keeps talking, the other falls silent. Calls move only
    // the talking one; the silent one's idle timeout (3 x keepAliveMs) must fire all the same.
    let cert = generate_dev_cert(&["localhost".into()]).unwrap();
    let nan = f64::NAN;
    let limits = [nan, nan, nan, nan, nan, nan, 30.0];
    let mut server = Engine::server(now(), cert.cert.clone(), cert.key, &[], &limits, &[]).unwrap();
    let client =
        || Engine::client(now(), Some(cert.cert.clone()), false, &["raw".into()], &[]).unwrap();
    let (mut talker, mut silent) = (client(), client());
    const SILENT: &str = "127.0.0.1:40001";
    let talker_id = talker.connect(now(), "localhost", 4433.0, SERVER).unwrap();
    silent.connect(now(), "localhost", 4433.0, SERVER).unwrap();
    let mut at_server = Vec::new();
    let deadline = now() + PATIENCE;
    let mut both_up = false;
    while now() < deadline {
        // Until both are up, every datagram is carried; after that, none of the silent one's.
        carry(&mut talker, CLIENT, &mut server, false);
        if !both_up {
            carry(&mut silent, SILENT, &mut server, false);
        }
        let mut out = Vec::new();
        server.poll_transmits(now(), 1, |data, to, _| {
            out.push((to.to_string(), BytesMut::from(data)));
            true
        });
        let from: SocketAddr = SERVER.parse().unwrap();
        for (to, data) in out {
            match to.as_str() {
                CLIENT => talker.receive(now(), [(from, data)]),
                _ if !both_up => silent.receive(now(), [(from, data)]),
                _ => false,
            };
        }
        for engine in [&mut talker, &mut silent, &mut server] {
            timers(engine);
        }
        seen(&mut talker);
        seen(&mut silent);
        at_server.extend(seen(&mut server));
        let up = at_server.iter().filter(|e| e.words[0] == event::CONNECTION);
        if !both_up && up.count() == 2 {
            both_up = true;
        }
        if both_up {
            let ops = one_op(op::MESSAGE, talker_id.to_f64(), 0.0, b"tick");
            assert!(talker.write(now(), b"tick", &ops).is_empty());
        }
        if has(&at_server, event::CLOSED).is_some() {
            break;
        }
        tick();
    }
    let id_of = |peer: &str| {
        let up = at_server
            .iter()
            .find(|e| e.words[0] == event::CONNECTION && e.body.ends_with(peer.as_bytes()));
        up.map(|e| e.words[1])
    };
    let closed = has(&at_server, event::CLOSED).expect("the silent connection timed out");
    assert_eq!(Some(closed[1]), id_of(SILENT), "the silent one closed");
    assert!(at_server
        .iter()
        .any(|e| e.words[0] == event::MESSAGE && e.words[1] == id_of(CLIENT).unwrap()));
}

#[test]
fn a_full_socket_loses_nothing() {
    let (mut client, mut server) = pair();
    let (id, _) = connected(&mut client, &mut server, true);
    // Half a MiB: several 64 KiB datagrams, each call of poll_transmits taking only one.
    let body = vec![7u8; 512 * 1024];
    let ops = one_op(op::MESSAGE, id, 0.0, &body);
    assert!(client.write(now(), &body, &ops).is_empty());
    let (_, s) = pump(&mut client, &mut server, true, |_, s| {
        has(s, event::MESSAGE).is_some()
    });
    let got = s.iter().find(|e| e.words[0] == event::MESSAGE).unwrap();
    assert_eq!(got.body, body);
    // Not recovered by retransmission either: no packet was ever missing.
    let stats = client.stats();
    assert!(stats.contains("\"lostPackets\":0,"), "{stats}");
}

#[test]
fn small_and_large_bodies_arrive_whole_in_order() {
    let (mut client, mut server) = pair();
    let (id, _) = connected(&mut client, &mut server, false);
    // Around LARGE_BODY, where a body leaves the batches' shared buffers for one of its own.
    let edge = quicwire_core::batch::LARGE_BODY;
    let sizes = [1, edge - 1, edge, 3, 70_000, 64];
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|b| (b * 31 + i) as u8).collect())
        .collect();
    let ops: Vec<f64> = bodies
        .iter()
        .flat_map(|b| one_op(op::MESSAGE, id, 0.0, b))
        .collect();
    assert!(client.write(now(), &bodies.concat(), &ops).is_empty());
    let (_, s) = pump(&mut client, &mut server, false, |_, s| {
        s.iter().filter(|e| e.words[0] == event::MESSAGE).count() == sizes.len()
    });
    let got: Vec<&Vec<u8>> = s
        .iter()
        .filter(|e| e.words[0] == event::MESSAGE)
        .map(|e| &e.body)
        .collect();
    assert_eq!(got, bodies.iter().collect::<Vec<_>>());
}

#[test]
fn a_bad_peer_certificate_is_err_tls() {
    let (mut client, _) = pair();
    let other = generate_dev_cert(&["localhost".into()]).unwrap();
    let mut server = Engine::server(now(), other.cert, other.key, &[], &[], &[]).unwrap();
    client.connect(now(), "localhost", 4433.0, SERVER).unwrap();
    let (c, _) = pump(&mut client, &mut server, false, |c, _| {
        has(c, event::CLOSED).is_some()
    });
    let closed = has(&c, event::CLOSED).unwrap();
    let codes = quicwire_core::ErrorCode::ALL;
    assert_eq!(codes[closed[3] as usize].as_str(), "ERR_TLS");
}

#[test]
fn large_bodies_copy_into_a_buffer_whole_or_not_at_all() {
    let (mut client, mut server) = pair();
    let (id, _) = connected(&mut client, &mut server, false);
    let bodies: Vec<Vec<u8>> = (0..3u8).map(|k| vec![k; 20_000 + usize::from(k)]).collect();
    let data = bodies.concat();
    let ops: Vec<f64> = bodies
        .iter()
        .flat_map(|b| one_op(op::MESSAGE, id, 0.0, b))
        .collect();
    assert!(client.write(now(), &data, &ops).is_empty());
    // Until a batch holds all three large bodies (none of them small, so none in `data`).
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
