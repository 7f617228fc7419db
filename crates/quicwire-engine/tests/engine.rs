//! The engine on a simulated network with a virtual clock: real QUIC and TLS 1.3 (the
//! certificate checked), no sockets, no waiting. Timeouts of seconds take no wall-clock
//! time and every run with a seed is the same. The shells' own tests (vitest, both
//! backends) and the Rust API's run the same engine over UDP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{acknowledge_all, connect, messages, send, send_with, wait, Setup, PATIENCE};
use quicwire_core::{Error, ErrorCode};
use quicwire_engine::sim::{Link, Network};
use quicwire_engine::{Event, RequestOptions, SendOptions, LARGE_BODY, LAZY_ACK_DELAY};

/// Messages on the lane of `priority`.
fn lane(priority: i32) -> SendOptions {
    SendOptions {
        priority,
        ..Default::default()
    }
}

/// Messages safe to repeat (they may go as 0-RTT data), on the default lane.
const SAFE: SendOptions = SendOptions {
    priority: 0,
    idempotent: true,
    unconfirmed: false,
};

/// Messages whose sender does not wait for the ACK, on the default lane.
const UNCONFIRMED: SendOptions = SendOptions {
    priority: 0,
    idempotent: false,
    unconfirmed: true,
};

fn request(net: &mut Network, host: usize, conn: quicwire_engine::ConnId, id: u64, body: &[u8]) {
    let now = net.now();
    let body = Bytes::copy_from_slice(body);
    net.engine(host)
        .request(now, conn, id, body, RequestOptions::default())
        .unwrap();
}

/// Answers every request `host` has with its own body, as an echo server would.
fn echo(net: &mut Network, host: usize) -> usize {
    let requests: Vec<_> = net
        .events(host)
        .iter()
        .filter_map(|e| match e {
            Event::Request {
                conn, handle, body, ..
            } => Some((*conn, *handle, body.clone())),
            _ => None,
        })
        .collect();
    net.events(host)
        .retain(|e| !matches!(e, Event::Request { .. }));
    let now = net.now();
    for (conn, handle, body) in &requests {
        net.engine(host)
            .respond(now, *conn, *handle, Ok(body))
            .unwrap();
    }
    requests.len()
}

#[test]
fn connects_and_answers_a_request() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(1, |_| {}, |_| {});
    let (id, peer) = connect(&mut net, c, s);
    request(&mut net, c, id, 7, b"ping");
    let Event::Request { handle, body, .. } =
        wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
    else {
        unreachable!()
    };
    assert_eq!(&body[..], b"ping");
    let now = net.now();
    net.engine(s)
        .respond(now, peer, handle, Ok(b"pong"))
        .unwrap();
    let answer = wait(&mut net, c, |e| matches!(e, Event::Response { .. }));
    assert!(matches!(answer, Event::Response { id: 7, ref body, .. } if &body[..] == b"pong"));
    // An answer goes once: a second one is an error, not dropped without a word.
    let again = net.engine(s).respond(now, peer, handle, Ok(b"pong"));
    assert_eq!(again.unwrap_err().code, ErrorCode::InvalidArgument);
}

#[test]
fn a_requests_trace_context_reaches_the_responder() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(1, |_| {}, |_| {});
    let (id, _) = connect(&mut net, c, s);
    let context = Bytes::from_static(&[
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 1,
    ]);
    let traced = RequestOptions {
        trace: Some(context.clone()),
        ..Default::default()
    };
    let now = net.now();
    let engine = net.engine(c);
    engine
        .request(now, id, 1, Bytes::from_static(b"a"), traced)
        .unwrap();
    engine
        .request(
            now,
            id,
            2,
            Bytes::from_static(b"b"),
            RequestOptions::default(),
        )
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let Event::Request { body, trace, .. } =
            wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
        {
            seen.push((body, trace));
        }
    }
    seen.sort();
    assert_eq!(seen[0], (Bytes::from_static(b"a"), Some(context)));
    assert_eq!(seen[1], (Bytes::from_static(b"b"), None));
    // Too long a context is the caller's error, and the connection goes on.
    let long = RequestOptions {
        trace: Some(Bytes::from(vec![
            0;
            quicwire_core::frame::MAX_TRACE_CONTEXT + 1
        ])),
        ..Default::default()
    };
    let now = net.now();
    let err = net
        .engine(c)
        .request(now, id, 3, Bytes::from_static(b"c"), long);
    assert_eq!(err.unwrap_err().code, ErrorCode::InvalidArgument);
    request(&mut net, c, id, 4, b"d");
    assert!(matches!(
        wait(&mut net, s, |e| matches!(e, Event::Request { .. })),
        Event::Request { trace: None, .. }
    ));
}

#[test]
fn an_answer_that_cannot_go_is_an_error() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(2, |_| {}, |_| {});
    let (id, peer) = connect(&mut net, c, s);
    // A request the client stops waiting for (10 ms): its stream is reset.
    let now = net.now();
    let timeout = Some(Duration::from_millis(10));
    net.engine(c)
        .request(
            now,
            id,
            1,
            Bytes::from_static(b"slow"),
            RequestOptions {
                timeout,
                ..Default::default()
            },
        )
        .unwrap();
    let Event::Request { handle, .. } = wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
    else {
        unreachable!()
    };
    let failed = wait(&mut net, c, |e| matches!(e, Event::RequestFailed { .. }));
    assert!(
        matches!(&failed, Event::RequestFailed { id: 1, error, .. } if error.code == ErrorCode::Timeout),
        "{failed:?}"
    );
    net.advance(Duration::from_millis(20)); // the STOP_SENDING reaches the server
    let now = net.now();
    let late = net.engine(s).respond(now, peer, handle, Ok(b"late"));
    assert_eq!(late.unwrap_err().code, ErrorCode::StreamReset);

    // A request whose connection closes before it is answered.
    request(&mut net, c, id, 2, b"ping");
    let Event::Request { handle, .. } = wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
    else {
        unreachable!()
    };
    let now = net.now();
    net.engine(c).disconnect(now, id);
    wait(&mut net, s, |e| matches!(e, Event::Closed { .. }));
    let now = net.now();
    let gone = net.engine(s).respond(now, peer, handle, Ok(b"gone"));
    assert_eq!(gone.unwrap_err().code, ErrorCode::ConnectionClosed);
}

#[test]
fn connection_ids_are_never_reused() {
    // quinn-proto reuses a drained connection's slot; the engine's ids must not follow it,
    // or a message queued for a closed connection would reach the next one.
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(3, |_| {}, |_| {});
    let mut ids = std::collections::HashSet::new();
    let mut last = None;
    for _ in 0..5 {
        let (id, _) = connect(&mut net, c, s);
        assert!(ids.insert(id), "id {id} came twice");
        if let Some(old) = last {
            let e = net
                .engine(c)
                .outbox(old, SendOptions::default())
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::ConnectionClosed);
        }
        let now = net.now();
        net.engine(c).disconnect(now, id);
        // Until quinn-proto has let go of it (draining), so its slot is free for the next.
        let drained = net.run_until(PATIENCE, |net| net.engine(c).connection_count() == 0);
        assert!(drained, "the closed connection never drained");
        net.events(c).clear();
        net.events(s).clear();
        last = Some(id);
    }
}

#[test]
fn timers_run_on_connections_no_call_moves() {
    // A server with two clients: one keeps talking, the other falls silent. Calls move only
    // the talking one; the silent one's idle timeout (3 x keepAliveMs) must fire all the same.
    let setup = Setup::new();
    let (mut net, talker, s) = setup.network(4, |_| {}, |c| c.transport.keep_alive_ms = 30);
    let silent = setup.add_client(&mut net, setup.client_config(), "127.0.0.1:40001");
    let (talking, _) = connect(&mut net, talker, s);
    let (_, quiet) = connect(&mut net, silent, s);
    // From now on nothing gets through either way between the silent client and the server.
    let gone = Link {
        loss: 1.0,
        ..Link::default()
    };
    net.set_link(silent, s, gone);
    net.set_link(s, silent, gone);
    let mut closed = None;
    for _ in 0..1000 {
        send(&mut net, talker, talking, &[b"tick"]);
        net.advance(Duration::from_millis(5));
        acknowledge_all(&mut net, s);
        let events = net.events(s);
        if let Some(e) = events.iter().find(|e| matches!(e, Event::Closed { .. })) {
            closed = Some(e.conn());
            break;
        }
    }
    assert_eq!(
        closed,
        Some(quiet),
        "the silent one closed, the talking one did not"
    );
    assert!(!messages(&mut net, s).is_empty());
}

#[test]
fn a_bad_peer_certificate_is_err_tls() {
    let setup = Setup::new();
    let other = Setup::new();
    let (mut net, c, _) = setup.network(5, |_| {}, |_| {});
    let impostor = quicwire_engine::Engine::server(&other.server_config(), net.now()).unwrap();
    let s = net.add("127.0.0.1:4434".parse().unwrap(), impostor);
    let key = quicwire_core::PoolKey::new("localhost", 4434).unwrap();
    let now = net.now();
    let addr = net.addr(s);
    net.engine(c).connect(now, &key, addr).unwrap();
    let closed = wait(&mut net, c, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(&closed, Event::Closed { error, .. } if error.code == ErrorCode::Tls),
        "{closed:?}"
    );
}

#[test]
fn small_and_large_bodies_arrive_whole_in_order() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(6, |_| {}, |_| {});
    let (id, _) = connect(&mut net, c, s);
    // Around LARGE_BODY, where a body leaves the shared buffers for one of its own.
    let sizes = [1, LARGE_BODY - 1, LARGE_BODY, 3, 70_000, 64];
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|b| (b * 31 + i) as u8).collect())
        .collect();
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    send(&mut net, c, id, &refs);
    net.run_until(PATIENCE, |net| messages(net, s).len() == sizes.len());
    assert_eq!(messages(&mut net, s), bodies);
}

#[test]
fn a_request_times_out_on_the_virtual_clock() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(7, |c| c.transport.request_timeout_ms = 30_000, |_| {});
    let (id, _) = connect(&mut net, c, s);
    let asked = net.now();
    request(&mut net, c, id, 9, b"never answered");
    let failed = wait(&mut net, c, |e| matches!(e, Event::RequestFailed { .. }));
    let waited = net.now() - asked;
    assert!(
        matches!(&failed, Event::RequestFailed { id: 9, error, .. } if error.code == ErrorCode::Timeout),
        "{failed:?}"
    );
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
}

#[test]
fn the_responder_hears_when_the_requester_stops_waiting() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(8, |_| {}, |_| {});
    let (id, peer) = connect(&mut net, c, s);
    request(&mut net, c, id, 1, b"slow");
    let Event::Request { handle, .. } = wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
    else {
        unreachable!()
    };
    let now = net.now();
    net.engine(c).cancel_request(now, id, 1);
    let heard = wait(&mut net, s, |e| matches!(e, Event::RequestCancelled { .. }));
    assert!(matches!(heard, Event::RequestCancelled { handle: h, .. } if h == handle));
    // An answer given anyway is reported as not sent, as before.
    let now = net.now();
    let late = net.engine(s).respond(now, peer, handle, Ok(b"late"));
    assert_eq!(late.unwrap_err().code, ErrorCode::StreamReset);
    // An answered request is not reported when its requester gives up after the answer.
    request(&mut net, c, id, 2, b"fast");
    net.run_until(PATIENCE, |net| {
        net.events(s)
            .iter()
            .any(|e| matches!(e, Event::Request { .. }))
    });
    assert_eq!(echo(&mut net, s), 1);
    wait(&mut net, c, |e| matches!(e, Event::Response { id: 2, .. }));
    let now = net.now();
    net.engine(c).cancel_request(now, id, 2);
    net.advance(Duration::from_millis(50));
    assert!(!net
        .events(s)
        .iter()
        .any(|e| matches!(e, Event::RequestCancelled { .. })));
}

#[test]
fn idle_connections_are_evicted_and_keep_alive_holds_the_rest() {
    let setup = Setup::new();
    // The pooled connection is evicted after 100 ms of nothing in flight.
    let (mut net, c, s) = setup.network(8, |c| c.transport.idle_timeout_ms = 100, |_| {});
    let (id, _) = connect(&mut net, c, s);
    let closed = wait(&mut net, c, |e| matches!(e, Event::Closed { .. }));
    assert_eq!(closed.conn(), id);
    assert!(
        matches!(&closed, Event::Closed { error, .. } if error.message.contains("idle timeout"))
    );
    assert_eq!(net.engine(c).stats().pool.evicted, 1);

    // With a long idle timeout, keep-alives hold a silent connection open for a minute,
    // though QUIC's own idle timeout is three keep-alive intervals.
    let hour = |c: &mut quicwire_engine::ClientConfig| c.transport.idle_timeout_ms = 3_600_000;
    let (mut net, c, s) = setup.network(9, hour, |_| {});
    let (id, _) = connect(&mut net, c, s);
    net.advance(Duration::from_secs(60));
    assert!(net
        .events(c)
        .iter()
        .all(|e| !matches!(e, Event::Closed { .. })));
    assert!(net.engine(c).connection(id).is_some(), "still open");
}

#[test]
fn messages_and_requests_survive_loss_reordering_and_duplicates() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(10, |_| {}, |_| {});
    let rough = Link {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(4),
        loss: 0.05,
        duplicate: 0.05,
    };
    net = net.with_link(rough);
    let (id, _) = connect(&mut net, c, s);
    // 1 KiB each: enough datagrams (of loopback's 64 KiB) for loss and duplicates to hit.
    let bodies: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_le_bytes().repeat(256)).collect();
    for chunk in bodies.chunks(100) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        send(&mut net, c, id, &refs);
    }
    for i in 0..200u64 {
        request(&mut net, c, id, i, &i.to_le_bytes());
    }
    let mut answers = 0;
    let done = net.run_until(PATIENCE, |net| {
        echo(net, s);
        acknowledge_all(net, s);
        let events = net.events(c);
        answers += events
            .iter()
            .filter(|e| matches!(e, Event::Response { .. }))
            .count();
        events.retain(|e| !matches!(e, Event::Response { .. }));
        let acked = events.iter().any(|e| {
            matches!(
                e,
                Event::Acked {
                    delivered: 2000,
                    ..
                }
            )
        });
        answers == 200 && acked
    });
    assert!(done, "{answers} answers");
    assert_eq!(
        messages(&mut net, s),
        bodies,
        "every message once, in order"
    );
    let traffic = net.traffic();
    assert!(traffic.lost > 0 && traffic.duplicated > 0, "{traffic:?}");
    assert!(net.engine(c).connection_stats(id).unwrap().lost_packets > 0);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let setup = Setup::new();
    let run = |seed| {
        let (mut net, c, s) = setup.network(seed, |_| {}, |_| {});
        net = net.with_link(Link {
            loss: 0.1,
            jitter: Duration::from_millis(3),
            ..Link::default()
        });
        let (id, _) = connect(&mut net, c, s);
        send(&mut net, c, id, &[&[1; 50_000], &[2; 50_000]]);
        net.run_until(PATIENCE, |net| messages(net, s).len() == 2);
        net.traffic()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn a_slow_reader_fills_the_send_buffer_then_sends_fail() {
    let setup = Setup::new();
    let high = 64 * 1024;
    let (mut net, c, s) = setup.network(12, |c| c.transport.send_buffer_high = high, |_| {});
    let (id, _) = connect(&mut net, c, s);
    // The server's application takes nothing yet: nothing is acknowledged.
    let chunk = vec![5u8; 16 * 1024];
    let mut accepted = 0;
    let refused = loop {
        let now = net.now();
        let engine = net.engine(c);
        let mut outbox = engine.outbox(id, SendOptions::default()).unwrap();
        if let Err(e) = outbox.push(&chunk) {
            break e;
        }
        engine.send(now, id, &mut outbox).unwrap();
        accepted += 1;
        net.advance(Duration::from_millis(1));
    };
    assert_eq!(refused.code, ErrorCode::FlowControlPaused, "{refused}");
    // One window in flight and one held: twice sendBufferHigh, not more.
    assert_eq!(accepted, 2 * high as usize / chunk.len());
    assert_eq!(messages(&mut net, s).len(), high as usize / chunk.len());
    // The application takes them: the held ones follow, all in order.
    let done = net.run_until(PATIENCE, |net| {
        acknowledge_all(net, s);
        messages(net, s).len() == accepted
    });
    assert!(done);
    let acked = wait(
        &mut net,
        c,
        |e| matches!(e, Event::Acked { delivered, .. } if *delivered == accepted as u64),
    );
    assert_eq!(acked.conn(), id);
    assert!(net
        .engine(c)
        .outbox(id, SendOptions::default())
        .unwrap()
        .push(&chunk)
        .is_ok());
}

/// Runs until `host` has the ACK for `delivered` messages of the default lane; when it came.
fn acked_at(net: &mut Network, host: usize, delivered: u64) -> web_time::Instant {
    let acked = |e: &Event| matches!(e, Event::Acked { delivered: d, .. } if *d == delivered);
    wait(net, host, acked);
    net.now()
}

#[test]
fn unconfirmed_messages_are_acknowledged_late_unless_a_message_follows() {
    let setup = Setup::new();
    let high = 64 * 1024;
    let (mut net, c, s) = setup.network(13, |c| c.transport.send_buffer_high = high, |_| {});
    let (id, _) = connect(&mut net, c, s);
    // LAZY_MESSAGE frames: the receiver's application has them, its ACK waits.
    send_with(&mut net, c, id, UNCONFIRMED, &[b"a", b"b", b"c"]);
    net.run_until(PATIENCE, |net| messages(net, s).len() == 3);
    let taken = net.now();
    acknowledge_all(&mut net, s);
    assert!(acked_at(&mut net, c, 3) - taken >= LAZY_ACK_DELAY);
    // A MESSAGE after them: its ACK goes at once, and covers the lazy ones before it.
    send_with(&mut net, c, id, UNCONFIRMED, &[b"d"]);
    send(&mut net, c, id, &[b"e"]);
    net.run_until(PATIENCE, |net| messages(net, s).len() == 5);
    let taken = net.now();
    acknowledge_all(&mut net, s);
    assert!(acked_at(&mut net, c, 5) - taken < LAZY_ACK_DELAY / 10);
    // Unconfirmed, but past half the window: the frame asks for its ACK, which frees it.
    let chunk = vec![7u8; 16 * 1024];
    send_with(&mut net, c, id, UNCONFIRMED, &[&chunk, &chunk, &chunk]);
    net.run_until(PATIENCE, |net| messages(net, s).len() == 8);
    let taken = net.now();
    acknowledge_all(&mut net, s);
    assert!(acked_at(&mut net, c, 8) - taken < LAZY_ACK_DELAY / 10);
    assert_eq!(
        messages(&mut net, s),
        [&b"a"[..], b"b", b"c", b"d", b"e", &chunk, &chunk, &chunk]
    );
    assert!(net.engine(c).connection_state(id).unwrap().idle);
}

#[test]
fn goaway_drains_requests_in_flight_and_refuses_new_ones() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(13, |_| {}, |_| {});
    let (id, peer) = connect(&mut net, c, s);
    request(&mut net, c, id, 1, b"in flight");
    let Event::Request { handle, .. } = wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
    else {
        unreachable!()
    };
    let now = net.now();
    net.engine(s).go_away(now);
    assert_eq!(net.engine(s).serving(), 1);
    net.run_until(PATIENCE, |net| {
        net.engine(c)
            .connection_state(id)
            .is_some_and(|st| st.going_away)
    });
    let now = net.now();
    let refused = net.engine(c).request(
        now,
        id,
        2,
        Bytes::from_static(b"new"),
        RequestOptions::default(),
    );
    assert_eq!(refused.unwrap_err().code, ErrorCode::ConnectionClosed);
    net.engine(s)
        .respond(now, peer, handle, Ok(b"answered"))
        .unwrap();
    let answer = wait(&mut net, c, |e| matches!(e, Event::Response { .. }));
    assert!(matches!(answer, Event::Response { id: 1, .. }));
    let drained = net.run_until(PATIENCE, |net| net.engine(s).serving() == 0);
    assert!(
        drained,
        "the answer was acknowledged, so nothing is left to drain"
    );
    // A new client is not accepted any more.
    let late = setup.add_client(&mut net, setup.client_config(), "127.0.0.1:40002");
    let key = quicwire_core::PoolKey::new("localhost", 4433).unwrap();
    let now = net.now();
    let addr = net.addr(s);
    net.engine(late).connect(now, &key, addr).unwrap();
    let closed = wait(&mut net, late, |e| matches!(e, Event::Closed { .. }));
    assert!(matches!(closed, Event::Closed { .. }));
}

#[test]
fn thousands_of_requests_in_flight_on_one_connection() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(14, |_| {}, |_| {});
    let (id, _) = connect(&mut net, c, s);
    // Five times the server's stream limit of 1000: the rest wait for credit, in order.
    let n = 5000u64;
    for i in 0..n {
        request(&mut net, c, id, i, &i.to_le_bytes());
    }
    let mut answered = std::collections::HashSet::new();
    let done = net.run_until(PATIENCE, |net| {
        echo(net, s);
        for e in net.events(c).drain(..) {
            match e {
                Event::Response { id, body, .. } => {
                    assert_eq!(&body[..], &id.to_le_bytes(), "each answer is its own");
                    answered.insert(id);
                }
                Event::RequestFailed { error, .. } => panic!("{error}"),
                _ => {}
            }
        }
        answered.len() == n as usize
    });
    assert!(done, "{} of {n} answered", answered.len());
}

#[test]
fn a_handler_error_comes_back_with_its_code_and_text() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(15, |_| {}, |_| {});
    let (id, peer) = connect(&mut net, c, s);
    request(&mut net, c, id, 3, b"fail");
    let Event::Request { handle, .. } = wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
    else {
        unreachable!()
    };
    let now = net.now();
    let error = Error::new(ErrorCode::Remote, "handler failed");
    net.engine(s)
        .respond(now, peer, handle, Err(error))
        .unwrap();
    let failed = wait(&mut net, c, |e| matches!(e, Event::RequestFailed { .. }));
    let Event::RequestFailed { id: 3, error, .. } = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(
        (error.code, error.message.as_str()),
        (ErrorCode::Remote, "handler failed")
    );
    // A request turned down without an answer: the requester hears of a reset.
    request(&mut net, c, id, 4, b"dropped");
    let Event::Request { handle, .. } = wait(&mut net, s, |e| matches!(e, Event::Request { .. }))
    else {
        unreachable!()
    };
    let now = net.now();
    net.engine(s).reset_request(now, peer, handle);
    let failed = wait(&mut net, c, |e| matches!(e, Event::RequestFailed { .. }));
    assert!(
        matches!(&failed, Event::RequestFailed { id: 4, error, .. } if error.code == ErrorCode::StreamReset),
        "{failed:?}"
    );
}

fn datagrams(net: &mut Network, host: usize) -> Vec<Bytes> {
    let got = net
        .events(host)
        .iter()
        .filter_map(|e| match e {
            Event::Datagram { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect();
    net.events(host)
        .retain(|e| !matches!(e, Event::Datagram { .. }));
    got
}

#[test]
fn datagrams_lost_on_the_way_are_counted_not_resent() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(11, |_| {}, |_| {});
    let (id, peer) = connect(&mut net, c, s);
    let lossy = Link {
        loss: 0.2,
        ..Link::default()
    };
    net.set_link(c, s, lossy);
    let mut got = Vec::new();
    for i in 0..1000u32 {
        let now = net.now();
        net.engine(c)
            .send_datagram(now, id, &i.to_be_bytes())
            .unwrap();
        net.advance(Duration::from_micros(200));
        got.extend(datagrams(&mut net, s));
    }
    net.advance(Duration::from_millis(100));
    got.extend(datagrams(&mut net, s));
    let stats = net.engine(s).connection_stats(peer).unwrap();
    assert_eq!(stats.datagrams_in, got.len() as u64);
    // About a fifth lost, none resent: what arrived came once, in order of sending here.
    let seqs: Vec<u32> = got
        .iter()
        .map(|b| u32::from_be_bytes(b[..].try_into().unwrap()))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "a datagram came twice"
    );
    let highest = u64::from(*seqs.last().unwrap());
    assert_eq!(stats.datagrams_in + stats.datagrams_lost, highest + 1);
    assert!((100..300).contains(&stats.datagrams_lost), "{stats:?}");
}

#[test]
fn a_full_datagram_queue_drops_its_oldest() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(12, |_| {}, |_| {});
    let (id, peer) = connect(&mut net, c, s);
    // More at once than quinn-proto's buffer and the engine's queue hold.
    let sent = 4 * quicwire_engine::DATAGRAM_QUEUE as u32;
    let now = net.now();
    for i in 0..sent {
        let body = [&i.to_be_bytes()[..], &[0; 1000]].concat();
        net.engine(c).send_datagram(now, id, &body).unwrap();
    }
    net.advance(Duration::from_secs(1));
    let got = datagrams(&mut net, s);
    let mine = net.engine(c).connection_stats(id).unwrap();
    let theirs = net.engine(s).connection_stats(peer).unwrap();
    assert!(mine.datagrams_dropped > 0, "{mine:?}");
    assert_eq!(mine.datagrams_out + mine.datagrams_dropped, u64::from(sent));
    assert_eq!(theirs.datagrams_in, got.len() as u64);
    assert_eq!(theirs.datagrams_in, mine.datagrams_out);
    // The newest made it: the last one sent arrived.
    let last = got
        .last()
        .map(|b| u32::from_be_bytes(b[..4].try_into().unwrap()));
    assert_eq!(last, Some(sent - 1));
}

/// A client and a server at different addresses (so datagrams are 1,200 bytes, not
/// loopback's 64 KiB), connected: the network, the client, the server, the connection.
fn far_pair(seed: u64) -> (Network, usize, usize, quicwire_engine::ConnId) {
    let setup = Setup::new();
    let mut net = Network::new(seed);
    let server = quicwire_engine::Engine::server(&setup.server_config(), net.now()).unwrap();
    let s = net.add("10.0.0.1:4433".parse().unwrap(), server);
    let c = setup.add_client(&mut net, setup.client_config(), "10.0.0.2:40000");
    let (id, _) = connect(&mut net, c, s);
    (net, c, s, id)
}

/// How many of 31 bulk requests the server had whole before the request queued after them
/// at `priority`, over a path of 1,200-byte datagrams (not loopback).
fn bulk_ahead_of(priority: i32) -> usize {
    let (mut net, c, s, id) = far_pair(13);
    let now = net.now();
    let bulk = Bytes::from(vec![1u8; 32 << 10]);
    for n in 0..31 {
        let engine = net.engine(c);
        engine
            .request(now, id, n, bulk.clone(), RequestOptions::default())
            .unwrap();
    }
    let urgent = Bytes::from(vec![2u8; 32 << 10]);
    net.engine(c)
        .request(
            now,
            id,
            99,
            urgent,
            RequestOptions {
                priority,
                ..Default::default()
            },
        )
        .unwrap();
    let Event::Request { .. } = wait(
        &mut net,
        s,
        |e| matches!(e, Event::Request { body, .. } if body[0] == 2),
    ) else {
        unreachable!()
    };
    net.events(s)
        .iter()
        .filter(|e| matches!(e, Event::Request { .. }))
        .count()
}

#[test]
fn a_request_with_priority_goes_before_the_bulk() {
    assert_eq!(bulk_ahead_of(10), 0);
    // The control: at the same priority it waits its turn behind most of them.
    assert!(bulk_ahead_of(0) > 15, "{}", bulk_ahead_of(0));
}

/// How many of 64 bulk messages (16 KiB each, lane 0) the server had before the last of 8
/// like them queued after them on the lane of `priority`, over a path of 1,200-byte datagrams.
fn bulk_messages_ahead_of(priority: i32) -> usize {
    let (mut net, c, s, id) = far_pair(14);
    let bulk = vec![1u8; 16 << 10];
    let urgent = vec![2u8; 16 << 10];
    send_with(&mut net, c, id, lane(0), &vec![&bulk[..]; 64]);
    send_with(&mut net, c, id, lane(priority), &[&urgent[..]; 8]);
    net.run_until(PATIENCE, |net| {
        messages(net, s).iter().filter(|m| m[0] == 2).count() == 8
    });
    let got = messages(&mut net, s);
    let last = got.iter().rposition(|m| m[0] == 2).unwrap();
    got[..last].iter().filter(|m| m[0] == 1).count()
}

#[test]
fn a_message_lane_of_higher_priority_passes_the_bulk() {
    // At most the bulk that was on its way before the urgent lane had anything to send.
    let ahead = bulk_messages_ahead_of(10);
    assert!(ahead <= 1, "{ahead}");
    // Below the bulk, it waits for the bulk to be sent (the last flight's two lanes may be
    // read in either order); lanes of one priority would share turns (6 ahead here).
    let behind = bulk_messages_ahead_of(-10);
    assert!(behind > 48, "{behind}");
}

#[test]
fn each_lane_keeps_its_order_and_is_acknowledged_on_its_own() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(15, |_| {}, |_| {});
    let (id, _) = connect(&mut net, c, s);
    let lanes = quicwire_core::config::MAX_LANES as i32;
    for n in 0..lanes {
        let bodies: Vec<[u8; 2]> = (0..3).map(|i| [n as u8, i]).collect();
        let bodies: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
        assert_eq!(send_with(&mut net, c, id, lane(n - 4), &bodies), 3);
    }
    // One lane more than a connection may have.
    let e = net.engine(c).outbox(id, lane(100)).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e:?}");
    net.run_until(PATIENCE, |net| messages(net, s).len() == 3 * lanes as usize);
    let got = messages(&mut net, s);
    for n in 0..lanes as u8 {
        let order: Vec<u8> = got.iter().filter(|m| m[0] == n).map(|m| m[1]).collect();
        assert_eq!(order, [0, 1, 2], "lane {n}");
    }
    acknowledge_all(&mut net, s);
    for n in 0..lanes {
        wait(
            &mut net,
            c,
            |e| matches!(e, Event::Acked { priority, delivered: 3, .. } if *priority == n - 4),
        );
    }
    // A lane already open takes more.
    assert_eq!(send_with(&mut net, c, id, lane(-4), &[b"more"]), 4);
}

/// A client and a server with 0-RTT on, over links of 10 ms each way, after one connection
/// that left the client a session ticket and the server's settings (it is closed now).
fn resumable(seed: u64) -> (Setup, Network, usize, usize) {
    let setup = Setup::new();
    let early = |t: &mut quicwire_core::TransportConfig| t.early_data = true;
    let (net, c, s) = setup.network(
        seed,
        |c| early(&mut c.transport),
        |s| early(&mut s.transport),
    );
    let mut net = net.with_link(Link {
        delay: Duration::from_millis(10),
        ..Link::default()
    });
    let (id, _) = connect(&mut net, c, s);
    net.advance(Duration::from_millis(100)); // The tickets come after the handshake.
    let now = net.now();
    net.engine(c).disconnect(now, id);
    net.advance(Duration::from_millis(100));
    net.events(c).clear();
    net.events(s).clear();
    (setup, net, c, s)
}

/// Dials `server` (as the pool key localhost:4433), sends an idempotent request and a plain
/// one at once, and answers them; how long the idempotent one took, and whether each came
/// early on the server.
fn dial_and_ask(
    net: &mut Network,
    c: usize,
    s: usize,
) -> (quicwire_engine::ConnId, Duration, [bool; 2]) {
    let key = quicwire_core::PoolKey::new("localhost", 4433).unwrap();
    let addr = net.addr(s);
    let start = net.now();
    let id = net.engine(c).connect(start, &key, addr).unwrap();
    let idempotent = RequestOptions {
        idempotent: true,
        ..Default::default()
    };
    // Ready at once when it resumes with 0-RTT; else once connected.
    if net.engine(c).connection(id).is_none() {
        wait(net, c, |e| matches!(e, Event::Connected { .. }));
    }
    let now = net.now();
    let engine = net.engine(c);
    engine
        .request(now, id, 1, Bytes::from_static(b"safe"), idempotent)
        .unwrap();
    engine
        .request(
            now,
            id,
            2,
            Bytes::from_static(b"plain"),
            RequestOptions::default(),
        )
        .unwrap();
    let mut early = [false; 2];
    let mut took = Duration::ZERO;
    for (n, asked) in [(1u64, &b"safe"[..]), (2, &b"plain"[..])] {
        let Event::Request {
            conn,
            handle,
            body,
            early: was,
            ..
        } = wait(
            net,
            s,
            |e| matches!(e, Event::Request { body, .. } if &body[..] == asked),
        )
        else {
            unreachable!()
        };
        early[n as usize - 1] = was;
        let now = net.now();
        net.engine(s).respond(now, conn, handle, Ok(&body)).unwrap();
        let answer = wait(
            net,
            c,
            |e| matches!(e, Event::Response { id, .. } if *id == n),
        );
        assert!(matches!(answer, Event::Response { ref body, .. } if &body[..] == asked));
        if n == 1 {
            took = net.now() - start;
        }
    }
    (id, took, early)
}

#[test]
fn a_resumed_connection_sends_its_idempotent_requests_as_0rtt_data() {
    let (_, mut net, c, s) = resumable(16);
    let (id, took, early) = dial_and_ask(&mut net, c, s);
    // The idempotent request went with the first flight; the plain one after the handshake.
    assert_eq!(early, [true, false]);
    let mine = net.engine(c).connection_stats(id).unwrap();
    assert_eq!((mine.zero_rtt_accepted, mine.zero_rtt_rejected), (1, 0));
    assert_eq!(net.engine(s).stats().connections.len(), 1);
    assert_eq!(
        net.engine(s).stats().connections[0].stats.zero_rtt_accepted,
        1
    );
    // One round trip of 20 ms to the answer, where a full handshake takes two.
    assert!(took < Duration::from_millis(30), "{took:?}");

    // The control: a client without 0-RTT waits a round trip for the handshake first.
    let setup = Setup::new();
    let (net, c, s) = setup.network(16, |_| {}, |_| {});
    let mut net = net.with_link(Link {
        delay: Duration::from_millis(10),
        ..Link::default()
    });
    let (_, took, early) = dial_and_ask(&mut net, c, s);
    assert_eq!(early, [false, false]);
    assert!(took >= Duration::from_millis(40), "{took:?}");
}

#[test]
fn turned_down_0rtt_data_is_sent_again_after_the_handshake() {
    let (setup, mut net, c, _) = resumable(17);
    // Another server under the same name and port (as after a restart): it cannot open the
    // first one's ticket, so it makes a full handshake and turns the 0-RTT data down.
    let mut config = setup.server_config();
    config.transport.early_data = true;
    let other = quicwire_engine::Engine::server(&config, net.now()).unwrap();
    let s2 = net.add("127.0.0.2:4433".parse().unwrap(), other);
    let (id, _, early) = dial_and_ask(&mut net, c, s2);
    // Both answered, each once; neither reached the server early.
    assert_eq!(early, [false, false]);
    net.advance(Duration::from_millis(200));
    assert_eq!(
        net.events(s2)
            .iter()
            .filter(|e| matches!(e, Event::Request { .. }))
            .count(),
        0
    );
    let mine = net.engine(c).connection_stats(id).unwrap();
    assert_eq!((mine.zero_rtt_accepted, mine.zero_rtt_rejected), (0, 1));
    // Messages and requests carry on.
    send(&mut net, c, id, &[b"after"]);
    net.run_until(PATIENCE, |net| messages(net, s2).len() == 1);
}

#[test]
fn a_server_whose_settings_changed_fails_the_0rtt_connection_and_the_next_one_works() {
    let (setup, mut net, c, _) = resumable(18);
    let mut config = setup.server_config();
    config.transport.early_data = true;
    config.transport.max_message_size = 4096; // The client assumed 1 MiB.
    let other = quicwire_engine::Engine::server(&config, net.now()).unwrap();
    let s2 = net.add("127.0.0.3:4433".parse().unwrap(), other);
    // This server holds no ticket key of the first one either: so that it takes the
    // 0-RTT data, the client first resumes a session of its own with it.
    let key = quicwire_core::PoolKey::new("localhost", 4433).unwrap();
    let addr = net.addr(s2);
    let now = net.now();
    let id = net.engine(c).connect(now, &key, addr).unwrap();
    let closed = wait(&mut net, c, |e| {
        matches!(e, Event::Closed { .. } | Event::Connected { .. })
    });
    // Its assumed settings were the first server's: the HELLO tells them apart.
    if let Event::Closed { error, .. } = &closed {
        assert_eq!(error.code, ErrorCode::Negotiation, "{error}");
    } else {
        wait(
            &mut net,
            c,
            |e| matches!(e, Event::Closed { error, .. } if error.code == ErrorCode::Negotiation),
        );
    }
    assert!(net.engine(c).connection(id).is_none());
    // The next connection makes its handshake first, and works.
    net.advance(Duration::from_millis(100));
    let now = net.now();
    let id = net.engine(c).connect(now, &key, addr).unwrap();
    wait(
        &mut net,
        c,
        |e| matches!(e, Event::Connected { conn, .. } if *conn == id),
    );
    let stats = net.engine(c).connection_stats(id).unwrap();
    assert_eq!((stats.zero_rtt_accepted, stats.zero_rtt_rejected), (0, 0));
}

#[test]
fn idempotent_messages_go_as_0rtt_data_and_the_rest_wait_in_order() {
    let (_, mut net, c, s) = resumable(19);
    let key = quicwire_core::PoolKey::new("localhost", 4433).unwrap();
    let addr = net.addr(s);
    let start = net.now();
    let id = net.engine(c).connect(start, &key, addr).unwrap();
    assert_eq!(send_with(&mut net, c, id, SAFE, &[b"early"]), 1);
    assert_eq!(send_with(&mut net, c, id, lane(0), &[b"late"]), 2);
    // Safe to repeat, but behind one that waits for the handshake: it waits too.
    assert_eq!(send_with(&mut net, c, id, SAFE, &[b"also late"]), 3);
    let mut arrived = Vec::new();
    net.run_until(PATIENCE, |net| {
        let got = messages(net, s);
        while got.len() > arrived.len() {
            arrived.push((got[arrived.len()].clone(), net.now() - start));
        }
        got.len() == 3
    });
    let order: Vec<&[u8]> = arrived.iter().map(|(m, _)| &m[..]).collect();
    assert_eq!(order, [&b"early"[..], b"late", b"also late"]);
    // One way (10 ms) for the 0-RTT one; the others after the handshake's round trip.
    assert!(arrived[0].1 < Duration::from_millis(15), "{arrived:?}");
    assert!(arrived[1].1 >= Duration::from_millis(30), "{arrived:?}");
}

#[test]
fn a_turned_down_0rtt_message_is_sent_again_once() {
    let (setup, mut net, c, _) = resumable(20);
    let mut config = setup.server_config();
    config.transport.early_data = true;
    let other = quicwire_engine::Engine::server(&config, net.now()).unwrap();
    let s2 = net.add("127.0.0.4:4433".parse().unwrap(), other);
    let key = quicwire_core::PoolKey::new("localhost", 4433).unwrap();
    let now = net.now();
    let addr = net.addr(s2);
    let id = net.engine(c).connect(now, &key, addr).unwrap();
    assert_eq!(send_with(&mut net, c, id, SAFE, &[b"early"]), 1);
    assert_eq!(send_with(&mut net, c, id, lane(0), &[b"late"]), 2);
    net.run_until(PATIENCE, |net| messages(net, s2).len() == 2);
    net.advance(Duration::from_millis(200));
    assert_eq!(messages(&mut net, s2), [&b"early"[..], b"late"]);
    let mine = net.engine(c).connection_stats(id).unwrap();
    assert_eq!(mine.zero_rtt_rejected, 1);
    acknowledge_all(&mut net, s2);
    wait(&mut net, c, |e| {
        matches!(e, Event::Acked { delivered: 2, .. })
    });
}

/// A client and a server at different addresses, with a second path between them (a
/// stream tunnel, as QUIC over TCP is) whose datagrams fare like `tunnel`, and the direct
/// path (UDP) like `udp`. The client races the two (`connect_racing`), the tunnel `after`
/// the start: the network, the client, the server and the id `connect_racing` returned.
fn race(
    udp: Link,
    tunnel: Link,
    after: Duration,
) -> (Network, usize, usize, quicwire_engine::ConnId) {
    let setup = Setup::new();
    let mut net = Network::new(21);
    let server = quicwire_engine::Engine::server(&setup.server_config(), net.now()).unwrap();
    let s = net.add("10.0.0.1:4433".parse().unwrap(), server);
    let c = setup.add_client(&mut net, setup.client_config(), "10.0.0.2:40000");
    net.set_link(c, s, udp);
    net.set_link(s, c, udp);
    let server_at = "[100::1:0]:1".parse().unwrap();
    net.tunnel(c, server_at, s, "[100::1:1]:1".parse().unwrap(), tunnel);
    let key = quicwire_core::PoolKey::new("localhost", 4433).unwrap();
    let now = net.now();
    let udp_at = net.addr(s);
    let id = net
        .engine(c)
        .connect_racing(now, &key, udp_at, server_at, after)
        .unwrap();
    (net, c, s, id)
}

fn blocked() -> Link {
    Link {
        loss: 1.0,
        ..Link::default()
    }
}

fn delayed(ms: u64) -> Link {
    Link {
        delay: Duration::from_millis(ms),
        ..Link::default()
    }
}

/// Closed events a host reported for `id`.
fn closes(net: &mut Network, host: usize, id: quicwire_engine::ConnId) -> usize {
    net.events(host)
        .iter()
        .filter(|e| matches!(e, Event::Closed { conn, .. } if *conn == id))
        .count()
}

#[test]
fn a_race_falls_back_to_the_tunnel_when_udp_is_blocked() {
    let (mut net, c, s, id) = race(blocked(), delayed(5), Duration::from_millis(300));
    let started = net.now();
    wait(
        &mut net,
        c,
        |e| matches!(e, Event::Connected { conn, .. } if *conn == id),
    );
    // Not before the fallback began, and one tunnel handshake after it.
    let took = net.now() - started;
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(400),
        "{took:?}"
    );
    let mine = net.engine(c).connection_stats(id).unwrap();
    assert_eq!(mine.carrier, quicwire_core::Carrier::Tcp);
    // The connection works under the id the dial returned.
    request(&mut net, c, id, 1, b"over the tunnel");
    assert_eq!(echo_when_asked(&mut net, s), 1);
    let answer = wait(&mut net, c, |e| matches!(e, Event::Response { .. }));
    assert!(matches!(answer, Event::Response { conn, id: 1, .. } if conn == id));
    // The UDP handshake that never finished is gone without a word.
    net.advance(Duration::from_secs(10));
    assert_eq!(closes(&mut net, c, id), 0);
    assert_eq!(net.engine(c).connection_count(), 1);
    assert!(net.engine(c).connection(id).is_some());
}

#[test]
fn a_race_is_won_by_udp_when_it_answers_in_time() {
    let (mut net, c, s, id) = race(Link::default(), delayed(5), Duration::from_millis(300));
    wait(
        &mut net,
        c,
        |e| matches!(e, Event::Connected { conn, .. } if *conn == id),
    );
    let mine = net.engine(c).connection_stats(id).unwrap();
    assert_eq!(mine.carrier, quicwire_core::Carrier::Udp);
    // The tunnel was never used: the server saw one connection, over UDP.
    net.advance(Duration::from_secs(1));
    assert_eq!(net.engine(s).connection_count(), 1);
    assert_eq!(net.traffic().lost, 0);
}

#[test]
fn a_slow_udp_path_still_wins_a_race_it_finishes_first() {
    // UDP needs 400 ms a round trip; the tunnel starts at 100 ms and needs 2 s one.
    let (mut net, c, s, id) = race(delayed(200), delayed(1000), Duration::from_millis(100));
    wait(
        &mut net,
        c,
        |e| matches!(e, Event::Connected { conn, .. } if *conn == id),
    );
    assert_eq!(
        net.engine(c).connection_stats(id).unwrap().carrier,
        quicwire_core::Carrier::Udp
    );
    // The losing tunnel handshake is closed, quietly on this side; the server lets go of it.
    net.advance(Duration::from_secs(20));
    assert_eq!(closes(&mut net, c, id), 0);
    assert_eq!(net.engine(c).connection_count(), 1);
    assert_eq!(net.engine(s).connection_count(), 1);
    request(&mut net, c, id, 2, b"still here");
    assert_eq!(echo_when_asked(&mut net, s), 1);
    wait(&mut net, c, |e| matches!(e, Event::Response { id: 2, .. }));
}

#[test]
fn a_race_both_paths_lose_fails_once_at_the_deadline() {
    let (mut net, c, _, id) = race(blocked(), blocked(), Duration::from_millis(300));
    let started = net.now();
    let closed = wait(
        &mut net,
        c,
        |e| matches!(e, Event::Closed { conn, .. } if *conn == id),
    );
    assert!(
        matches!(closed, Event::Closed { ref error, .. } if error.code == ErrorCode::ConnectTimeout),
        "{closed:?}"
    );
    assert!(net.now() - started >= Duration::from_secs(5));
    net.advance(Duration::from_secs(10));
    assert_eq!(closes(&mut net, c, id), 0); // the one above was taken out
    assert_eq!(net.engine(c).connection_count(), 0);
}

/// Runs the network until `host` has a request, and answers every one it has.
fn echo_when_asked(net: &mut Network, host: usize) -> usize {
    net.run_until(PATIENCE, |net| {
        net.events(host)
            .iter()
            .any(|e| matches!(e, Event::Request { .. }))
    });
    echo(net, host)
}

#[test]
fn what_ended_connections_did_stays_counted() {
    let setup = Setup::new();
    let (mut net, c, s) = setup.network(5, |_| {}, |_| {});
    let (id, _) = connect(&mut net, c, s);
    send(&mut net, c, id, &[b"one", b"two", b"three"]);
    net.advance(Duration::from_millis(50));
    acknowledge_all(&mut net, s);
    wait(&mut net, c, |e| {
        matches!(e, Event::Acked { delivered: 3, .. })
    });
    let before = net.engine(c).stats();
    assert_eq!(before.connections[0].stats.messages_out, 3);
    assert_eq!(before.ended.messages_out, 0);
    let now = net.now();
    net.engine(c).disconnect(now, id);
    // Closing, and then gone: the three messages count in `ended` all along.
    let closing = net.engine(c).stats();
    assert!(closing.connections.is_empty());
    assert_eq!(closing.ended.messages_out, 3);
    net.advance(Duration::from_secs(10));
    assert_eq!(net.engine(c).connection_count(), 0);
    assert_eq!(net.engine(c).stats().ended.messages_out, 3);
    assert_eq!(net.engine(s).stats().ended.messages_in, 3);
    // A second connection adds to it.
    let (again, _) = connect(&mut net, c, s);
    send(&mut net, c, again, &[b"four"]);
    net.advance(Duration::from_millis(50));
    acknowledge_all(&mut net, s);
    wait(&mut net, c, |e| {
        matches!(e, Event::Acked { delivered: 1, .. })
    });
    let stats = net.engine(c).stats();
    assert_eq!(
        stats.ended.messages_out + stats.connections[0].stats.messages_out,
        4
    );
}
